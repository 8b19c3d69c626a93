"""The selection split: validation faces carved from Training, and the test figure.

Checkpoints, early stopping, the learning-rate plateau and the quantization-aware
epoch used to be chosen on PublicTest, which made the PublicTest figure optimistic.
Now a fixed, stratified, seeded fraction of the training faces is set aside to
choose on, and PublicTest is scored once, at the end, as the test figure.

The split is recorded in run.json (seed, fraction, per-class counts and a hash of
the chosen indices), so a resumed run can prove it validates on the same faces and
anyone can rebuild it from the same data.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from convert.data import FaceSet
from convert.errors import DataError
from edge.model_contract import FER2013_LABELS

DEFAULT_FRACTION = 0.1
DEFAULT_SEED = 1234


class SplitError(DataError):
    """A split that cannot be carved or does not match the run being resumed (bad input:
    the CLI prints it as one line)."""


@dataclass(frozen=True)
class Selection:
    train: FaceSet
    val: FaceSet
    train_record: dict[str, Any]
    val_record: dict[str, Any]


def carve_indices(y: np.ndarray, fraction: float, seed: int,
                  classes: int = len(FER2013_LABELS)) -> np.ndarray:
    """Sorted indices of the validation faces: round(fraction x count) of each class.

    Each class draws from its own generator (seed, class), so a class's draw does
    not depend on the others. A class with two faces or more keeps at least one on
    each side.
    """
    if not 0 < fraction < 1:
        raise SplitError(f"--val-fraction must be in (0, 1), is {fraction:g}")
    chosen = []
    for c in range(classes):
        pool = np.flatnonzero(y == c)
        take = round(fraction * len(pool))
        take = min(max(take, 1), len(pool) - 1) if len(pool) >= 2 else 0
        chosen.append(np.random.default_rng([seed, c]).permutation(pool)[:take])
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def indices_sha256(index: np.ndarray) -> str:
    """sha256 of the sorted indices as little-endian int64: the split's fingerprint."""
    return hashlib.sha256(np.sort(index).astype("<i8").tobytes()).hexdigest()


def select(train_faces: FaceSet, val_faces: FaceSet | None, fraction: float, seed: int,
           classes: int = len(FER2013_LABELS)) -> Selection:
    """The faces to train on and to select on.

    Without `val_faces`, `fraction` of the training faces (stratified, seeded) become
    the validation split; with them (the old way, e.g. PublicTest), nothing is carved.
    """
    if val_faces is not None:
        return Selection(train_faces, val_faces,
                         {"source": train_faces.source, "n": len(train_faces)},
                         {"source": val_faces.source, "n": len(val_faces), "role": "selection"})
    val_index = carve_indices(train_faces.y, fraction, seed, classes)
    keep = np.setdiff1d(np.arange(len(train_faces)), val_index)
    if len(val_index) == 0 or len(keep) == 0:
        raise SplitError(f"{train_faces.source}: too few faces to carve a validation split "
                         f"of {fraction:g}")
    train = FaceSet(train_faces.x[keep], train_faces.y[keep], train_faces.source)
    val = FaceSet(train_faces.x[val_index], train_faces.y[val_index], train_faces.source)
    carved = {"from": train_faces.source, "of_n": len(train_faces), "fraction": fraction,
              "seed": seed, "stratified": True,
              "per_class": val.class_counts(classes).tolist(),
              "indices_sha256": indices_sha256(val_index),
              "indices_hash_of": "the sorted indices into the training faces, little-endian "
                                 "int64"}
    return Selection(
        train, val,
        {"source": train_faces.source, "n": len(train),
         "per_class": train.class_counts(classes).tolist()},
        {"source": train_faces.source, "n": len(val), "role": "selection", "carved": carved})


def check_resumed(earlier: dict[str, Any] | None, now: dict[str, Any]) -> None:
    """A resumed run must validate on the very faces it started with."""
    if not earlier:
        return
    before = (earlier.get("carved") or {}).get("indices_sha256")
    after = (now.get("carved") or {}).get("indices_sha256")
    if before != after or earlier.get("source") != now.get("source"):
        raise SplitError("--resume with another validation split than the run started with "
                         "(compare --val, --val-fraction and --val-seed with run.json)")


def test_figure(keras: Any, model_path: Path, faces: FaceSet | None,
                split: str = "publictest") -> dict[str, Any] | None:
    """Accuracy of the selected checkpoint on held-out faces, scored once, after training."""
    if faces is None or not model_path.exists():
        return None
    from convert import qat

    qat.register()  # harmless for a plain checkpoint
    model = keras.models.load_model(model_path, compile=False)
    pixels = faces.x[..., None].astype(np.float32)
    predicted = np.asarray(model.predict(pixels, batch_size=256, verbose=0)).argmax(axis=1)
    return {"source": faces.source, "split": split, "n": len(faces), "role": "test",
            "model": str(model_path), "float_accuracy": round(float((predicted == faces.y)
                                                                    .mean()), 6)}


def default_test_path(data_path: Path) -> Path | None:
    """Where PublicTest is when --test is not given: the CSV or folder root itself, or
    `publictest.npz` beside a training .npz (the layout of shared/data/fer2013)."""
    if data_path.suffix != ".npz":
        return data_path
    beside = data_path.with_name("publictest.npz")
    return beside if beside.exists() and beside != data_path else None


def selection_role(keras_path: Path | None, data_source: str) -> str | None:
    """'selection' if the float model's run selected its checkpoint on this data,
    'test' if it selected on something else, None when no run.json says."""
    import json

    if keras_path is None:
        return None
    run_path = keras_path.parent / "run.json"
    try:
        val = json.loads(run_path.read_text()).get("val") or {}
    except (OSError, ValueError):
        return None
    if "source" not in val:
        return None
    same = Path(val["source"]).resolve() == Path(data_source).resolve()
    return "selection" if same and "carved" not in val else "test"
