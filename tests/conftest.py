"""Shared test fixtures: where the repository and the shared data live, and how to skip.

The shared folder (FER2013 arrays, the held-out set) sits beside the checkout at
../shared; CI machines and contributors may not have it, so tests that need it
skip with a reason that says what is missing instead of failing.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# EDGE_SHARED_DIR lets a checkout elsewhere point at its copy of the shared folder.
SHARED_DIR = Path(os.environ.get("EDGE_SHARED_DIR", REPO_ROOT.parent / "shared")).resolve()
FER2013_DIR = SHARED_DIR / "data" / "fer2013"
MODELS_DIR = REPO_ROOT / "models"


def require_path(path: Path, what: str = "") -> Path:
    """Return `path`, or skip the calling test with a reason naming what is absent."""
    if not path.exists():
        pytest.skip(f"{what or path.name} not available: {path} is absent")
    return path


def require_shared(relative: str) -> Path:
    """A path inside the shared folder (e.g. 'data/fer2013/publictest.npz'), or skip."""
    require_path(SHARED_DIR, "shared folder (../shared beside the repo)")
    return require_path(SHARED_DIR / relative, f"shared file {relative}")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared relative to the repository root; skips the test when it is absent."""
    return require_path(SHARED_DIR, "shared folder (../shared beside the repo)")


@pytest.fixture(scope="session")
def fer2013_dir(shared_dir: Path) -> Path:
    return require_path(shared_dir / "data" / "fer2013", "FER2013 data")


def synthetic_faces(per_class: int, classes: int = 7, seed: int = 0,
                    side: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """Easily separable fake faces: uint8 (N, side, side) and labels 0..classes-1.

    Each class is a bright horizontal band at its own height over a noisy dark
    background, so a tiny network learns them in a few steps. Every image spans
    the full 0..255 range, like real faces.
    """
    rng = np.random.default_rng(seed)
    images, labels = [], []
    band = max(2, side // (classes + 1))
    for label in range(classes):
        for _ in range(per_class):
            image = rng.integers(0, 90, (side, side))
            top = label * side // classes
            image[top : top + band] = rng.integers(170, 256, (band, side))
            image.flat[rng.integers(image.size)] = 0
            image.flat[rng.integers(image.size)] = 255
            images.append(image.astype(np.uint8))
            labels.append(label)
    return np.stack(images), np.array(labels, dtype=np.int64)


@pytest.fixture(scope="session")
def make_faces():
    """`synthetic_faces` as a fixture, for tests that prefer not to import conftest."""
    return synthetic_faces


def copy_shipped_model(tmp_path: Path, edit: Callable[[dict], None] | None = None) -> Path:
    """The shipped model and its sidecar in tmp_path, the sidecar edited by `edit`."""
    shipped = MODELS_DIR / "emotion_int8.tflite"
    model = tmp_path / "m.tflite"
    shutil.copy(shipped, model)
    sidecar = json.loads(shipped.with_suffix(".json").read_text())
    if edit is not None:
        edit(sidecar)
    model.with_suffix(".json").write_text(json.dumps(sidecar))
    return model
