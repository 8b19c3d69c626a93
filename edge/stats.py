"""Running counts behind the `summary` events and the status line."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from edge.types import FrameResult


@dataclass
class Tally:
    counts: Counter = field(default_factory=Counter)  # face observations per emotion
    blinks: int = 0
    # Distinct track ids. Ids are handed out in increasing order, so a since-start tally
    # counts ids above the newest seen (a set would grow for months on a busy kiosk);
    # a period tally keeps its ids, which the next period drops.
    count_only: bool = False
    faces: int = 0
    newest_id: int = -1
    face_ids: set[int] = field(default_factory=set)
    frames: int = 0
    started: float = field(default_factory=time.monotonic)
    first_ts: float | None = None  # source clock: blink rates are per minute of video
    last_ts: float | None = None

    def add(self, result: FrameResult) -> None:
        self.frames += 1
        if self.first_ts is None:
            self.first_ts = result.frame.timestamp
        self.last_ts = result.frame.timestamp
        for face in sorted(result.faces, key=lambda f: f.track_id):
            if self.count_only:
                if face.track_id > self.newest_id:
                    self.newest_id = face.track_id
                    self.faces += 1
            elif face.track_id not in self.face_ids:
                self.face_ids.add(face.track_id)
                self.faces += 1
            if face.emotion:
                self.counts[face.emotion] += 1
        self.blinks += sum(1 for e in result.events if e.kind == "blink")

    def fps(self, now: float | None = None) -> float:
        return self.frames / max(1e-6, (now or time.monotonic()) - self.started)

    def as_dict(self, labels: tuple[str, ...], now: float | None = None) -> dict:
        now = now or time.monotonic()
        seconds = max(1e-6, now - self.started)
        # Media time: a file decoded at 140 fps still had 30 fps worth of blinks.
        media = (self.last_ts - self.first_ts) if self.first_ts is not None else 0.0
        media = max(media, 1e-6)
        return {"counts": {label: self.counts.get(label, 0) for label in labels},
                "blinks": self.blinks, "faces": self.faces, "frames": self.frames,
                "seconds": round(seconds, 3), "media_seconds": round(media, 3),
                "fps": round(self.fps(now), 2),
                "blink_rate_per_min": round(self.blinks * 60.0 / media, 2)}


class RunStats:
    """A tally since the last summary and one since the start."""

    def __init__(self, labels: tuple[str, ...]) -> None:
        self.labels = labels
        self.period = Tally()
        self.total = Tally(count_only=True)

    def add(self, result: FrameResult) -> None:
        self.period.add(result)
        self.total.add(result)

    def summary(self) -> dict:
        """Summary event data; starts a new period."""
        now = time.monotonic()
        data = {**self.period.as_dict(self.labels, now),
                "total": self.total.as_dict(self.labels, now)}
        self.period = Tally(started=now)
        return data

    def period_age(self) -> float:
        return time.monotonic() - self.period.started
