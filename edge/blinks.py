"""Blink detection per tracked face: the eye aspect ratio (EAR) and the eyes' looks.

One `BlinkDetector` per tracked face. It reasons in seconds (every sample comes
with its timestamp), so the same settings work at 6, 17 or 30 fps, and it judges
"closed" against the person's own open eyes, so narrow eyes, glasses, a small
face or dim light need no tuning.

Two cues, each measured against this person's own open-eye noise:

- geometry: each eye's EAR from the six landmark points (Soukupová & Čech 2016);
- appearance (`observe` with the frame, see edge/eyes.py): how far each eye's
  corner-aligned patch is from its open-eye template. It sees the iris and the
  sclera vanish under the lid where the landmarks follow the lid weakly (a small,
  blurred eye behind glasses: EAR falls only to 0.8-0.9 of its open level).

How a blink is found:

1. Open-eye statistics: the median and the robust spread (1.4826 x MAD) of each
   cue over the samples of the last `baseline_window` seconds that were not in a
   closure. Blinks take ~5% of the time, so neither statistic sees them, yet both
   follow slow changes of head pose, expression or lighting.
2. Closure score: each cue's dip in robust sigmas (EAR below its median; patch
   distance above its median), over both eyes (the EAR's mean; the patches' mean,
   but at most twice the weaker eye: a blink closes both, a slipped landmark or a
   glint moves one), and the two cues summed / sqrt(2): independent evidence adds
   up. A spread is never taken below a floor (2% of the open EAR,
   0.002 of correlation), so a perfectly still face does not make noise a blink.
3. Closed when the score reaches `close_sigma` while the EAR is not above its
   open level (a lid that closes cannot widen the eye; a gaze shift or a turn of
   the head can change the patch alone), or when the EAR falls below
   `close_ratio` x its open level (the classic geometric cue, enough on its own).
4. Open again at the first frame where either cue is back within `open_sigma`
   (or the score fell below half its peak): after a blink the eyes often look
   elsewhere, so the patch may not return to the old template while the lids
   have reopened. A new closure needs the score back below `open_sigma` first.
   The event's frame is the closure's first frame at half its peak score: where
   the lids came down, not a slow narrowing before (a smile).
5. A closure counts as a blink when it lasted `min_duration`..`max_duration`
   seconds (a blink lasts ~0.1-0.4 s; longer is a deliberate or drowsy closure,
   or a turn of the head), came at least `refractory` seconds after the previous
   blink, and was not cut by a gap (no face) longer than `max_gap`. Sampling
   blurs the span by one frame interval, so the longest span the closure could
   have had is tested: one closed frame at 30 fps is jitter, one at 7.7 fps (a
   fast blink between two frames 0.13 s apart) may be a blink.
6. ...and when it gathered enough evidence (score x time: a shallow one-frame dip
   at 17 fps is a twitch, the same dip at 7.7 fps stands for 0.13 s of lid), and
   was not a glance: the patch changed and stayed changed while the lids did not
   move (a gaze shift or a turn of the head; at 6 fps that is one frame, as short
   as a blink).

Pure numpy + OpenCV, no dlib: unit-testable with synthetic series and patches.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from edge.config import BlinkConfig, check_blink
from edge.eyes import DEFAULT_TIME_CONSTANT, EyeAppearance
from edge.landmarks import LEFT_EYE, RIGHT_EYE
from edge.medians import median as column_medians

# Defaults, and why (times in seconds, measured on research/blink_eval.py's clips;
# docs/BLINKS.md has the figures):
# - close_sigma 4.0: open-eye frames of four clips, two people, 7.7-30 fps (and
#   the same clips thinned to 6-10 fps), stay below a fused dip of ~4 robust
#   sigmas; one-frame blinks of a small face seen at 7.7 fps reach 4-30. 3.5
#   finds one more blink at 7.7 fps and twice the false ones at 6-10 fps.
# - open_sigma 2.0: a cue back within 2 sigmas of its open level is open.
# - close_ratio 0.75 / open_ratio 0.85: the classic geometric rule, kept as a
#   sufficient cue: a fully closed eye gives ~40-60% of the open EAR.
# - min_duration 0.07: one closed frame between open ones at 30 fps (<= 0.067 s)
#   is jitter; one at 17 fps or less may be a blink.
# - max_duration 0.5: the longest spontaneous blinks (closed phase ~0.1-0.4 s).
# - refractory 0.1: a reopening eye that dips again within 0.1 s is the same blink.
# - baseline_window 5.0: a few blink intervals (people blink every ~2-4 s).
# - warmup_samples 5: a median of five open samples tolerates two bad ones.
# - max_gap 0.3: if the face is lost longer than this while the eyes are closed,
#   the reopening time is unknown: drop that closure rather than guess.
DEFAULT_REFRACTORY = 0.1
DEFAULT_BASELINE_WINDOW = 5.0
DEFAULT_WARMUP_SAMPLES = 5
DEFAULT_MAX_GAP = 0.3
RATE_WINDOW = 60.0
EAR_SPREAD_FLOOR = 0.02  # x the open EAR: below a landmark's sub-pixel jitter
DISTANCE_SPREAD_FLOOR = 0.002  # 1 - correlation: below sensor noise on a still eye
PEAK_FRACTION = 0.5  # open again below half the closure's peak score
EVIDENCE_TIME = 0.1  # seconds: a blink's lid is down ~0.1 s or more (see _is_blink)
GLANCE_EAR, STEP = 0.5, 0.8  # a glance is no blink (see _is_blink)


@dataclass(frozen=True)
class Blink:
    """One blink: eyes seen closed from `start_frame` up to (not incl.) `end_frame`.

    `end_frame`/`end_time` are the first frame seen open again, so `duration` is
    the time the eyes were judged closed, resolved to one frame interval.
    `score` is the closure's peak dip in robust sigmas of the open eyes.
    """

    start_frame: int
    end_frame: int
    start_time: float
    end_time: float
    min_ear: float
    baseline: float
    score: float = 0.0

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
    peak: float
    last_score: float  # the latest closed sample's score
    evidence: float = 0.0  # sum of score x time to the next sample, in sigma-seconds
    ear_peak: float = 0.0  # the deepest EAR dip in the closure, in sigmas
    # (frame, time, score) of the closed samples within max_duration of the start
    samples: list[tuple[int, float, float]] = field(default_factory=list)

    def core_start(self) -> tuple[int, float]:
        """Frame and time of the first sample at half the peak or more: where the lids
        came down. A slow narrowing before (a smile, a glance down) starts a closure
        earlier but is not the blink."""
        for frame, time, score in self.samples:
            if score >= PEAK_FRACTION * self.peak:
                return frame, time
        return self.start_frame, self.start_time
    look_peak: float = 0.0  # the largest appearance change in the closure, in sigmas


@dataclass(frozen=True)
class _Sample:
    timestamp: float
    ears: np.ndarray  # per eye (the mean EAR twice when only that is known)
    distances: np.ndarray | None  # per eye patch distance; None before a template


class _History:
    """Samples outside closures, oldest first, in growable numpy arrays: the
    statistics of every frame are a few vectorised medians, no Python loops."""

    def __init__(self) -> None:
        self._times = np.empty(64)
        self._ears = np.empty((64, 2))
        self._distances = np.empty((64, 2))  # NaN where there was no template yet
        self._start = self._end = 0

    def __len__(self) -> int:
        return self._end - self._start

    def append(self, sample: _Sample) -> None:
        if self._end == len(self._times):
            self._compact()
        i = self._end
        self._times[i] = sample.timestamp
        self._ears[i] = sample.ears
        self._distances[i] = np.nan if sample.distances is None else sample.distances
        self._end += 1

    def _compact(self) -> None:
        n = len(self)
        size = max(64, 2 * n)  # keeps the used part at most half of the arrays
        for name in ("_times", "_ears", "_distances"):
            old = getattr(self, name)
            new = np.empty((size, *old.shape[1:]))
            new[:n] = old[self._start:self._end]
            setattr(self, name, new)
        self._start, self._end = 0, n

    def expire(self, now: float, window: float, keep: int) -> None:
        """Drop samples older than `window` seconds, but keep the newest `keep`."""
        times = self._times[self._start:self._end]
        old = int(np.searchsorted(times, now - window, side="left"))
        self._start += max(0, min(old, len(self) - keep))

    @property
    def ears(self) -> np.ndarray:
        return self._ears[self._start:self._end]

    @property
    def distances_count(self) -> int:
        """How many samples have a patch distance."""
        return int(np.count_nonzero(~np.isnan(self._distances[self._start:self._end, 0])))

    @property
    def ears_and_distances(self) -> np.ndarray:
        """(n, 4): both EARs and both patch distances of the samples that have both."""
        rows = slice(self._start, self._end)
        have = ~np.isnan(self._distances[rows, 0])
        return np.hstack([self._ears[rows][have], self._distances[rows][have]])


def _both_eyes(a: float, b: float) -> float:
    """Two eyes' appearance dips as one: their mean, but at most twice the weaker.

    A blink closes both eyes; one eye's patch alone jumps when a landmark slips (the
    detector's box changes size) or a glint crosses one lens. So the weaker eye must
    show at least a third of the stronger's dip for the mean to count in full."""
    return min(0.5 * (a + b), 2.0 * min(a, b))


