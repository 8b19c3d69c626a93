"""Import TensorFlow, or Keras on any of its backends, quietly.

TensorFlow 2.20/2.21 with oneDNN segfaults on the backward pass of a 1x1 stride-2
Conv2D. Our network never emits that op (shortcuts pool first, then project), so
oneDNN stays on and keeps its ~2x CPU speed.

Training needs only Keras 3, so `KERAS_BACKEND=jax` (or `torch`) trains on a GPU
machine that has JAX or PyTorch but no TensorFlow; quantizing always needs
TensorFlow's converter.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
from collections.abc import Iterator
from types import ModuleType
from typing import Any

from convert.errors import BackendError


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


def keras_backend() -> str:
    return os.environ.get("KERAS_BACKEND", "tensorflow")


def import_tensorflow(threads: int | None = None) -> ModuleType:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
    except ImportError as exc:
        raise BackendError(f"TensorFlow cannot be imported ({exc}): pip install "
                           "'edge-emotion[build]'; training alone can also run on "
                           "KERAS_BACKEND=jax or torch") from None

    if threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(max(1, threads // 2))
        except RuntimeError:  # already initialised in this process
            pass
    return tf


KERAS_BACKENDS = ("tensorflow", "jax", "torch", "numpy", "openvino")


def import_keras(threads: int | None = None) -> ModuleType:
    """Keras 3 on the backend `KERAS_BACKEND` names (TensorFlow by default)."""
    if keras_backend() not in KERAS_BACKENDS:
        raise BackendError(f"KERAS_BACKEND={keras_backend()!r} is not one of "
                           f"{', '.join(KERAS_BACKENDS)}")
    if keras_backend() == "tensorflow":
        import_tensorflow(threads)  # first, so the oneDNN and thread settings apply
    try:
        import keras
    except ImportError as exc:
        raise BackendError(f"Keras on the {keras_backend()!r} backend cannot be imported "
                           f"({exc}); install it or set KERAS_BACKEND") from None

    return keras


def backend_version() -> str:
    """`name version` of the backend doing the maths, for run records."""
    name = keras_backend()
    try:
        version = __import__(name).__version__
    except (ImportError, AttributeError):
        version = "unknown"
    return f"{name} {version}"


def compute_description() -> str:
    """What the training maths runs on, e.g. `NVIDIA H200 (jax)` or `CPU, 2 cores`."""
    name = keras_backend()
    try:
        if name == "jax":
            import jax

            device = jax.devices()[0]
            if device.platform != "cpu":
                return f"{device.device_kind} ({name})"
        elif name == "torch":
            import torch

            if torch.cuda.is_available():
                return f"{torch.cuda.get_device_name(0)} ({name})"
        else:
            tf = import_tensorflow()
            gpus = tf.config.list_physical_devices("GPU")
            if gpus:
                details = tf.config.experimental.get_device_details(gpus[0])
                return f"{details.get('device_name', 'GPU')} ({name})"
    except Exception:  # a description must never stop training
        pass
    return f"CPU, {os.cpu_count()} cores ({name})"
