"""Baseline: the original project's way, on the prepared clip.

Every frame: decode, gray, dlib HOG with upsample 1 on the full-resolution
frame (no downscaling, no detect-every-N), 68 landmarks and the eye aspect
ratio for blinks, then a crop of the HOG box resized to 48x48, scaled to 0..1
and classified by a float Keras Xception (~2.9M parameters, random weights:
timing only) with one `model.predict` call per face.

    python -m bench.baselines.original_worker SPEC_JSON SPAWNED_AT   # spec["extra"]["keras_model"]
"""

from __future__ import annotations

import sys
import time
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

STAGES = ("decode", "detect", "landmarks", "crop", "classify", "blinks")


def crop_face(gray: Any, rect: Any) -> Any:
    import cv2
    import numpy as np

    top, left = max(0, rect.top()), max(0, rect.left())
    face = gray[top : rect.bottom() + 1, left : rect.right() + 1]
    face = cv2.resize(face, (48, 48))
    return face.astype(np.float32)[None, ..., None] / 255.0


def main(argv: list[str]) -> None:
    spec, spawned_at = worker_args(argv)
    cores = pin_for(spec)
    from convert.quantize import quiet_native_output, quiet_tensorflow

    tf = quiet_tensorflow(threads=spec["threads"])
    import cv2
    import dlib

    from edge.faces import find_landmark_model
    from edge.landmarks import mean_ear

    model_path = spec["extra"]["keras_model"]
    with quiet_native_output():
        model = tf.keras.models.load_model(model_path, compile=False)
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(find_landmark_model(spec.get("landmarks") or None)))
    clip = LoopingClip(spec["clip"])
    import numpy as np

    def step() -> tuple[dict[str, float], int]:
        clock = time.perf_counter
        times = dict.fromkeys(STAGES, 0.0)
        t0 = clock()
        gray = cv2.cvtColor(clip.read(), cv2.COLOR_BGR2GRAY)
        t1 = clock()
        rects = detector(gray, 1)
        times["decode"], times["detect"] = t1 - t0, clock() - t1
        for rect in rects:
            t0 = clock()
            shape = predictor(gray, rect)
            points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
            t1 = clock()
            mean_ear(points)
            t2 = clock()
            x = crop_face(gray, rect)
            t3 = clock()
            model.predict(x, verbose=0)
            t4 = clock()
            times["landmarks"] += t1 - t0
            times["blinks"] += t2 - t1
            times["crop"] += t3 - t2
            times["classify"] += t4 - t3
        return times, len(rects)

    result = run_loop(spec, step, StageClock(STAGES), spawned_at)
    clip.close()
    emit({**describe(spec, cores), **result, "peak_rss_mb": peak_rss_mb(),
          "runtime": f"tensorflow {tf.__version__} (Keras model.predict)",
          "model": model_path, "model_size_bytes": Path(model_path).stat().st_size,
          "model_params": int(model.count_params())})


if __name__ == "__main__":
    main(sys.argv)
