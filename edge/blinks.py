"""Blink detection from a per-frame eye aspect ratio (EAR) series.

One `BlinkDetector` per tracked face. It reasons in seconds (every sample comes
with its timestamp), so the same settings work at 6, 17 or 30 fps, and it judges
"closed" against the person's own open-eye level, so narrow eyes or glasses
(open EAR ~0.22) and wide eyes (~0.35) need no tuning.

How a blink is found:

1. Baseline: the median of the EAR samples not judged closed in the last
   `baseline_window` seconds. Blinks take ~5% of the time, so the median ignores
   them, yet it follows slow changes of head pose, expression or lighting.
2. Closed when EAR < `close_ratio` x baseline; open again when EAR >=
   `open_ratio` x baseline (hysteresis: landmark jitter near the threshold does
   not split one blink in two).
3. A closure counts as a blink when it lasted `min_duration`..`max_duration`
   seconds (a blink lasts ~0.1-0.4 s; longer is a deliberate or drowsy closure),
   came at least `refractory` seconds after the previous blink, and was not cut by
   a gap (no EAR) longer than `max_gap`.

Pure numpy, no dlib: unit-testable with synthetic EAR series.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

# Defaults, and why (times in seconds):
# - close_ratio 0.75: a fully closed eye gives ~40-60% of the open EAR; a blink
#   sampled at 15-20 fps often catches only the half-closed lid (~65-70%), while
#   landmark jitter on open eyes stays above ~80% of the baseline.
# - open_ratio 0.85: between the two, so jitter at the threshold is no new blink;
#   not higher, since the open level right after a blink can sit a little lower
#   than the baseline (e.g. a smile narrows the eyes).
# - min_duration 0.07: even the fastest blink keeps the lid below 75% of its open
#   level for ~0.08 s or more (closing ~0.07 s, reopening slower). Sampling leaves
#   the closed span uncertain by one frame interval, so the longest span it could
#   have had is tested: one closed frame between open ones at 30 fps (<= 0.067 s)
#   is landmark jitter, while one closed frame at 17 fps or less may be a blink.
# - max_duration 0.5: the longest spontaneous blinks (closed phase ~0.1-0.4 s).
# - refractory 0.1: a reopening eye that dips again within 0.1 s is the same blink.
# - baseline_window 5.0: a few blink intervals (people blink every ~3-4 s).
# - warmup_samples 5: a median of five open samples tolerates two bad ones.
# - max_gap 0.3: if the face is lost longer than this while the eyes are closed,
#   the reopening time is unknown: drop that closure rather than guess.
DEFAULT_CLOSE_RATIO = 0.75
DEFAULT_OPEN_RATIO = 0.85
DEFAULT_MIN_DURATION = 0.07
DEFAULT_MAX_DURATION = 0.5
DEFAULT_REFRACTORY = 0.1
DEFAULT_BASELINE_WINDOW = 5.0
DEFAULT_WARMUP_SAMPLES = 5
DEFAULT_MAX_GAP = 0.3
RATE_WINDOW = 60.0


@dataclass(frozen=True)
class Blink:
    """One blink: eyes seen closed from `start_frame` up to (not incl.) `end_frame`.

    `end_frame`/`end_time` are the first frame seen open again, so `duration` is
    the time the eyes were judged closed, resolved to one frame interval.
    """

    start_frame: int
    end_frame: int
    start_time: float
    end_time: float
    min_ear: float
    baseline: float

    @property
    def duration(self) -> float:
        return self.end_time - self.start_time


@dataclass
class _Closure:
    """A closure in progress."""

    start_frame: int
    start_time: float
    open_before: float  # timestamp of the last open sample before the closure
    last_time: float  # timestamp of the last closed sample
    min_ear: float
    baseline: float


class BlinkDetector:
    """Per-face blink state machine; feed it every frame with `update`."""

    def __init__(
        self,
        close_ratio: float = DEFAULT_CLOSE_RATIO,
        open_ratio: float = DEFAULT_OPEN_RATIO,
        min_duration: float = DEFAULT_MIN_DURATION,
        max_duration: float = DEFAULT_MAX_DURATION,
        refractory: float = DEFAULT_REFRACTORY,
        baseline_window: float = DEFAULT_BASELINE_WINDOW,
        warmup_samples: int = DEFAULT_WARMUP_SAMPLES,
        max_gap: float = DEFAULT_MAX_GAP,
    ) -> None:
        if not 0.0 < close_ratio <= open_ratio < 1.5:
            raise ValueError("need 0 < close_ratio <= open_ratio < 1.5")
        if not 0.0 <= min_duration < max_duration:
            raise ValueError("need 0 <= min_duration < max_duration")
        if warmup_samples < 1 or baseline_window <= 0:
            raise ValueError("need warmup_samples >= 1 and baseline_window > 0")
        self.close_ratio = close_ratio
        self.open_ratio = open_ratio
        self.min_duration = min_duration
        self.max_duration = max_duration
        self.refractory = refractory
        self.baseline_window = baseline_window
        self.warmup_samples = warmup_samples
        self.max_gap = max_gap
        self.reset()

    def reset(self) -> None:
        """Forget everything learnt (e.g. the track was lost and its id reused)."""
        self._open: deque[tuple[float, float]] = deque()  # (timestamp, ear) of open eyes
        self._closure: _Closure | None = None
        self._last_sample: float | None = None  # timestamp of the last valid EAR
        self._last_open: float | None = None  # timestamp of the last open-eye EAR
        self._last_blink_end: float | None = None
        self._first_time: float | None = None
        self._blink_times: deque[float] = deque()  # end times within RATE_WINDOW
        self.count = 0
        self.last_blink: Blink | None = None

    @property
    def closed(self) -> bool:
        """Eyes currently judged closed (also during closures too long for a blink)."""
        return self._closure is not None

    @property
    def baseline(self) -> float | None:
        """The open-eye EAR level, or None while warming up."""
        if len(self._open) < self.warmup_samples:
            return None
        return float(np.median([ear for _, ear in self._open]))

    def update(self, timestamp: float, ear: float | None, frame_index: int) -> Blink | None:
        """Feed one frame; returns the Blink that this frame completed, if any.

        `ear` None (or NaN) means no face or no landmarks in this frame.
        """
        if self._first_time is None:
            self._first_time = timestamp
        self._drop_closure_after_gap(timestamp)
        if ear is None or not np.isfinite(ear):
            return None
        self._last_sample = timestamp
        self._expire(timestamp)
        baseline = self.baseline
        if baseline is None:
            self._open.append((timestamp, ear))  # warm-up: trust the first samples
            self._last_open = timestamp
            return None
        if self._closure is None:
            self._update_open(timestamp, ear, frame_index, baseline)
            return None
        return self._update_closed(timestamp, ear, frame_index, baseline)

    def rate_per_minute(self, now: float) -> float:
        """Blinks per minute over the last 60 s (or since the first frame if sooner)."""
        if self._first_time is None:
            return 0.0
        self._expire_blinks(now)
        span = min(RATE_WINDOW, now - self._first_time)
        return 60.0 * len(self._blink_times) / span if span > 0 else 0.0

    def _update_open(self, timestamp: float, ear: float, frame_index: int,
                     baseline: float) -> None:
        in_refractory = (self._last_blink_end is not None
                         and timestamp - self._last_blink_end < self.refractory)
        if ear >= self.close_ratio * baseline:
            self._open.append((timestamp, ear))
            self._last_open = timestamp
        elif not in_refractory:
            before = self._last_open if self._last_open is not None else timestamp
            self._closure = _Closure(frame_index, timestamp, before, timestamp, ear, baseline)

    def _update_closed(self, timestamp: float, ear: float, frame_index: int,
                       baseline: float) -> Blink | None:
        closure = self._closure
        assert closure is not None
        if timestamp - closure.start_time > self.max_duration:
            # Too long for a blink: maybe the eyes are shut, maybe the open level
            # itself dropped (head turned down). Let the baseline follow; if the level
            # stays, the closure ends uncounted after about half a baseline window.
            self._open.append((timestamp, ear))
            reference = baseline
        else:
            reference = closure.baseline
        if ear < self.open_ratio * reference:
            closure.last_time = timestamp
            closure.min_ear = min(closure.min_ear, ear)
            return None
        self._closure = None
        self._open.append((timestamp, ear))
        self._last_open = timestamp
        blink = Blink(closure.start_frame, frame_index, closure.start_time, timestamp,
                      closure.min_ear, closure.baseline)
        # Sampling blurs the closed span: it lasted at least last_time - start_time
        # and at most timestamp - open_before. Reject only what is surely too short
        # or surely too long for a blink.
        shortest = closure.last_time - closure.start_time
        longest = timestamp - closure.open_before
        if longest < self.min_duration or shortest > self.max_duration:
            return None
        self.count += 1
        self.last_blink = blink
        self._last_blink_end = timestamp
        self._blink_times.append(timestamp)
        return blink

    def _drop_closure_after_gap(self, timestamp: float) -> None:
        """A closure with a long hole in it has an unknown end: not a countable blink."""
        if (self._closure is not None and self._last_sample is not None
                and timestamp - self._last_sample > self.max_gap):
            self._closure = None

    def _expire(self, now: float) -> None:
        # Keep the newest few even when old, so a face back from a gap keeps its level.
        while (len(self._open) > self.warmup_samples
               and now - self._open[0][0] > self.baseline_window):
            self._open.popleft()

    def _expire_blinks(self, now: float) -> None:
        while self._blink_times and now - self._blink_times[0] >= RATE_WINDOW:
            self._blink_times.popleft()
