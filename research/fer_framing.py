"""Measure how FER2013 frames its faces, with our own landmark model.

The device crops live faces to match: edge/align.py's FER_FRAMING comes from
this script's medians. Faces are upscaled 4x so the HOG detector and the
68-point predictor work on them; only images with exactly one detection count.

    python -m research.fer_framing [../shared/data/fer2013/train.npz] [--n 1500]
"""

from __future__ import annotations

import argparse

import cv2
import dlib
import numpy as np

from edge.faces import find_landmark_model
from edge.landmarks import eye_centres

SCALE = 4


def measure(images: np.ndarray) -> np.ndarray:
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(find_landmark_model()))
    rows = []
    side = images.shape[1]
    for image in images:
        big = cv2.resize(image, (side * SCALE, side * SCALE), interpolation=cv2.INTER_CUBIC)
        found = detector(big, 0)
        if len(found) != 1:
            continue
        shape = predictor(big, found[0])
        points = np.array([(p.x, p.y) for p in shape.parts()], float) / SCALE
        left, right = eye_centres(points)
        mid = (left + right) / 2
        roll = np.degrees(np.arctan2(right[1] - left[1], right[0] - left[0]))
        rows.append((mid[0] / side, mid[1] / side, np.linalg.norm(right - left) / side,
                     points[48:68, 1].mean() / side, roll))
    return np.array(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", default="../shared/data/fer2013/train.npz")
    parser.add_argument("--n", type=int, default=1500)
    args = parser.parse_args()
    images = np.load(args.data)["x"]
    pick = np.random.default_rng(0).choice(len(images), min(args.n, len(images)), replace=False)
    rows = measure(images[pick])
    print(f"{len(rows)} of {len(pick)} faces detected; percentiles 10/25/50/75/90:")
    for name, column in zip(["eye_x", "eye_y", "eye_distance", "mouth_y", "roll_deg"], rows.T):
        print(f"  {name:13s}", np.percentile(column, [10, 25, 50, 75, 90]).round(3))


if __name__ == "__main__":
    main()
