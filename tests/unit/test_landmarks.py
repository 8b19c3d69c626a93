"""Face detection and landmarks on real photos from <repo>/../shared/data/media."""

from __future__ import annotations

import numpy as np
import pytest

from edge.landmarks import eye_aspect_ratio, mean_ear
from tests.conftest import SHARED_DIR

MEDIA = SHARED_DIR / "data" / "media"
STILLS = MEDIA / "stills"
VOC = STILLS / "dlib_voc_landmarks"
VOC_XML = ("training_with_face_landmarks.xml", "testing_with_face_landmarks.xml")


def test_eye_aspect_ratio_of_synthetic_eyes() -> None:
    # p1..p6 clockwise from the outer corner: width 4, lid heights 2 and 2 -> 0.5.
    eye = np.array([(0, 0), (1, -1), (3, -1), (4, 0), (3, 1), (1, 1)], float)
    assert eye_aspect_ratio(eye) == pytest.approx(0.5)
    closed = eye.copy()
    closed[:, 1] = 0.0
    assert eye_aspect_ratio(closed) == 0.0
    assert eye_aspect_ratio(np.zeros((6, 2))) == 0.0  # degenerate: no division by zero
    landmarks = np.zeros((68, 2), np.float32)
    landmarks[36:42] = eye
    landmarks[42:48] = closed + 10
    assert mean_ear(landmarks) == pytest.approx(0.25)
