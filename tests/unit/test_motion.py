"""Motion gate on synthetic frames: noise is not motion, a moving object is."""

from __future__ import annotations

import numpy as np
import pytest

from edge.motion import MotionGate
from edge.types import Box

FPS = 30.0


def room(seed: int = 0) -> np.ndarray:
    """A textured 640x480 still: gradients and blocks, like a wall and furniture."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:480, 0:640]
    image = 60 + 0.1 * x + 0.15 * y
    for _ in range(12):
        left, top = rng.integers(0, 560), rng.integers(0, 400)
        image[top : top + rng.integers(20, 80), left : left + rng.integers(20, 80)] += \
            rng.integers(-40, 40)
    return np.clip(image, 0, 255)


def noisy(still: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    return np.clip(still + rng.normal(0, sigma, still.shape), 0, 255).astype(np.uint8)


def with_blob(frame: np.ndarray, left: int, top: int, size: int = 80,
              level: int = 230) -> np.ndarray:
    out = frame.copy()
    out[top : top + size, left : left + size] = level
    return out


def run(gate: MotionGate, frames: list[np.ndarray], start: int = 0) -> list[bool]:
    verdicts = []
    for i, frame in enumerate(frames):
        gate.update(frame, (start + i) / FPS)
        verdicts.append(gate.moving())
    return verdicts


def test_first_frame_counts_as_motion_so_it_is_scanned() -> None:
    gate = MotionGate()
    assert run(gate, [room().astype(np.uint8)]) == [True]


@pytest.mark.parametrize("sigma", [2.0, 6.0, 12.0])
def test_sensor_noise_on_a_still_is_not_motion(sigma: float) -> None:
    rng = np.random.default_rng(1)
    still = room()
    verdicts = run(MotionGate(), [noisy(still, rng, sigma) for _ in range(90)])
    assert verdicts[0] and not any(verdicts[1:])


def test_a_moving_object_is_motion_and_a_still_one_fades_into_the_background() -> None:
    rng = np.random.default_rng(2)
    still = room()
    gate = MotionGate(background_seconds=1.0)
    run(gate, [noisy(still, rng, 4) for _ in range(10)])
    # An object crosses the frame: every frame of it moves.
    moving = run(gate, [with_blob(noisy(still, rng, 4), 40 + 12 * i, 200) for i in range(30)],
                 start=10)
    assert all(moving)
    # It stops: after a few background time constants it is part of the room.
    stopped = run(gate, [with_blob(noisy(still, rng, 4), 40 + 12 * 29, 200)
                         for _ in range(150)], start=40)
    assert stopped[0] and not any(stopped[-60:])


def test_motion_around_a_tracked_face_is_excluded() -> None:
    rng = np.random.default_rng(3)
    still = room()
    gate = MotionGate()
    run(gate, [noisy(still, rng, 4) for _ in range(5)])
    gate.update(with_blob(noisy(still, rng, 4), 300, 150), 5 / FPS)
    assert gate.moving()
    # The blob is a tracked face's own movement: nothing moves elsewhere.
    assert not gate.moving([Box(300, 150, 80, 80)])
    # A second object away from the face is motion again.
    gate.update(with_blob(with_blob(noisy(still, rng, 4), 300, 150), 20, 20), 6 / FPS)
    assert gate.moving([Box(300, 150, 80, 80)])


def test_a_brightness_change_of_the_whole_picture_is_not_motion() -> None:
    """Auto-exposure or a light switched on: everything shifts at once."""
    rng = np.random.default_rng(6)
    still = room()
    gate = MotionGate()
    run(gate, [noisy(still, rng, 4) for _ in range(5)])
    gate.update(noisy(still + 30, rng, 4), 5 / FPS)
    assert not gate.moving()
    gate.update(with_blob(noisy(still + 30, rng, 4), 300, 150), 6 / FPS)
    assert gate.moving()  # a person in the brighter room still is


def test_a_tiny_change_is_below_the_area_threshold() -> None:
    rng = np.random.default_rng(4)
    still = room()
    gate = MotionGate(area=0.01)
    run(gate, [noisy(still, rng, 4) for _ in range(5)])
    gate.update(with_blob(noisy(still, rng, 4), 100, 100, size=16), 5 / FPS)
    assert 0 < gate.changed_share() < 0.01 and not gate.moving()


def test_the_background_is_per_second_not_per_frame() -> None:
    """Same change, same verdicts at 7.5 and 30 fps over the same seconds."""
    rng = np.random.default_rng(5)
    still = room()
    changed = with_blob(still, 200, 200, size=120)

    def seconds_until_still(fps: float) -> float:
        gate = MotionGate(background_seconds=0.5)
        gate.update(still.astype(np.uint8), 0.0)
        t = 0.0
        while True:
            t += 1 / fps
            gate.update(noisy(changed, rng, 1), t)
            if not gate.moving():
                return t

    slow, fast = seconds_until_still(7.5), seconds_until_still(30.0)
    assert abs(slow - fast) <= 2 / 7.5


@pytest.mark.parametrize("kwargs", [{"threshold": 0}, {"area": -0.1}, {"area": 1.5}])
def test_bad_settings_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        MotionGate(**kwargs)


def test_changed_since_scan_compares_with_what_the_last_scan_saw() -> None:
    rng = np.random.default_rng(5)
    still = room()
    gate = MotionGate(background_seconds=1.0)
    gate.update(noisy(still, rng, 6), 0.0)
    assert gate.changed_since_scan()  # nothing scanned yet
    gate.scanned()
    for i in range(1, 90):  # three seconds of the same room: noise is no change
        gate.update(noisy(still, rng, 6), i / FPS)
        assert not gate.changed_since_scan()
    # Someone arrived and stopped: the background takes them in, the last scan never saw
    # them. Brighter all over (auto-exposure) changes nothing either.
    for i in range(90, 300):
        gate.update(with_blob(noisy(still + 20, rng, 6), 300, 200), i / FPS)
    assert not gate.moving() and gate.changed_since_scan()
    assert not gate.changed_since_scan([Box(300, 200, 80, 80)])  # that person is tracked
    gate.scanned()
    gate.update(with_blob(noisy(still + 20, rng, 6), 300, 200), 10.0)
    assert not gate.changed_since_scan()
    gate.forget_scan()  # a face the scan saw was lost since
    assert gate.changed_since_scan()


def test_the_fast_median_is_np_medians_value_bit_for_bit() -> None:
    """The gate and the blink statistics take their medians from edge.medians: the same
    value as np.median, so their decisions are the same as before, to the last bit."""
    from edge.medians import median

    rng = np.random.default_rng(3)
    for n in (1, 2, 3, 4799, 4800):
        for ties in (False, True):
            values = rng.normal(0, 20, n).astype(np.float32)
            if ties:
                values = np.round(values / 8)
            assert float(median(values)) == float(np.median(values))
            columns = rng.normal(0.3, 0.05, (n, 4))
            assert np.array_equal(median(columns), np.median(columns, axis=0))
