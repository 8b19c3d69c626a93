"""The iBUG 300-W 68-point scheme: which points are which, and what they measure.

dlib's shape predictor returns these points. Eyes are named from the subject's
side: the subject's right eye is on the image's left. Every stage that needs an
eye (alignment, blinks) takes it from here.
"""

from __future__ import annotations

import numpy as np

POINTS = 68
RIGHT_EYE = slice(36, 42)  # the subject's right eye, on the image's left
LEFT_EYE = slice(42, 48)


def eye_centres(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(image-left, image-right) eye centres: the subject's right eye, then the left."""
    return landmarks[RIGHT_EYE].mean(axis=0), landmarks[LEFT_EYE].mean(axis=0)


def eye_aspect_ratio(eye: np.ndarray) -> float:
    """Soukupová & Čech (2016): eye height over width from six eye landmarks.

    Points are p1..p6 clockwise from the outer corner; (|p2-p6| + |p3-p5|) / (2 |p1-p4|).
    About 0.25-0.35 for an open eye, near 0.1 when closed; 0.0 for a degenerate eye.
    """
    pts = np.asarray(eye, dtype=np.float64).reshape(6, 2)
    vertical = np.linalg.norm(pts[1] - pts[5]) + np.linalg.norm(pts[2] - pts[4])
    horizontal = np.linalg.norm(pts[0] - pts[3])
    return float(vertical / (2.0 * horizontal)) if horizontal > 0 else 0.0


def mean_ear(landmarks: np.ndarray) -> float:
    """Mean eye aspect ratio of both eyes from 68-point landmarks."""
    pts = np.asarray(landmarks).reshape(POINTS, 2)
    return 0.5 * (eye_aspect_ratio(pts[RIGHT_EYE]) + eye_aspect_ratio(pts[LEFT_EYE]))
