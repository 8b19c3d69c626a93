"""Robust activation ranges for int8 calibration.

TFLite's calibrator sets each activation's int8 range from the single most extreme
value seen in the whole representative set, so one unusual face widens a range for
every face and coarsens the int8 steps. Here each tensor's range is instead the
Q-quantile of the per-face maxima (and the (1-Q)-quantile of the per-face minima),
the way quantization-aware training's moving averages of batch extremes behave:
the rare face beyond it is clipped, every other face gets finer steps.

The same estimator sets the simulated ranges of quantization-aware training
(`convert.qat.calibrate`) and the channel ranges of `convert.equalize`: all three
call `robust_range`/`upper_quantile` here.

Mechanics: convert with calibration only (a float model that records min/max per
tensor), run that model on the same faces keeping every intermediate tensor,
replace the recorded min/max, then let TFLite's own quantizer finish the job.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

# Chosen on held-out Training faces (never PublicTest) by int8-vs-float fidelity:
# research/range_quantile.py, figures in docs/training/range_quantile.json.
DEFAULT_RANGE_QUANTILE = 0.95


def upper_quantile(highs: np.ndarray, quantile: float) -> np.ndarray:
    """Per column: the `quantile` of the per-face maxima in `highs` (faces, columns)."""
    return np.quantile(highs, quantile, axis=0)


def robust_range(lows: np.ndarray, highs: np.ndarray,
                 quantile: float) -> tuple[np.ndarray, np.ndarray]:
    """Per column: (low, high) from per-face minima and maxima (faces, columns).

    The (1-Q)-quantile of the minima and the Q-quantile of the maxima, widened to
    include zero, which must stay representable (padding, ReLU), as TFLite requires.
    """
    low = np.quantile(lows, 1.0 - quantile, axis=0)
    return np.minimum(low, 0.0), np.maximum(upper_quantile(highs, quantile), 0.0)


def per_face_extremes(tf: Any, calibrated: bytes, faces: Iterable[np.ndarray],
                      tensors: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(faces, tensors) arrays of each face's minimum and maximum of each tensor."""
    interpreter = tf.lite.Interpreter(
        model_content=calibrated, experimental_preserve_all_tensors=True,
        # Delegates fuse ops and drop the intermediate tensors we need to read.
        experimental_op_resolver_type=(
            tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES))
    interpreter.allocate_tensors()
    feed = interpreter.get_input_details()[0]["index"]
    lows, highs = [], []
    for face in faces:
        interpreter.set_tensor(feed, face)
        interpreter.invoke()
        values = [interpreter.get_tensor(i) for i in tensors]
        lows.append([v.min() for v in values])
        highs.append([v.max() for v in values])
    return np.asarray(lows, np.float64), np.asarray(highs, np.float64)


def robust_ranges(tf: Any, calibrated: bytes, faces: Iterable[np.ndarray],
                  quantile: float) -> bytes:
    """The calibrated model with each activation range narrowed to the quantile."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(calibrated))
    graph = model.subgraphs[0]
    # Per-tensor activation ranges only; the model input keeps its pinned 0..255.
    tensors = [i for i, t in enumerate(graph.tensors)
               if i not in graph.inputs and t.quantization is not None
               and t.quantization.min is not None and len(t.quantization.min) == 1]
    low, high = robust_range(*per_face_extremes(tf, calibrated, faces, tensors), quantile)
    for index, lo, hi in zip(tensors, low, high, strict=True):
        quantization = graph.tensors[index].quantization
        quantization.min = [float(lo)]
        quantization.max = [float(hi)]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def quantize_calibrated(tf: Any, calibrated: bytes) -> bytes:
    """TFLite's quantizer on a calibrated model: full int8, int8 input and output."""
    from tensorflow.lite.python import convert as lite_convert

    return bytes(lite_convert.mlir_quantize(calibrated, fully_quantize=True,
                                            input_data_type=tf.int8,
                                            output_data_type=tf.int8))