def _robust(values: np.ndarray, relative: np.ndarray, absolute: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray]:
    """Median and robust sigma (1.4826 MAD) of each column; the sigma is at least
    `relative` x the median plus `absolute` (floors per column)."""
    median = column_medians(values)
    spread = 1.4826 * column_medians(np.abs(values - median))
    return median, np.maximum(spread, relative * median + absolute)


# Floors of the (EAR, EAR, distance, distance) columns: see EAR_SPREAD_FLOOR.
_RELATIVE_FLOOR = np.array([EAR_SPREAD_FLOOR, EAR_SPREAD_FLOOR, 0.0, 0.0])
_ABSOLUTE_FLOOR = np.array([0.0, 0.0, DISTANCE_SPREAD_FLOOR, DISTANCE_SPREAD_FLOOR])


def _eye_ears(landmarks: np.ndarray) -> np.ndarray:
    """Both eyes' EAR (edge.landmarks.eye_aspect_ratio, in plain floats: 12 points cost
    less this way than in numpy): the subject's right eye, then the left."""
    pts = np.asarray(landmarks).reshape(68, 2)
    ears = []
    for p1, p2, p3, p4, p5, p6 in (pts[RIGHT_EYE].tolist(), pts[LEFT_EYE].tolist()):
        vertical = (math.hypot(p2[0] - p6[0], p2[1] - p6[1])
                    + math.hypot(p3[0] - p5[0], p3[1] - p5[1]))
        horizontal = math.hypot(p1[0] - p4[0], p1[1] - p4[1])
        ears.append(vertical / (2.0 * horizontal) if horizontal > 0 else 0.0)
    return np.array(ears)


