"""Record the device's self-test (edge.selftest) in a model's sidecar.

`edge-convert quantize` does it for every new model; `edge-convert selftest` does it for
a model that already exists, changing only the sidecar's `selftest` block (the .tflite
stays byte-identical: its sha256 must match the one the sidecar already records).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from edge import selftest
from edge.classify import sha256_of
from edge.errors import ModelError
from edge.model_contract import Sidecar


def selftest_block(content: bytes, sidecar: Sidecar, seed: int = selftest.DEFAULT_SEED,
                   count: int = selftest.DEFAULT_COUNT) -> dict[str, Any]:
    """The sidecar's `selftest` block for a model's bytes."""
    if count < 1:
        raise ModelError(f"self-test count must be >= 1, is {count}")
    return selftest.record(content, sidecar.output, seed, count).to_dict()


def record_in_sidecar(model_path: Path, seed: int = selftest.DEFAULT_SEED,
                      count: int = selftest.DEFAULT_COUNT) -> dict[str, Any]:
    """Add (or replace) the `selftest` block of MODEL.json; returns the block."""
    if not model_path.is_file():
        raise ModelError(f"{model_path}: model file not found")
    sidecar_path = model_path.with_suffix(".json")
    sidecar = Sidecar.read(sidecar_path)
    if sidecar.tflite_sha256 and sidecar.tflite_sha256 != sha256_of(model_path):
        raise ModelError(f"{sidecar_path}: records tflite_sha256 {sidecar.tflite_sha256[:12]}"
                         f"..., but {model_path} differs; re-quantize instead")
    block = selftest_block(model_path.read_bytes(), sidecar, seed, count)
    replace(sidecar, selftest=block).write(sidecar_path)
    return block
