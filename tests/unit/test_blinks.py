"""Blink state machine on synthetic EAR series at several frame rates (the EAR-only path;
the eye patches are tested in test_eyes.py, real clips in tests/e2e/test_blink_clips.py)."""

from __future__ import annotations

import numpy as np
import pytest

from edge.blinks import Blink, BlinkDetector
from edge.config import BlinkConfig
from edge.errors import ConfigError

# ---- synthetic series ----------------------------------------------------------------

def lid_closure(t: np.ndarray, start: float, closed: float) -> np.ndarray:
    """0 (open) .. 1 (shut): closes in 0.07 s, stays `closed` s, reopens in 0.12 s."""
    closing = np.clip((t - start) / 0.07, 0.0, 1.0)
    reopening = np.clip((t - start - 0.07 - closed) / 0.12, 0.0, 1.0)
    return closing * (1.0 - reopening)


def ear_series(fps: float, seconds: float, blinks: list[tuple[float, float]],
               open_ear: float = 0.30, closed_ear: float = 0.12, noise: float = 0.008,
               seed: int = 0, phase: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(timestamps, ears) of an eye blinking at (start, closed seconds) moments."""
    times = np.arange(phase, seconds, 1.0 / fps)
    shut = np.zeros_like(times)
    for start, closed in blinks:
        shut = np.maximum(shut, lid_closure(times, start, closed))
    rng = np.random.default_rng(seed)
    ears = open_ear - (open_ear - closed_ear) * shut + rng.normal(0.0, noise, times.size)
    return times, ears


def run(times: np.ndarray, ears: np.ndarray, detector: BlinkDetector | None = None
        ) -> list[Blink]:
    detector = detector or BlinkDetector()
    found = []
    for index, (t, ear) in enumerate(zip(times, ears, strict=True)):
        value = None if ear is None or np.isnan(ear) else float(ear)
        blink = detector.update(float(t), value, index)
        if blink is not None:
            found.append(blink)
    return found


# Spontaneous blinks: closed phase 0.15-0.3 s, a few seconds apart, one double blink.
BLINKS = [(2.0, 0.15), (5.5, 0.2), (8.1, 0.3), (8.8, 0.15), (12.3, 0.2)]


@pytest.mark.parametrize("fps", [6.0, 17.1, 30.0])
@pytest.mark.parametrize("phase", [0.0, 0.05, 0.11])
def test_same_blinks_at_any_frame_rate(fps: float, phase: float) -> None:
    times, ears = ear_series(fps, 15.0, BLINKS, phase=phase)
    found = run(times, ears)
    assert len(found) == len(BLINKS)
    for blink, (start, closed) in zip(found, BLINKS, strict=True):
        # Closed from ~start+0.05 (EAR below 75% of open) to ~start+0.07+closed+0.1.
        assert start - 0.01 < blink.start_time < start + 0.07 + 1.0 / fps
        assert blink.duration == pytest.approx(closed + 0.1, abs=1.0 / fps + 0.05)
        assert blink.end_frame > blink.start_frame


@pytest.mark.parametrize("open_ear, closed_ear", [(0.22, 0.11), (0.38, 0.24)])
def test_adapts_to_the_persons_open_level(open_ear: float, closed_ear: float) -> None:
    # 0.22: narrow eyes or glasses, open eyes already below the classic 0.25-0.3
    # threshold. 0.38 with a shallow blink to 0.24: never below a fixed 0.2.
    times, ears = ear_series(17.1, 15.0, BLINKS, open_ear, closed_ear, noise=0.006)
    detector = BlinkDetector()
    assert len(run(times, ears, detector)) == len(BLINKS)
    assert detector.baseline == pytest.approx(open_ear, abs=0.01)


@pytest.mark.parametrize("fps", [6.0, 17.1, 30.0])
@pytest.mark.parametrize("open_ear", [0.22, 0.30, 0.38])
def test_no_blinks_in_open_eye_jitter(fps: float, open_ear: float) -> None:
    # A minute of landmark jitter (5% of the open level, frame to frame) on a level
    # that drifts +-8% with head pose over 20 s.
    times, ears = ear_series(fps, 60.0, [], open_ear, noise=0.05 * open_ear, seed=1)
    ears *= 1.0 + 0.08 * np.sin(2 * np.pi * times / 20.0)
    assert run(times, ears) == []


def test_long_closure_is_not_a_blink() -> None:
    times, ears = ear_series(30.0, 10.0, [(2.0, 0.2), (4.0, 1.5), (7.0, 0.2)])
    detector = BlinkDetector()
    found = []
    for index, (t, ear) in enumerate(zip(times, ears, strict=True)):
        blink = detector.update(float(t), float(ear), index)
        found += [blink] if blink else []
        if 4.3 < t < 5.4:
            assert detector.closed, "eyes shut for 1.5 s are reported closed"
    assert [round(b.start_time) for b in found] == [2, 7]
    assert detector.count == 2


def test_single_frame_glitch_at_30_fps_is_not_a_blink() -> None:
    times, ears = ear_series(30.0, 6.0, [])
    ears[90] = 0.12  # one frame, 33 ms: too short for a lid
    assert run(times, ears) == []


def test_jitter_while_reopening_is_one_blink() -> None:
    times, ears = ear_series(30.0, 6.0, [], noise=0.0)
    # closed, half open (between the two thresholds), closed again, then open.
    ears[60:75] = [0.12, 0.12, 0.14, 0.24, 0.2, 0.12, 0.13, 0.24, 0.21, 0.24, 0.3,
                   0.22, 0.3, 0.3, 0.3]
    assert len(run(times, ears)) == 1


def test_short_gap_inside_a_blink_is_bridged() -> None:
    times, ears = ear_series(30.0, 6.0, [(3.0, 0.25)])
    ears = ears.astype(object)
    ears[np.flatnonzero((times > 3.12) & (times < 3.2))] = None  # face lost ~2 frames
    assert len(run(times, ears)) == 1


def test_closure_across_a_long_gap_is_dropped() -> None:
    times, ears = ear_series(30.0, 8.0, [(3.0, 0.2), (6.0, 0.2)])
    ears = ears.astype(object)
    ears[np.flatnonzero((times > 3.1) & (times < 4.5))] = None  # face lost 1.4 s
    found = run(times, ears)
    assert [round(b.start_time) for b in found] == [6]


def test_warm_up_then_detection() -> None:
    detector = BlinkDetector(warmup_samples=5)
    for index, ear in enumerate([0.3, 0.1, 0.3, 0.3, 0.31]):  # a dip before any baseline
        assert detector.update(index / 10, ear, index) is None
    assert detector.baseline == pytest.approx(0.3)
    assert detector.update(0.5, 0.1, 5) is None
    assert detector.closed
    blink = detector.update(0.6, 0.3, 6)
    assert blink is not None and (blink.start_frame, blink.end_frame) == (5, 6)
    assert blink.min_ear == pytest.approx(0.1) and blink.baseline == pytest.approx(0.3)


def test_baseline_follows_a_lasting_drop() -> None:
    # The person looks down at a phone: open EAR falls from 0.30 to 0.20 and stays.
    # That first "closure" is no blink; blinks at the new level are found again.
    t1, e1 = ear_series(17.1, 10.0, [(2.0, 0.2)], open_ear=0.30)
    t2, e2 = ear_series(17.1, 15.0, [(6.0, 0.2), (10.0, 0.2)], open_ear=0.20,
                        closed_ear=0.09, seed=3)
    times = np.concatenate([t1, t2 + 10.0])
    found = run(times, np.concatenate([e1, e2]))
    assert [round(b.start_time) for b in found] == [2, 16, 20]


def test_rate_per_minute() -> None:
    blinks = [(1.0 + 4.0 * k, 0.15) for k in range(30)]  # every 4 s = 15 per minute
    times, ears = ear_series(17.1, 120.0, blinks)
    detector = BlinkDetector()
    run(times, ears, detector)
    assert detector.count == 30
    assert detector.rate_per_minute(float(times[-1])) == pytest.approx(15.0, abs=1.0)
    assert detector.rate_per_minute(180.0) == 0.0  # a minute after the last blink


def test_rate_since_start_when_shorter_than_a_minute() -> None:
    times, ears = ear_series(17.1, 10.0, [(2.0, 0.15), (6.0, 0.15)])
    detector = BlinkDetector()
    run(times, ears, detector)
    assert detector.rate_per_minute(10.0) == pytest.approx(12.0, rel=0.02)
    assert BlinkDetector().rate_per_minute(5.0) == 0.0


def test_nan_counts_as_missing() -> None:
    times, ears = ear_series(30.0, 4.0, [(2.0, 0.2)])
    ears[10:20] = np.nan
    assert len(run(times, ears)) == 1


def test_reset_forgets_the_person() -> None:
    times, ears = ear_series(17.1, 5.0, [(2.0, 0.2)])
    detector = BlinkDetector()
    run(times, ears, detector)
    detector.reset()
    assert detector.count == 0 and detector.baseline is None and not detector.closed


def test_bad_settings_are_rejected() -> None:
    with pytest.raises(ConfigError, match="open_ratio"):
        BlinkDetector(BlinkConfig(close_ratio=0.9, open_ratio=0.8))
    with pytest.raises(ConfigError, match="max_duration"):
        BlinkDetector(BlinkConfig(min_duration=0.6, max_duration=0.5))
    with pytest.raises(ValueError):
        BlinkDetector(warmup_samples=0)
