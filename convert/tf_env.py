"""Import TensorFlow the one safe way.

TensorFlow 2.20/2.21 with oneDNN segfaults on the backward pass of a 1x1 stride-2
Conv2D. Our network never emits that op (shortcuts pool first, then project), so
oneDNN stays on and keeps its ~2x CPU speed. Models from elsewhere may contain the
op, so `EDGE_SAFE_TF=1` turns oneDNN off before TensorFlow is first imported.
"""

from __future__ import annotations

import os
from types import ModuleType


def import_tensorflow(threads: int | None = None) -> ModuleType:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if os.environ.get("EDGE_SAFE_TF") == "1":
        os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"
    import tensorflow as tf

    if threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(max(1, threads // 2))
        except RuntimeError:  # already initialised in this process
            pass
    return tf
