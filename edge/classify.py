"""The int8 emotion classifier: LiteRT interpreter + the sidecar's preprocessing.

This is the only implementation of model preprocessing: the device runs it and
`edge-convert evaluate` runs it, so the two can never normalise differently.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edge import selftest
from edge.errors import ModelError, first_line
from edge.model_contract import ALWAYS, Sidecar, mirror_averaged, needs_mirror

# Sidecar and the mirror rule live in edge.model_contract; re-exported for existing callers.
__all__ = ["ALWAYS", "EmotionClassifier", "Sidecar", "load_interpreter_class", "mirror_averaged",
           "native_stderr_silenced", "needs_mirror", "sha256_of"]


def load_interpreter_class() -> tuple[Any, str]:
    """LiteRT first, then tflite_runtime, then TensorFlow's copy (build machines)."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai_edge_litert"
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter

        return Interpreter, "tflite_runtime"
    except ImportError:
        pass
    try:
        import tensorflow as tf

        return tf.lite.Interpreter, "tensorflow.lite"
    except ImportError:
        raise ModelError(
            "no TFLite interpreter: pip install ai-edge-litert (or tflite-runtime)"
        ) from None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Hide the runtime's C++ 'Created TensorFlow Lite XNNPACK delegate' banner.

    It goes straight to file descriptor 2, so it would be the first line of every
    one-line error and of every journal start-up; Python's sys.stderr is untouched.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (embedded interpreters, some tests)
        yield
        return
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class EmotionClassifier:
    """Classifies aligned 48x48 grayscale faces with the int8 model."""

    def __init__(self, model_path: str | Path, threads: int = 1,
                 sidecar_path: str | Path | None = None,
                 mirror_average: bool | None = None) -> None:
        self.model_path = Path(model_path)
        if not self.model_path.exists():
            raise ModelError(f"{self.model_path}: model file not found")
        if self.model_path.is_dir():
            raise ModelError(f"{self.model_path}: is a folder, not a .tflite model file")
        self.sidecar = Sidecar.read(
            Path(sidecar_path) if sidecar_path else self.model_path.with_suffix(".json"))
        # None: as the sidecar says (the model was evaluated that way); True forces
        # every face to be mirrored.
        self.mirror_average = (self.sidecar.mirror_average if mirror_average is None
                               else mirror_average)
        self.mirror_margin = self.sidecar.mirror_margin if mirror_average is None else ALWAYS
        self._interpreter_class, self.runtime = load_interpreter_class()
        self._threads = max(1, threads)
        self._open_interpreter()
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self._check_contract()
        in_scale, in_zero = self._input["quantization"]
        self._quantize_input = self._input["dtype"] != np.float32
        # Fold mean/std and the input quantization into one affine map of the pixel.
        if self._quantize_input:
            self._in_gain = 1.0 / (self.sidecar.std * in_scale)
            self._in_bias = in_zero - self.sidecar.mean * self._in_gain
            info = np.iinfo(self._input["dtype"])
            self._in_range = (info.min, info.max)
        out_scale, out_zero = self._output["quantization"]
        self._out_scale = out_scale if self._output["dtype"] != np.float32 else 1.0
        self._out_zero = out_zero if self._output["dtype"] != np.float32 else 0
        self.input_size = int(self._input["shape"][1])
        # Wrong kernels give plausible wrong labels, not crashes: test them once, now.
        self.self_test = selftest.verify(self)

    def _open_interpreter(self, **options: Any) -> None:
        try:
            with native_stderr_silenced():
                self._interpreter = self._interpreter_class(
                    model_path=str(self.model_path), num_threads=self._threads, **options)
                self._interpreter.allocate_tensors()
        except Exception as exc:  # the runtimes raise ValueError/RuntimeError variously
            raise ModelError(f"{self.model_path}: not a loadable TFLite model "
                             f"({first_line(exc)})") from None
        self.kernels = "XNNPACK" if selftest.uses_delegate(self._interpreter) else "builtin"

    def reopen_without_delegates(self) -> bool:
        """Swap to the runtime's builtin kernels (no XNNPACK); False if it cannot."""
        resolver = selftest.op_resolver_type(self._interpreter_class)
        if resolver is None or self.kernels == "builtin":
            return False
        self._open_interpreter(experimental_op_resolver_type=(
            resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES))
        return True

    @property
    def labels(self) -> tuple[str, ...]:
        return self.sidecar.labels

    @property
    def framing(self) -> dict[str, float]:
        """Where the model wants the eyes in its crop (edge.align)."""
        return self.sidecar.framing

    def _check_contract(self) -> None:
        shape = tuple(int(d) for d in self._input["shape"])
        if len(shape) != 4 or shape[1:] != (48, 48, 1):
            raise ModelError(f"{self.model_path}: input shape {list(shape)} is not "
                             "[1, 48, 48, 1] (a 48x48 grayscale face)")
        if shape[1:] != self.sidecar.input_shape[1:]:
            raise ModelError(f"{self.model_path}: sidecar says input "
                             f"{list(self.sidecar.input_shape)}, model has {list(shape)}")
        classes = int(np.prod(self._output["shape"][1:]))
        if classes != len(self.sidecar.labels):
            raise ModelError(f"{self.model_path}: {classes} outputs but the sidecar has "
                             f"{len(self.sidecar.labels)} labels")

    def preprocess(self, faces: np.ndarray) -> np.ndarray:
        """uint8 (N, 48, 48) pixels to the model's input tensor (N, 48, 48, 1)."""
        pixels = faces.astype(np.float32)[..., None]
        if not self._quantize_input:
            return (pixels - self.sidecar.mean) / self.sidecar.std
        q = np.rint(pixels * self._in_gain + self._in_bias)
        return np.clip(q, *self._in_range).astype(self._input["dtype"])

    def predict(self, faces: np.ndarray) -> np.ndarray:
        """Class probabilities (N, classes) for uint8 (N, 48, 48) faces."""
        return self.predict_and_mirrored(faces)[0]

    def predict_and_mirrored(self, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Class probabilities, and which faces also got the mirror pass."""
        if faces.ndim == 2:
            faces = faces[None]
        out = self.predict_once(faces)
        if not self.mirror_average:
            return out, np.zeros(len(out), dtype=bool)
        # Test-time mirroring: one more invoke, steadier output.
        return mirror_averaged(out, faces, self.mirror_margin, self.predict_once)

    def predict_once(self, faces: np.ndarray) -> np.ndarray:
        """One pass of the model, without mirroring."""
        if faces.ndim == 2:
            faces = faces[None]
        if faces.shape[1:] != (self.input_size, self.input_size):
            raise ValueError(f"faces must be (N, {self.input_size}, {self.input_size}), "
                             f"got {faces.shape}")
        return self._invoke_each(self.preprocess(faces))

    def _invoke_each(self, tensor: np.ndarray) -> np.ndarray:
        out = np.empty((len(tensor), len(self.labels)), dtype=np.float32)
        for i in range(len(tensor)):  # the model has batch 1: resizing would re-plan XNNPACK
            self._interpreter.set_tensor(self._input["index"], tensor[i : i + 1])
            self._interpreter.invoke()
            raw = self._interpreter.get_tensor(self._output["index"])[0]
            out[i] = (raw.astype(np.float32) - self._out_zero) * self._out_scale
        return out
