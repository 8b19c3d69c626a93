"""Keras model to a full-integer TFLite model (int8 in, int8 out) plus its JSON sidecar.

The device runs int8 only: every op must be an int8 builtin, with no float
fallback and no Quantize/Dequantize at the edges. The converter is asked for
exactly that and the result is checked op by op before anything is written, so a
model that would silently run in float on the Pi never reaches `models/`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from convert.data import SIDE, FaceSet
from convert.equalize import DEFAULT_CAP, equalize_separable
from convert.ranges import quantize_calibrated, robust_ranges
from convert.selftest import selftest_block
from convert.tf_env import import_tensorflow
from edge.align import FER_FRAMING
from edge.classify import ALWAYS, SIDECAR_FORMAT, load_interpreter_class, sha256_of
from edge.errors import ModelError, first_line
from edge.labels import FER2013_LABELS

# How FER2013 frames its faces (eye line height, eye distance, as fractions of the
# side), measured by bench/fer_framing.py; the device crops to it. --framing-json overrides.
DEFAULT_FRAMING: dict[str, float] = dict(FER_FRAMING)
INPUT_NOTE = "float input is the raw grayscale pixel 0..255; the network rescales internally"
INPUT_SHAPE = (1, SIDE, SIDE, 1)
# Raw pixel p maps to int8 p - 128: lossless, and no float maths on the device.
EXPECTED_INPUT_QUANT = (1.0, -128)
# TFLite's int8 softmax always emits probabilities with this fixed quantization.
EXPECTED_OUTPUT_QUANT = (1.0 / 256.0, -128)
# int32 appears only as bias and shape operands of int8 kernels.
ALLOWED_OPERAND_DTYPES = (np.int8, np.int32)
FORBIDDEN_OPS = ("QUANTIZE", "DEQUANTIZE")
# Chosen on held-out Training faces (never PublicTest) by int8-vs-float fidelity:
# bench/range_quantile.py, figures in docs/training/range_quantile.json.
DEFAULT_RANGE_QUANTILE = 0.95
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


class ConversionError(ValueError):
    """The converter failed, or its result is not the full-int8 model we ship."""


# --- quiet TensorFlow -------------------------------------------------------------


@contextlib.contextmanager
def quiet_native_output() -> Iterator[io.StringIO]:
    """Silence C++ and Python chatter (absl, MLIR, Keras export) for the block.

    TensorFlow writes hundreds of lines straight to file descriptors 1 and 2,
    which would bury the CLI's own output and break its one-line errors. The text
    is kept in the yielded buffer so a failure can still quote it.
    """
    captured = io.StringIO()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError, OSError):
            stream.flush()
    try:
        saved = [os.dup(1), os.dup(2)]
    except OSError:  # no real fds 1 and 2 (embedded interpreters): only Python's streams
        with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
            yield captured
        return
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
                yield captured
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            sink.seek(0)
            captured.write(sink.read().decode(errors="replace"))


def quiet_tensorflow(threads: int | None = None) -> Any:
    """Import TensorFlow without its absl/oneDNN start-up lines on stderr."""
    with quiet_native_output():
        return import_tensorflow(threads)


# --- source model -----------------------------------------------------------------


def model_kind(path: Path) -> str:
    """'savedmodel', 'keras' or 'h5', checked before TensorFlow is imported."""
    if not path.exists():
        raise ModelError(f"{path}: no such model file or folder")
    if path.is_dir():
        if not (path / "saved_model.pb").exists():
            raise ModelError(f"{path}: folder is not a SavedModel (no saved_model.pb)")
        return "savedmodel"
    suffix = path.suffix.lower()
    if suffix == ".keras":
        # Keras reports a non-zip .keras file as "File not found": say what is wrong.
        if not zipfile.is_zipfile(path):
            raise ModelError(f"{path}: not a Keras model (a .keras file is a zip archive)")
        return "keras"
    if suffix in (".h5", ".hdf5"):
        with open(path, "rb") as f:
            if f.read(len(HDF5_MAGIC)) != HDF5_MAGIC:
                raise ModelError(f"{path}: not a Keras model (not an HDF5 file)")
        return "h5"
    raise ModelError(f"{path}: not a .keras, .h5 or SavedModel folder")


def load_keras_model(tf: Any, path: Path) -> Any:
    """A Keras model from .keras/.h5, checked to map (N,48,48,1) pixels to 7 classes."""
    try:
        with quiet_native_output():
            model = tf.keras.models.load_model(path, compile=False)
    except Exception as exc:  # Keras raises ValueError/OSError/KeyError variously
        raise ModelError(f"{path}: not a loadable Keras model ({first_line(exc)})") from None
    in_shape = tuple(model.input_shape[1:]) if not isinstance(model.input_shape, list) else ()
    out_shape = tuple(model.output_shape[1:]) if not isinstance(model.output_shape, list) else ()
    if in_shape != INPUT_SHAPE[1:] or out_shape != (len(FER2013_LABELS),):
        raise ModelError(f"{path}: model maps {model.input_shape} to {model.output_shape}, "
                         f"expected (None, 48, 48, 1) to (None, {len(FER2013_LABELS)})")
    return model


def source_sha256(path: Path) -> str:
    """sha256 of a model file, or of a SavedModel folder's relative paths and bytes."""
    if path.is_file():
        return sha256_of(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        digest.update(sha256_of(file).encode())
    return digest.hexdigest()


# --- calibration ------------------------------------------------------------------


@dataclass(frozen=True)
class Calibration:
    """The representative faces the converter measures activation ranges on."""

    x: np.ndarray  # float32 (N, 48, 48, 1), raw 0..255 pixels like the Keras model takes
    source: str
    per_class: int
    seed: int
    range_quantile: float  # 1: TFLite's absolute min/max; below: convert.ranges
    index: np.ndarray  # which training faces were drawn
    equalize_cap: float = DEFAULT_CAP  # convert.equalize before converting; 0: off

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "per_class": self.per_class, "total": len(self.x),
                "seed": self.seed, "range_quantile": self.range_quantile,
                "ranges": ("absolute min/max" if self.range_quantile >= 1 else
                           f"{self.range_quantile:g}-quantile of per-face extremes"),
                "equalization": (f"depthwise output channels scaled toward the widest, "
                                 f"at most {self.equalize_cap:g}x" if self.equalize_cap > 0
                                 else "none")}


