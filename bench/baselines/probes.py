"""Micro-measurements behind the proposals in docs/BENCHMARKS.md "Where the time goes".

    python -m bench.baselines.probes SPEC_JSON SPAWNED_AT
    # spec["extra"]: {"clip_640": .., "clip_1280": ..}

On one pinned core, median ms over the clip's frames: HOG as shipped (the
config's detect width and upsampling) against the same scale reached by one
resize and upsample 0, the frame's own and half resolution, and a region of
interest around a tracked face scaled to ~100 px; decode to BGR + gray
conversion against decoding the raw MJPEG buffer straight to gray; landmarks
with and without the copy to numpy; int8 input preprocessing against one XOR.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from bench.baselines.common import emit, pin_for, summarize, worker_args


def median_ms(function: Callable[[Any], Any], items: list[Any], repeat: int = 3) -> float | None:
    """The lowest of `repeat` medians over `items`: a burst of other work spoils one pass."""
    medians = []
    for _ in range(repeat):
        times = []
        for item in items:
            start = time.perf_counter()
            function(item)
            times.append(time.perf_counter() - start)
        medians.append(summarize(times)["median_ms"])
    return min(medians) if medians and None not in medians else None


def gray_frames(path: str, count: int) -> list[Any]:
    import cv2

    capture = cv2.VideoCapture(path)
    frames = []
    while len(frames) < count:
        ok, image = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
    capture.release()
    return frames


def detection_probes(frames: list[Any]) -> dict[str, Any]:
    """HOG as shipped (edge.config defaults) against the same scale reached by one
    resize, the frame's own and half resolution, and a region of interest."""
    import cv2
    import dlib

    from edge.config import DetectConfig
    from edge.faces import FaceDetector

    config = DetectConfig()
    shipped = FaceDetector(config)
    detector = dlib.get_frontal_face_detector()
    height, width = frames[0].shape[:2]
    effective = min(width, config.width) * 2 ** config.upsample  # the width HOG scans at

    def at_width(target: int) -> Callable[[Any], Any]:
        size = (target, round(height * target / width))
        interpolation = cv2.INTER_AREA if target < width else cv2.INTER_LINEAR
        return lambda g: detector.run(cv2.resize(g, size, interpolation=interpolation), 0,
                                      config.threshold)

    faces = [detector.run(gray, 0, 0.0)[0] for gray in frames]
    rois = [roi(gray, found[0]) for gray, found in zip(frames, faces) if len(found)]
    return {
        "frame_width": width, "detect_width": config.width, "upsample": config.upsample,
        "effective_width": effective,
        "hog_shipped_ms": median_ms(shipped.detect, frames),
        "hog_once_ms": median_ms(at_width(effective), frames),
        "hog_native_ms": median_ms(lambda g: detector.run(g, 0, config.threshold), frames),
        "hog_half_ms": median_ms(at_width(width // 2), frames),
        "hog_roi_ms": median_ms(lambda r: detector.run(r, 0, 0.0), rois) if rois else None,
        "roi_found": sum(len(detector.run(r, 0, 0.0)[0]) > 0 for r in rois),
        "roi_frames": len(rois),
    }


def roi(gray: Any, rect: Any) -> Any:
    """The face box plus half its size on each side, scaled so the face is ~100 px."""
    import cv2

    from edge.faces import ROI_FACE_PX

    margin = rect.width() // 2
    top, left = max(0, rect.top() - margin), max(0, rect.left() - margin)
    crop = gray[top : rect.bottom() + margin, left : rect.right() + margin]
    scale = ROI_FACE_PX / max(1, rect.width())
    return cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


def decode_probes(path: str, count: int) -> dict[str, Any]:
    import cv2

    capture = cv2.VideoCapture(path)
    count = max(1, min(count, int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) - 1))
    bgr_gray = median_ms(lambda _: cv2.cvtColor(capture.read()[1], cv2.COLOR_BGR2GRAY),
                         list(range(count)), repeat=1)
    capture.release()
    capture = cv2.VideoCapture(path)
    raw = capture.set(cv2.CAP_PROP_FORMAT, -1)  # encoded packets: JPEG bytes for MJPEG
    gray = median_ms(lambda _: cv2.imdecode(capture.read()[1], cv2.IMREAD_GRAYSCALE),
                     list(range(count)), repeat=1) if raw else None
    capture.release()
    return {"read_bgr_to_gray_ms": bgr_gray, "raw_imdecode_gray_ms": gray}


def landmark_probes(frames: list[Any]) -> dict[str, Any]:
    import dlib
    import numpy as np

    from edge.faces import find_landmark_model

    predictor = dlib.shape_predictor(str(find_landmark_model()))
    detector = dlib.get_frontal_face_detector()
    rect = detector.run(frames[0], 0, 0.0)[0]
    if not len(rect):
        return {}
    rect = rect[0]
    copy = median_ms(lambda g: np.array([(p.x, p.y) for p in predictor(g, rect).parts()],
                                        dtype=np.float32), frames)
    return {"landmarks_ms": median_ms(lambda g: predictor(g, rect), frames),
            "landmarks_with_copy_ms": copy}


def preprocess_probes(model: str) -> dict[str, Any]:
    import numpy as np

    from edge.classify import EmotionClassifier

    classifier = EmotionClassifier(model)
    face = np.random.default_rng(0).integers(0, 256, (1, 48, 48), dtype=np.uint8)
    many = [face] * 300
    xor_ok = bool(np.array_equal(classifier.preprocess(face),
                                 (face ^ 0x80).view(np.int8)[..., None]))
    return {"preprocess_us": _us(median_ms(classifier.preprocess, many)),
            "xor_us": _us(median_ms(lambda f: (f ^ 0x80).view(np.int8)[..., None], many)),
            "xor_equals_preprocess": xor_ok,
            "predict_us": _us(median_ms(classifier.predict, many))}


def _us(ms: float | None) -> float | None:
    return None if ms is None else round(ms * 1000, 1)


def main(argv: list[str]) -> None:
    spec, _ = worker_args(argv)
    cores = pin_for(spec)
    extra = spec["extra"]
    frames = gray_frames(extra["clip_640"], 40)
    result: dict[str, Any] = {"label": "probes", "cores": cores, "frames": len(frames)}
    result.update(detection_probes(frames))
    result.update(landmark_probes(frames))
    result["decode"] = {size: decode_probes(extra[key], 60)
                        for size, key in (("640x480", "clip_640"), ("1280x720", "clip_1280"))
                        if extra.get(key)}
    result.update(preprocess_probes(spec["model"] or extra["model"]))
    emit(result)


if __name__ == "__main__":
    main(sys.argv)
