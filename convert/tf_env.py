"""Import TensorFlow, or Keras on any of its backends, the one safe way.

TensorFlow 2.20/2.21 with oneDNN segfaults on the backward pass of a 1x1 stride-2
Conv2D. Our network never emits that op (shortcuts pool first, then project), so
oneDNN stays on and keeps its ~2x CPU speed. Models from elsewhere may contain the
op, so `EDGE_SAFE_TF=1` turns oneDNN off before TensorFlow is first imported.

Training needs only Keras 3, so `KERAS_BACKEND=jax` (or `torch`) trains on a GPU
machine that has JAX or PyTorch but no TensorFlow; quantizing always needs
TensorFlow's converter.
"""

from __future__ import annotations

import os
from types import ModuleType


class BackendError(RuntimeError):
    """The maths library a command needs is not installed: one line says which."""


def keras_backend() -> str:
    return os.environ.get("KERAS_BACKEND", "tensorflow")


def import_tensorflow(threads: int | None = None) -> ModuleType:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if os.environ.get("EDGE_SAFE_TF") == "1":
        os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"
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
