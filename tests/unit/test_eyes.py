"""The eye-appearance cue and the fused blink detector, on synthetic faces.

A synthetic face: skin with a fixed texture and two eyes (sclera, dark iris) at
known landmark positions. A blink paints the lid over the eye; the landmarks stay
where they were, as dlib's do on a small, blurred eye behind glasses, so the EAR
sees nothing and only the patches can.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from edge.blinks import BlinkDetector
from edge.config import BlinkConfig
from edge.errors import ConfigError
from edge.eyes import PATCH_H, PATCH_W, EyeAppearance, eye_patch
from edge.landmarks import LEFT_EYE, RIGHT_EYE

EYES = ((60.0, 60.0), (140.0, 60.0))  # image-left (subject's right), image-right
HALF_WIDTH, LID = 12.0, 4.0


def eye_points(cx: float, cy: float) -> np.ndarray:
    """p1..p6 clockwise from the outer corner."""
    w, h = HALF_WIDTH, LID
    return np.array([(cx - w, cy), (cx - w / 3, cy - h), (cx + w / 3, cy - h), (cx + w, cy),
                     (cx + w / 3, cy + h), (cx - w / 3, cy + h)], np.float32)


def landmarks(lid_drop: float = 0.0) -> np.ndarray:
    """68 points; `lid_drop` pixels of upper-lid travel (dlib follows a small lid weakly)."""
    points = np.zeros((68, 2), np.float32)
    points[RIGHT_EYE] = eye_points(*EYES[0])
    points[LEFT_EYE] = eye_points(*EYES[1])
    for eye in (RIGHT_EYE, LEFT_EYE):
        points[eye][1:3, 1] += lid_drop
    return points


SKIN = np.random.default_rng(7).normal(150, 6, (120, 200))  # fixed texture


def face(closed: float = 0.0, gaze: float = 0.0, noise: float = 2.0,
         rng: np.random.Generator | None = None) -> np.ndarray:
    """Gray face; `closed` 0..1 lowers the lid, `gaze` shifts the iris (px)."""
    image = SKIN.copy()
    for cx, cy in EYES:
        centre = (round(cx), round(cy))
        cv2.ellipse(image, centre, (int(HALF_WIDTH), 6), 0, 0, 360, 215, -1)
        cv2.circle(image, (round(cx + gaze), round(cy)), 5, 40, -1)
        if closed > 0:  # the lid comes down from the top of the eye
            lid = np.zeros_like(image, np.uint8)
            cv2.ellipse(lid, centre, (int(HALF_WIDTH) + 1, 7), 0, 0, 360, 1, -1)
            top = cy - 7 + 14 * closed
            lid[math.ceil(top):, :] = 0
            image[lid > 0] = 145
            cv2.line(image, (round(cx - HALF_WIDTH), round(top)),
                     (round(cx + HALF_WIDTH), round(top)), 70, 1)
    if rng is not None and noise > 0:
        image = image + rng.normal(0, noise, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def run(detector: BlinkDetector, fps: float, seconds: float, closed_at=(), gaze_at=(),
        lost_at=(), seed: int = 0, noise: float = 2.0, follow: float = 0.0) -> list:
    """Feed frames; `closed_at`/`gaze_at`/`lost_at` are (start, end, value) in seconds.

    `follow`: the share of the lid's travel the landmarks see (0: none, the hard case)."""
    rng = np.random.default_rng(seed)
    found = []
    for index, t in enumerate(np.arange(0.0, seconds, 1.0 / fps)):
        closed = max([v for a, b, v in closed_at if a <= t < b], default=0.0)
        gaze = max([v for a, b, v in gaze_at if a <= t < b], default=0.0)
        lost = any(a <= t < b for a, b in lost_at)
        image = face(closed, gaze, noise, rng)
        points = landmarks(follow * closed * 2 * LID)
        blink = detector.observe(float(t), index, image, None if lost else points)
        if blink is not None:
            found.append(blink)
    return found


def test_patch_is_aligned_on_the_eye_corners() -> None:
    image, points = face(), landmarks()
    reference = eye_patch(image, points[RIGHT_EYE])
    assert reference.shape == (PATCH_H, PATCH_W)
    # The same face rotated 12 degrees and 1.4x larger gives the same patch.
    matrix = cv2.getRotationMatrix2D((100, 60), 12, 1.4)
    matrix[:, 2] += (60, 40)
    moved = cv2.warpAffine(image, matrix, (320, 240), borderMode=cv2.BORDER_REPLICATE)
    moved_points = np.hstack([points, np.ones((68, 1), np.float32)]) @ matrix.T
    patch = eye_patch(moved, moved_points[RIGHT_EYE])
    correlation = cv2.matchTemplate(patch, reference, cv2.TM_CCOEFF_NORMED).max()
    assert correlation > 0.9
    with pytest.raises(ValueError):
        eye_patch(image, np.zeros((6, 2)))


