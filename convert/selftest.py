"""Record the device's self-test (edge.selftest) in a model's sidecar.

`edge-convert quantize` does it for every new model; `edge-convert selftest` does it for
a model that already exists, changing only the sidecar's `selftest` block (the .tflite
stays byte-identical: its sha256 must match the one the sidecar already records).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edge import selftest
from edge.classify import sha256_of
from edge.errors import ModelError


def selftest_block(content: bytes, sidecar: dict[str, Any], seed: int = selftest.DEFAULT_SEED,
                   count: int = selftest.DEFAULT_COUNT) -> dict[str, Any]:
    """The sidecar's `selftest` block for a model's bytes."""
    if count < 1:
        raise ModelError(f"self-test count must be >= 1, is {count}")
    return selftest.record(content, sidecar, seed, count).to_dict()


def record_in_sidecar(model_path: Path, seed: int = selftest.DEFAULT_SEED,
                      count: int = selftest.DEFAULT_COUNT) -> dict[str, Any]:
    """Add (or replace) the `selftest` block of MODEL.json; returns the block."""
    from convert.quantize import write_json

    sidecar_path = model_path.with_suffix(".json")
    if not model_path.is_file():
        raise ModelError(f"{model_path}: model file not found")
    try:
        sidecar = json.loads(sidecar_path.read_text())
    except FileNotFoundError:
        raise ModelError(f"{sidecar_path}: model sidecar missing") from None
    except ValueError as exc:
        raise ModelError(f"{sidecar_path}: not JSON ({exc})") from None
    recorded = sidecar.get("tflite_sha256")
    if recorded and recorded != sha256_of(model_path):  # a stale sidecar: refuse to bless it
        raise ModelError(f"{sidecar_path}: records tflite_sha256 {recorded[:12]}..., but "
                         f"{model_path} differs; re-quantize instead")
    if "output" not in sidecar:
        raise ModelError(f"{sidecar_path}: no output quantization recorded")
    block = selftest_block(model_path.read_bytes(), sidecar, seed, count)
    sidecar["selftest"] = block
    write_json(sidecar_path, sidecar)
    return block
