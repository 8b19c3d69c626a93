"""`edge-convert quantize`: a Keras model to models/NAME.tflite plus its sidecar NAME.json.

Draw the calibration faces, convert to full int8 (`convert.tflite`), check the
result is the int8 contract, then write both files; the sidecar is built as an
`edge.model_contract.Sidecar`, the one definition of its layout.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

from convert.calibration import Calibration, calibration_set
from convert.checkpoints import model_kind, source_sha256
from convert.data import FaceSet
from convert.equalize import DEFAULT_CAP
from convert.errors import ConversionError
from convert.ranges import DEFAULT_RANGE_QUANTILE
from convert.selftest import selftest_block
from convert.tf_env import quiet_tensorflow
from convert.tflite import Inspection, check_full_int8, convert, inspect_tflite
from edge.align import FER_FRAMING
from edge.errors import first_line
from edge.model_contract import ALWAYS, FER2013_LABELS, Sidecar

# How FER2013 frames its faces (eye line height, eye distance, as fractions of the
# side), measured by research/fer_framing.py; the device crops to it. --framing-json overrides.
DEFAULT_FRAMING: dict[str, float] = dict(FER_FRAMING)


def load_framing(value: str | None) -> dict[str, float]:
    """--framing-json: a JSON file or an inline JSON object of numbers (replaces the default)."""
    if value is None:
        return dict(DEFAULT_FRAMING)
    path = Path(value)
    try:
        text = path.read_text() if path.is_file() else value
        framing = json.loads(text)
    except (OSError, ValueError) as exc:
        raise ConversionError(f"--framing-json {value}: not JSON ({first_line(exc)})") from None
    if not isinstance(framing, dict) or not framing or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in framing.values()):
        raise ConversionError(f"--framing-json {value}: must be an object of numbers")
    return {str(k): float(v) for k, v in framing.items()}


def build_sidecar(inspection: Inspection, content: bytes, model_path: Path,
                  calibration: Calibration, equalized: int, framing: dict[str, float],
                  tf_version: str, mirror_average: bool = False,
                  mirror_margin: float = ALWAYS) -> Sidecar:
    """The device's contract for this model, with where it came from."""
    return Sidecar(
        labels=FER2013_LABELS, input=inspection.input, output=inspection.output,
        framing=framing, mean=0.0, std=1.0,  # the network takes raw pixels
        mirror_average=mirror_average, mirror_margin=mirror_margin,
        source_model={"path": str(model_path), "sha256": source_sha256(model_path)},
        tflite_sha256=hashlib.sha256(content).hexdigest(), size_bytes=len(content),
        calibration=calibration.to_dict(equalized), converter={"tensorflow": tf_version})


def quantize(model_path: Path, train_faces: FaceSet, out_path: Path, calibration_size: int = 1000,
             seed: int = 1234, framing: dict[str, float] | None = None,
             mirror_average: bool = False,
             range_quantile: float = DEFAULT_RANGE_QUANTILE,
             equalize_cap: float = DEFAULT_CAP,
             mirror_margin: float = ALWAYS) -> Sidecar:
    """Convert, check, then write OUT.tflite and OUT.json; returns the sidecar."""
    if out_path.suffix != ".tflite":
        raise ConversionError(f"{out_path}: output must end in .tflite")
    calibration = calibration_set(train_faces, calibration_size, seed,
                                  range_quantile=range_quantile, equalize_cap=equalize_cap)
    model_kind(model_path)  # fail on a missing or foreign file before importing TensorFlow
    tf = quiet_tensorflow()
    converted = convert(tf, model_path, calibration)
    inspection = inspect_tflite(converted.content)
    check_full_int8(inspection)
    sidecar = build_sidecar(inspection, converted.content, model_path, calibration,
                            converted.equalized,
                            dict(DEFAULT_FRAMING) if framing is None else framing, tf.__version__,
                            mirror_average, mirror_margin)
    # The device checks its kernels against these outputs at start (edge.selftest).
    sidecar = replace(sidecar, selftest=selftest_block(converted.content, sidecar))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    tmp.write_bytes(converted.content)
    tmp.replace(out_path)
    sidecar.write(out_path.with_suffix(".json"))
    return sidecar