def test_appearance_distance_and_learning() -> None:
    eyes = EyeAppearance(time_constant=1.0)
    open_patches = eyes.patches(face(), landmarks())
    assert eyes.distance(open_patches) is None  # nothing learnt yet
    eyes.learn(open_patches, 0.0)
    assert np.all(eyes.distance(open_patches) < 1e-4)
    closed_patches = eyes.patches(face(closed=1.0), landmarks())
    far = eyes.distance(closed_patches)
    assert np.all(far > 0.3)
    eyes.learn(closed_patches, 1.0)  # one time constant: 1 - 1/e of the way there
    assert np.all(eyes.distance(closed_patches) < far)


@pytest.mark.parametrize("fps", [6.0, 7.7, 15.0])
def test_a_blink_the_landmarks_miss_is_seen_in_the_patches(fps: float) -> None:
    # One frame of a half-closed lid per blink (what 6-15 fps catches), landmarks
    # unmoved: the EAR is flat, the patches are not.
    starts = [round(s * fps) / fps for s in (2.0, 5.0, 8.5, 12.0, 15.5)]  # frame times
    closures = [(s - 0.25 / fps, s + 0.25 / fps, 0.6) for s in starts]  # one frame each
    found = run(BlinkDetector(), fps, 18.0, closed_at=closures)
    assert [b.start_time for b in found] == pytest.approx(starts)
    assert all(b.score >= 4.0 for b in found)
    assert run(BlinkDetector(BlinkConfig(appearance=False)), fps, 18.0, closed_at=closures) == []


@pytest.mark.parametrize("fps", [15.0, 30.0])
def test_full_blinks_over_several_frames(fps: float) -> None:
    # Closing, shut for 0.15 s, reopening: one blink each, however many frames; the
    # landmarks follow a tenth of the lid's travel (EAR down ~20% at most).
    closures = []
    for start in (2.0, 6.0, 10.0):
        closures += [(start, start + 0.05, 0.5), (start + 0.05, start + 0.2, 1.0),
                     (start + 0.2, start + 0.3, 0.4)]
    found = run(BlinkDetector(), fps, 12.0, closed_at=closures, follow=0.1)
    assert [round(b.start_time) for b in found] == [2, 6, 10]


@pytest.mark.parametrize("fps", [6.0, 30.0])
def test_still_face_and_sensor_noise_never_blink(fps: float) -> None:
    assert run(BlinkDetector(), fps, 30.0, noise=0.0) == []  # spreads at their floors
    assert run(BlinkDetector(), fps, 30.0, noise=4.0, seed=3) == []


@pytest.mark.parametrize("fps", [6.0, 15.0, 30.0])
def test_a_glance_is_not_a_blink(fps: float) -> None:
    # The iris moves to the side and stays, or glances away and back within 0.4 s:
    # the patch changes while the lids do not move.
    glances = [(3.0, 9.0, 4.0), (12.0, 12.4, -5.0), (16.0, 30.0, 3.0)]
    assert run(BlinkDetector(), fps, 20.0, gaze_at=glances) == []


def test_no_blink_while_the_face_is_lost() -> None:
    # Eyes shut when the face is lost for 1 s: the reopening time is unknown.
    closures = [(4.0, 4.4, 1.0)]
    found = run(BlinkDetector(), 15.0, 8.0, closed_at=closures, lost_at=[(4.1, 5.1)])
    assert found == []
    detector = BlinkDetector()
    assert detector.observe(0.0, 0, None, None) is None  # no face, no frame: nothing
    assert not detector.closed


def test_reset_forgets_the_eyes() -> None:
    detector = BlinkDetector()
    run(detector, 15.0, 4.0, closed_at=[(2.0, 2.2, 1.0)], follow=0.1)
    assert detector.count == 1 and detector.eyes is not None and detector.eyes.ready
    detector.reset()
    assert detector.count == 0 and not detector.eyes.ready


def test_bad_sigma_settings_are_rejected() -> None:
    with pytest.raises(ConfigError, match="open_sigma"):
        BlinkDetector(BlinkConfig(close_sigma=2.0, open_sigma=3.0))
    with pytest.raises(ValueError):
        EyeAppearance(time_constant=0.0)