def calibration_set(faces: FaceSet, size: int, seed: int, classes: int = len(FER2013_LABELS),
                    range_quantile: float = DEFAULT_RANGE_QUANTILE,
                    equalize_cap: float = DEFAULT_CAP) -> Calibration:
    """Class-balanced sample: Disgust is 1.5% of FER2013, yet its activations count too."""
    if size < 1:
        raise ConversionError(f"calibration size must be >= 1, is {size}")
    if not 0.5 <= range_quantile <= 1.0:
        raise ConversionError(f"range quantile must be in 0.5..1, is {range_quantile:g}")
    if equalize_cap != 0 and equalize_cap < 1:
        raise ConversionError(f"equalization cap must be 0 (off) or >= 1, is {equalize_cap:g}")
    rng = np.random.default_rng(seed)
    per_class = max(1, size // classes)
    picked: list[np.ndarray] = []
    for label in range(classes):
        members = np.flatnonzero(faces.y == label)
        if len(members):  # a class the data lacks cannot be represented
            picked.append(rng.choice(members, min(per_class, len(members)), replace=False))
    index = rng.permutation(np.concatenate(picked))
    x = _pin_input_range(faces.x[index])
    # Record what was drawn: a class short of faces shows as total < 7 * per_class.
    drawn = max(len(p) for p in picked)
    return Calibration(x[..., None].astype(np.float32), faces.source, drawn, seed,
                       range_quantile, index, equalize_cap)


def _pin_input_range(x: np.ndarray) -> np.ndarray:
    """Make sure the sample spans 0..255, so the input quantization is exactly (1, -128).

    The converter derives the input scale from the observed pixel range. Real FER2013
    samples of any useful size contain both extremes and are left untouched; only a
    sample that lacks one gets a single corner pixel set, which barely moves any
    other layer's range.
    """
    if x.min() == 0 and x.max() == 255:
        return x
    x = x.copy()
    x[0, 0, 0] = 0
    x[-1, 0, -1] = 255
    return x


def representative_dataset(calibration: Calibration) -> Callable[[], Iterator[list[np.ndarray]]]:
    def faces() -> Iterator[list[np.ndarray]]:
        for i in range(len(calibration.x)):
            yield [calibration.x[i : i + 1]]

    return faces


# --- conversion -------------------------------------------------------------------


def convert(tf: Any, model_path: Path, calibration: Calibration) -> bytes:
    """Full-integer conversion: int8 builtins only, int8 input and output.

    With `calibration.range_quantile` below 1, activation ranges are the robust
    per-face quantiles of `convert.ranges` instead of TFLite's absolute extremes.
    """
    kind = model_kind(model_path)
    if kind == "savedmodel":
        converter = tf.lite.TFLiteConverter.from_saved_model(str(model_path))
    else:
        model = load_keras_model(tf, model_path)
        if calibration.equalize_cap > 0:  # exact in float; finer int8 steps
            equalize_separable(tf.keras, model, calibration.x, calibration.equalize_cap)
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset(calibration)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    robust = calibration.range_quantile < 1.0
    # Calibrate only; ranges.py rewrites the ranges and runs TFLite's own quantizer.
    converter._experimental_calibrate_only = robust
    with quiet_native_output() as log:
        try:
            content = bytes(converter.convert())
            if robust:
                content = quantize_calibrated(tf, robust_ranges(
                    tf, content, calibration.x[:, None], calibration.range_quantile))
            return content
        except Exception as exc:  # converter errors are long MLIR dumps: keep one line
            reason = first_line(exc)
    lines = [line for line in log.getvalue().splitlines() if "error" in line.lower()]
    raise ConversionError(f"{model_path}: conversion to full int8 failed "
                          f"({lines[-1].strip() if lines else reason})")


@dataclass(frozen=True)
class TensorInfo:
    shape: tuple[int, ...]
    dtype: str
    scale: float
    zero_point: int

    def to_dict(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "dtype": self.dtype,
                "quantization": {"scale": self.scale, "zero_point": self.zero_point}}


@dataclass(frozen=True)
class Inspection:
    """What a .tflite holds, as LiteRT sees it (no TensorFlow needed)."""

    input: TensorInfo
    output: TensorInfo
    ops: tuple[str, ...]
    non_int8_ops: tuple[str, ...]  # "OP (tensor dtype)" for every offending op


def _tensor_info(detail: dict[str, Any]) -> TensorInfo:
    scale, zero_point = detail["quantization"]
    return TensorInfo(tuple(int(d) for d in detail["shape"]), np.dtype(detail["dtype"]).name,
                      float(scale), int(zero_point))


def _interpreter_without_delegates(content: bytes) -> Any:
    """An interpreter showing the model's own ops, not XNNPACK's fused DELEGATE node."""
    interpreter_class, _ = load_interpreter_class()
    try:
        from ai_edge_litert.interpreter import OpResolverType

        return interpreter_class(
            model_content=content,
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    except (ImportError, TypeError):  # other runtimes: ops are read before delegation
        return interpreter_class(model_content=content)


def inspect_tflite(content: bytes) -> Inspection:
    try:
        interpreter = _interpreter_without_delegates(content)
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"not a loadable TFLite model ({first_line(exc)})") from None
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    ops, offending = [], []
    for op in interpreter._get_ops_details():
        name = op["op_name"]
        ops.append(name)
        operands = [tensors[i] for i in (*op["inputs"], *op["outputs"]) if i >= 0]
        bad = [np.dtype(t["dtype"]).name for t in operands
               if np.dtype(t["dtype"]) not in ALLOWED_OPERAND_DTYPES]
        bad += [np.dtype(tensors[i]["dtype"]).name for i in op["outputs"]
                if i >= 0 and np.dtype(tensors[i]["dtype"]) != np.int8]
        if name in FORBIDDEN_OPS or bad:
            offending.append(f"{name} ({', '.join(sorted(set(bad))) or 'float boundary'})")
    return Inspection(_tensor_info(interpreter.get_input_details()[0]),
                      _tensor_info(interpreter.get_output_details()[0]),
                      tuple(ops), tuple(offending))


def check_full_int8(inspection: Inspection, classes: int = len(FER2013_LABELS)) -> None:
    """Raise ConversionError unless the model is the int8 contract the device expects."""
    problems = []
    if inspection.non_int8_ops:
        problems.append(f"non-int8 ops: {', '.join(inspection.non_int8_ops)}")
    for name, tensor, shape, quant in (
            ("input", inspection.input, INPUT_SHAPE, EXPECTED_INPUT_QUANT),
            ("output", inspection.output, (1, classes), EXPECTED_OUTPUT_QUANT)):
        if tensor.dtype != "int8":
            problems.append(f"{name} is {tensor.dtype}, not int8")
        if tensor.shape != shape:
            problems.append(f"{name} shape {list(tensor.shape)}, expected {list(shape)}")
        if (not np.isclose(tensor.scale, quant[0], rtol=1e-6, atol=0)
                or tensor.zero_point != quant[1]):
            problems.append(f"{name} quantization ({tensor.scale}, {tensor.zero_point}), "
                            f"expected {quant}")
    if problems:
        raise ConversionError("not a full-int8 model: " + "; ".join(problems))


# --- sidecar ----------------------------------------------------------------------


def write_json(path: Path, data: dict[str, Any]) -> None:
    """One formatting for every sidecar write, so an update changes only what it sets."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


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
                  calibration: Calibration, framing: dict[str, float],
                  tf_version: str, mirror_average: bool = False,
                  mirror_margin: float = ALWAYS) -> dict[str, Any]:
    """The device's contract for this model (edge.classify.Sidecar reads it)."""
    inference: dict[str, Any] = {"mirror_average": mirror_average}
    if mirror_average and mirror_margin < ALWAYS:  # only near-ties get the second invoke
        inference["mirror_margin"] = mirror_margin
    return {
        "format": SIDECAR_FORMAT,
        "labels": list(FER2013_LABELS),
        "input": {
            "shape": list(inspection.input.shape),
            "dtype": inspection.input.dtype,
            "normalisation": {"mean": 0.0, "std": 1.0, "note": INPUT_NOTE},
            "quantization": inspection.input.to_dict()["quantization"],
        },
        "output": {
            "shape": list(inspection.output.shape),
            "dtype": inspection.output.dtype,
            "kind": "probabilities",
            "quantization": inspection.output.to_dict()["quantization"],
        },
        "framing": framing,
        # Average each face with its mirror image (the network was trained on both).
        "inference": inference,
        "source_model": {"path": str(model_path), "sha256": source_sha256(model_path)},
        "tflite_sha256": hashlib.sha256(content).hexdigest(),
        "size_bytes": len(content),
        "calibration": calibration.to_dict(),
        "converter": {"tensorflow": tf_version},
        "metrics": {},
    }


def quantize(model_path: Path, train_faces: FaceSet, out_path: Path, calibration_size: int = 1000,
             seed: int = 1234, framing: dict[str, float] | None = None,
             mirror_average: bool = False,
             range_quantile: float = DEFAULT_RANGE_QUANTILE,
             equalize_cap: float = DEFAULT_CAP,
             mirror_margin: float = ALWAYS) -> dict[str, Any]:
    """Convert, check, then write OUT.tflite and OUT.json; returns the sidecar."""
    model_kind(model_path)  # fail on a missing or foreign file before importing TensorFlow
    if out_path.suffix != ".tflite":
        raise ConversionError(f"{out_path}: output must end in .tflite")
    calibration = calibration_set(train_faces, calibration_size, seed,
                                  range_quantile=range_quantile, equalize_cap=equalize_cap)
    tf = quiet_tensorflow()
    content = convert(tf, model_path, calibration)
    inspection = inspect_tflite(content)
    check_full_int8(inspection)
    sidecar = build_sidecar(inspection, content, model_path, calibration,
                            dict(DEFAULT_FRAMING) if framing is None else framing, tf.__version__,
                            mirror_average, mirror_margin)
    sidecar["selftest"] = selftest_block(content, sidecar)  # the device checks its kernels
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    tmp.write_bytes(content)
    tmp.replace(out_path)
    write_json(out_path.with_suffix(".json"), sidecar)
    return sidecar