class BlinkDetector:
    """Per-face blink state machine: feed every frame to `observe` (or `update`)."""

    def __init__(
        self,
        settings: BlinkConfig | None = None,
        *,
        refractory: float = DEFAULT_REFRACTORY,
        baseline_window: float = DEFAULT_BASELINE_WINDOW,
        warmup_samples: int = DEFAULT_WARMUP_SAMPLES,
        max_gap: float = DEFAULT_MAX_GAP,
        template_time: float = DEFAULT_TIME_CONSTANT,
    ) -> None:
        """`settings`: the user's [blink] section (its defaults and rules live in
        edge.config); the keyword arguments are the algorithm's own constants."""
        settings = settings or BlinkConfig()
        check_blink(settings)
        if warmup_samples < 1 or baseline_window <= 0:
            raise ValueError("need warmup_samples >= 1 and baseline_window > 0")
        self.close_ratio = settings.close_ratio
        self.open_ratio = settings.open_ratio
        self.close_sigma = settings.close_sigma
        self.open_sigma = settings.open_sigma
        self.min_duration = settings.min_duration
        self.max_duration = settings.max_duration
        self.refractory = refractory
        self.baseline_window = baseline_window
        self.warmup_samples = warmup_samples
        self.max_gap = max_gap
        self.eyes = EyeAppearance(template_time) if settings.appearance else None
        self.reset()

    def reset(self) -> None:
        """Forget everything learnt about the person: the state of a new detector."""
        self._open = _History()  # samples outside closures
        self._closure: _Closure | None = None
        self._armed = True  # the score was back near open since the last closure
        self._last_sample: float | None = None  # timestamp of the last valid sample
        self._last_open: float | None = None  # timestamp of the last open-eye sample
        self._last_blink_end: float | None = None
        self._first_time: float | None = None
        self._blink_times: deque[float] = deque()  # end times within RATE_WINDOW
        self.count = 0
        self.score = 0.0  # the latest closure score, in robust sigmas
        self.ear: float | None = None  # the latest mean EAR seen by `observe`
        self._level: float | None = None  # open-eye mean EAR found by the last _score
        if self.eyes is not None:
            self.eyes.reset()

    @property
    def closed(self) -> bool:
        """Eyes currently judged closed (also during closures too long for a blink)."""
        return self._closure is not None

    @property
    def baseline(self) -> float | None:
        """The open-eye mean EAR, or None while warming up."""
        if len(self._open) < self.warmup_samples:
            return None
        return float(np.median(self._open.ears.mean(axis=1)))

    def observe(self, timestamp: float, frame_index: int, gray: np.ndarray | None,
                landmarks: np.ndarray | None) -> Blink | None:
        """Feed one frame's gray image and 68 landmarks (None: no face in this frame)."""
        if landmarks is None:
            return self._step(timestamp, frame_index, None, None)
        pts = np.asarray(landmarks).reshape(68, 2)
        ears = _eye_ears(pts)
        self.ear = 0.5 * float(ears[0] + ears[1])
        patches = None
        if self.eyes is not None and gray is not None:
            try:
                patches = self.eyes.patches(gray, pts)
            except ValueError:  # degenerate eye: no appearance this frame
                patches = None
        return self._step(timestamp, frame_index, ears, patches)

    def update(self, timestamp: float, ear: float | None, frame_index: int) -> Blink | None:
        """Feed one frame's mean EAR only (None or NaN: no face in this frame)."""
        if ear is None or not np.isfinite(ear):
            return self._step(timestamp, frame_index, None, None)
        return self._step(timestamp, frame_index, np.array([float(ear)] * 2), None)

    def rate_per_minute(self, now: float) -> float:
        """Blinks per minute over the last 60 s (or since the first frame if sooner)."""
        if self._first_time is None:
            return 0.0
        self._expire_blinks(now)
        span = min(RATE_WINDOW, now - self._first_time)
        return 60.0 * len(self._blink_times) / span if span > 0 else 0.0

    # -- one frame ------------------------------------------------------------
    def _step(self, timestamp: float, frame_index: int, ears: np.ndarray | None,
              patches: np.ndarray | None) -> Blink | None:
        if self._first_time is None:
            self._first_time = timestamp
        self._drop_closure_after_gap(timestamp)
        if ears is None or not np.all(np.isfinite(ears)):
            return None
        interval = 0.0 if self._last_sample is None else timestamp - self._last_sample
        self._last_sample = timestamp
        self._expire(timestamp)
        distances = None
        if patches is not None and self.eyes is not None:
            distances = self.eyes.distance(patches)
        sample = _Sample(timestamp, ears, distances)
        if len(self._open) < self.warmup_samples:
            self._learn(sample, patches, interval)  # warm-up: trust the first samples
            self._last_open = timestamp
            return None
        score, ear_z, look_z = self._score(sample)
        self.score = score
        if self._closure is None:
            self._update_open(sample, patches, interval, frame_index, score, ear_z, look_z)
            return None
        return self._update_closed(sample, patches, interval, frame_index, score, ear_z,
                                   look_z)

    def _score(self, sample: _Sample) -> tuple[float, float, float | None]:
        """(fused score, EAR dip, appearance dip), each in robust sigmas."""
        history = self._open
        if sample.distances is None or history.distances_count < self.warmup_samples:
            median, spread = _robust(history.ears, _RELATIVE_FLOOR[:2], _ABSOLUTE_FLOOR[:2])
            z = (median - sample.ears) / spread
            self._level = 0.5 * float(median[0] + median[1])
            ear_z = 0.5 * float(z[0] + z[1])
            return ear_z, ear_z, None
        median, spread = _robust(history.ears_and_distances, _RELATIVE_FLOOR, _ABSOLUTE_FLOOR)
        z = (np.concatenate([median[:2] - sample.ears, sample.distances - median[2:]])
             / spread).tolist()
        self._level = 0.5 * float(median[0] + median[1])
        ear_z, look_z = 0.5 * (z[0] + z[1]), _both_eyes(z[2], z[3])
        return (ear_z + look_z) / math.sqrt(2.0), ear_z, look_z

    def _ear_ratio(self, sample: _Sample) -> float:
        """The sample's EAR over the open level found by the last `_score`."""
        level = self._level
        return float(sample.ears.mean()) / level if level else 1.0

    def _learn(self, sample: _Sample, patches: np.ndarray | None,
               interval: float) -> None:
        self._open.append(sample)
        if patches is not None and self.eyes is not None:
            self.eyes.learn(patches, interval)

    def _update_open(self, sample: _Sample, patches: np.ndarray | None,
                     interval: float, frame_index: int, score: float, ear_z: float,
                     look_z: float | None) -> None:
        timestamp = sample.timestamp
        if score < self.open_sigma:
            self._armed = True
        in_refractory = (self._last_blink_end is not None
                         and timestamp - self._last_blink_end < self.refractory)
        ratio = self._ear_ratio(sample)
        # The EAR alone (no patches) is one noisy cue: its dip must also be a visible
        # lid movement, below open_ratio of the open level.
        deep_enough = look_z is not None or ratio < self.open_ratio
        closing = ((score >= self.close_sigma and ear_z >= 0.0 and self._armed
                    and deep_enough) or ratio < self.close_ratio)
        if not closing or in_refractory:
            self._learn(sample, patches, interval)
            self._last_open = timestamp
            return
        before = self._last_open if self._last_open is not None else timestamp
        baseline = self.baseline or float(sample.ears.mean())
        self._closure = _Closure(frame_index, timestamp, before, timestamp,
                                 float(sample.ears.mean()), baseline, score, score,
                                 ear_peak=ear_z, look_peak=look_z or 0.0,
                                 samples=[(frame_index, timestamp, score)])
        self._armed = False

    def _update_closed(self, sample: _Sample, patches: np.ndarray | None,
                       interval: float, frame_index: int, score: float, ear_z: float,
                       look_z: float | None) -> Blink | None:
        closure = self._closure
        assert closure is not None
        timestamp = sample.timestamp
        reference = closure.baseline
        if timestamp - closure.start_time > self.max_duration:
            # Too long for a blink: maybe the eyes are shut, maybe the open level
            # itself changed (head turned down). Let the statistics follow; if the
            # change stays, the closure ends uncounted.
            self._learn(sample, patches, interval)
            reference = self.baseline or reference
        # Each closed sample stands for the time until the next one.
        closure.evidence += max(0.0, closure.last_score) * (timestamp - closure.last_time)
        closure.peak = max(closure.peak, score)
        cues = (ear_z,) if look_z is None else (ear_z, look_z)
        by_sigma = (score >= max(self.open_sigma, PEAK_FRACTION * closure.peak)
                    and min(cues) >= self.open_sigma)
        by_ratio = float(sample.ears.mean()) < self.open_ratio * reference
        if by_sigma or by_ratio:
            closure.last_time = timestamp
            closure.last_score = score
            closure.look_peak = max(closure.look_peak, look_z or 0.0)
            closure.ear_peak = max(closure.ear_peak, ear_z)
            closure.min_ear = min(closure.min_ear, float(sample.ears.mean()))
            if timestamp - closure.start_time <= self.max_duration:
                closure.samples.append((frame_index, timestamp, score))
            return None
        self._closure = None
        self._learn(sample, patches, interval)
        self._last_open = timestamp
        start_frame, start_time = closure.core_start()
        blink = Blink(start_frame, frame_index, start_time, timestamp,
                      closure.min_ear, closure.baseline, closure.peak)
        if not self._is_blink(closure, timestamp, look_z):
            return None
        self.count += 1
        self._last_blink_end = timestamp
        self._blink_times.append(timestamp)
        return blink

    def _is_blink(self, closure: _Closure, reopened: float, look_z: float | None) -> bool:
        """Whether a closure that ended at `reopened` was a blink."""
        # Sampling blurs the closed span: it lasted at least last_time - start_time
        # and at most reopened - open_before. Reject only what is surely too short
        # or surely too long for a blink.
        shortest = closure.last_time - closure.start_time
        longest = reopened - closure.open_before
        if longest < self.min_duration or shortest > self.max_duration:
            return False
        # Evidence: each closed sample's score times the time it stands for. A blink
        # keeps the lid down ~0.1 s or more, so it gathers close_sigma x EVIDENCE_TIME:
        # one frame just over the threshold does at 7.7 fps (0.13 s a frame), not at
        # 17 fps, where a real blink shows in several frames or far deeper.
        if closure.evidence < self.close_sigma * EVIDENCE_TIME:
            return False
        # A glance, not a blink: the lids barely moved (EAR dip under GLANCE_EAR x
        # close_sigma), and on reopening the eye still looks as far from its open
        # template as at the closure's height (STEP of its peak): the eye moved or
        # the head turned; a lid that closed and reopened shows the eye as before.
        # (After a real blink the gaze often moves too; then the lids did dip.)
        moved = (look_z is not None
                 and look_z >= max(self.close_sigma, STEP * closure.look_peak))
        return not (moved and closure.ear_peak < GLANCE_EAR * self.close_sigma)

    def _drop_closure_after_gap(self, timestamp: float) -> None:
        """A closure with a long hole in it has an unknown end: not a countable blink."""
        if (self._closure is not None and self._last_sample is not None
                and timestamp - self._last_sample > self.max_gap):
            self._closure = None

    def _expire(self, now: float) -> None:
        # Keep the newest few even when old, so a face back from a gap keeps its level.
        self._open.expire(now, self.baseline_window, self.warmup_samples)

    def _expire_blinks(self, now: float) -> None:
        while self._blink_times and now - self._blink_times[0] >= RATE_WINDOW:
            self._blink_times.popleft()
