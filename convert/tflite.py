"""Keras model to full-integer TFLite, and the check that the result is what we ship.

The device runs int8 only: every op must be an int8 builtin, with no float
fallback and no Quantize/Dequantize at the edges. The converter is asked for
exactly that and the result is checked op by op before anything is written, so a
model that would silently run in float on the Pi never reaches `models/`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from convert.calibration import Calibration, representative_dataset
from convert.checkpoints import load_keras_model, model_kind
from convert.data import INPUT_SHAPE
from convert.equalize import equalize_separable
from convert.errors import ConversionError
from convert.ranges import quantize_calibrated, robust_ranges
from convert.tf_env import quiet_native_output
from edge.classify import load_interpreter_class
from edge.errors import ModelError, first_line
from edge.model_contract import FER2013_LABELS, TensorSpec

# Raw pixel p maps to int8 p - 128: lossless, and no float maths on the device.
EXPECTED_INPUT_QUANT = (1.0, -128)
# TFLite's int8 softmax always emits probabilities with this fixed quantization.
EXPECTED_OUTPUT_QUANT = (1.0 / 256.0, -128)
# int32 appears only as bias and shape operands of int8 kernels.
ALLOWED_OPERAND_DTYPES = (np.int8, np.int32)
FORBIDDEN_OPS = ("QUANTIZE", "DEQUANTIZE")


@dataclass(frozen=True)
class Converted:
    content: bytes  # the .tflite
    equalized: int  # separable layers convert.equalize rescaled first (0: none)


def convert(tf: Any, model_path: Path, calibration: Calibration) -> Converted:
    """Full-integer conversion: int8 builtins only, int8 input and output.

    With `calibration.range_quantile` below 1, activation ranges are the robust
    per-face quantiles of `convert.ranges` instead of TFLite's absolute extremes.
    Equalization needs this repository's Keras network: a SavedModel, or a Keras
    model without its core, converts unequalized, and `equalized` says so.
    """
    equalized = 0
    if model_kind(model_path) == "savedmodel":
        converter = tf.lite.TFLiteConverter.from_saved_model(str(model_path))
    else:
        model = load_keras_model(tf, model_path)
        if calibration.equalize_cap > 0:  # exact in float; finer int8 steps
            equalized = equalize_separable(tf.keras, model, calibration.x,
                                           calibration.equalize_cap)
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
            return Converted(content, equalized)
        except Exception as exc:  # converter errors are long MLIR dumps: keep one line
            reason = first_line(exc)
    lines = [line for line in log.getvalue().splitlines() if "error" in line.lower()]
    raise ConversionError(f"{model_path}: conversion to full int8 failed "
                          f"({lines[-1].strip() if lines else reason})")


@dataclass(frozen=True)
class Inspection:
    """What a .tflite holds, as LiteRT sees it (no TensorFlow needed)."""

    input: TensorSpec
    output: TensorSpec
    ops: tuple[str, ...]
    non_int8_ops: tuple[str, ...]  # "OP (tensor dtype)" for every offending op


def _tensor_spec(detail: dict[str, Any]) -> TensorSpec:
    scale, zero_point = detail["quantization"]
    return TensorSpec(tuple(int(d) for d in detail["shape"]), np.dtype(detail["dtype"]).name,
                      (float(scale), int(zero_point)))


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
    return Inspection(_tensor_spec(interpreter.get_input_details()[0]),
                      _tensor_spec(interpreter.get_output_details()[0]),
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
