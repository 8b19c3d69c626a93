"""The model's start-up self-test (edge.selftest) on the shipped model, real interpreters.

The wrong-kernel cases are made real, not mocked: a sidecar whose reference outputs are
tampered with is wrong for every kernel set (exit 2), and a sidecar recorded from the
builtin kernels' exact outputs with zero tolerance is one that XNNPACK (which rounds
differently) fails and the builtin kernels pass: the fallback path, end to end.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.conftest import MODELS_DIR

MODEL = MODELS_DIR / "emotion_int8.tflite"


def copy_model(tmp_path: Path, edit=None) -> Path:
    """The shipped model and its sidecar in tmp_path, the sidecar edited by `edit`."""
    model = tmp_path / "m.tflite"
    shutil.copy(MODEL, model)
    sidecar = json.loads(MODEL.with_suffix(".json").read_text())
    if edit is not None:
        edit(sidecar)
    model.with_suffix(".json").write_text(json.dumps(sidecar))
    return model



