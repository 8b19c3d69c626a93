"""Per-face classification alone: one 48x48 (or fer's 64x64) face per call.

    python -m bench.baselines.classify_worker SPEC_JSON SPAWNED_AT

spec["extra"] names the models: "int8" and "float32" (.tflite, through the
device's own EmotionClassifier.predict: preprocessing, invoke, dequantize),
"fer_tflite" (fer's shipped model through LiteRT, fed as fer feeds it: float
64x64 scaled to -1..1), "edge_keras" and "original_keras" (float Keras, both
`model.predict` and a direct `model(x, training=False)` call). A missing
model is skipped. Each is timed for up to spec["frames"] calls or
spec["seconds"] seconds after 10 warm-up calls.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from bench.baselines.common import emit, pin_for, summarize, worker_args

WARMUP = 10


def time_calls(call: Callable[[], Any], calls: int, seconds: float) -> dict[str, Any]:
    for _ in range(WARMUP):
        call()
    times: list[float] = []
    deadline = time.perf_counter() + seconds
    while len(times) < calls and time.perf_counter() < deadline:
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return summarize(times)


def litert_runners(extra: dict[str, Any], threads: int, face: Any) -> dict[str, Callable]:
    import cv2
    import numpy as np

    from edge.classify import EmotionClassifier

    runners: dict[str, Callable] = {}
    for name in ("int8", "float32"):
        if extra.get(name):
            classifier = EmotionClassifier(extra[name], threads=threads)
            runners[f"edge {name} TFLite (LiteRT)"] = lambda c=classifier: c.predict(face)
    if extra.get("fer_tflite"):
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=extra["fer_tflite"], num_threads=threads)
        interpreter.allocate_tensors()
        inp = interpreter.get_input_details()[0]["index"]
        out = interpreter.get_output_details()[0]["index"]
        face64 = cv2.resize(face, (64, 64))

        def fer_call() -> Any:
            x = (face64.astype(np.float32)[None, ..., None] / 255.0 - 0.5) * 2.0
            interpreter.set_tensor(inp, x)
            interpreter.invoke()
            return interpreter.get_tensor(out)

        runners["fer TFLite (LiteRT)"] = fer_call
    return runners


def keras_runners(extra: dict[str, Any], threads: int, face: Any) -> dict[str, Callable]:
    import numpy as np

    from convert.quantize import quiet_native_output, quiet_tensorflow

    tf = quiet_tensorflow(threads=threads)
    runners: dict[str, Callable] = {}
    for key, name, scale in (("edge_keras", "edge float Keras", 1.0),
                             ("original_keras", "original-size Keras", 1 / 255.0)):
        if not extra.get(key):
            continue
        with quiet_native_output():
            model = tf.keras.models.load_model(extra[key], compile=False)
        x = face.astype(np.float32)[None, ..., None] * scale
        runners[f"{name} model.predict"] = lambda m=model, x=x: m.predict(x, verbose=0)
        runners[f"{name} __call__"] = lambda m=model, x=x: m(x, training=False)
    return runners


def main(argv: list[str]) -> None:
    spec, _ = worker_args(argv)
    cores = pin_for(spec)
    import numpy as np

    face = np.random.default_rng(0).integers(0, 256, (48, 48), dtype=np.uint8)
    extra = spec.get("extra", {})
    runners = litert_runners(extra, spec["threads"], face)
    runners.update(keras_runners(extra, spec["threads"], face))
    results = {name: time_calls(call, spec["frames"], spec["seconds"])
               for name, call in runners.items()}
    emit({"label": spec["label"], "threads": spec["threads"], "cores": cores,
          "pinned": spec["threads"] == 1 and spec.get("pin") is not None, "models": results})


if __name__ == "__main__":
    main(sys.argv)
