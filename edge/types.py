"""The frame and result types every stage shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Box:
    """Axis-aligned box in frame pixels."""

    left: int
    top: int
    width: int
    height: int

    @property
    def right(self) -> int:
        return self.left + self.width

    @property
    def bottom(self) -> int:
        return self.top + self.height

    @property
    def area(self) -> int:
        return max(0, self.width) * max(0, self.height)

    def iou(self, other: Box) -> float:
        ix = max(0, min(self.right, other.right) - max(self.left, other.left))
        iy = max(0, min(self.bottom, other.bottom) - max(self.top, other.top))
        inter = ix * iy
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def scaled(self, factor: float) -> Box:
        return Box(round(self.left * factor), round(self.top * factor),
                   round(self.width * factor), round(self.height * factor))


@dataclass
class Frame:
    """One picture from a source.

    `gray` is what every stage reads; `bgr` is kept only where a display needs
    colour. `timestamp` is seconds on the source's clock (media time for files,
    monotonic capture time for live cameras): blink timing uses it, so a file
    decoded faster than real time still gives right durations.
    """

    gray: np.ndarray
    index: int
    timestamp: float
    bgr: np.ndarray | None = None

    @property
    def size(self) -> tuple[int, int]:
        height, width = self.gray.shape[:2]
        return width, height


@dataclass
class Face:
    """One detected face in one frame, filled in stage by stage."""

    box: Box
    score: float
    track_id: int = -1
    landmarks: np.ndarray | None = None  # (68, 2) float32, frame pixels
    probabilities: np.ndarray | None = None  # smoothed, in sidecar label order
    emotion: str | None = None
    ear: float | None = None  # mean eye aspect ratio
    eyes_closed: bool = False
    blinks: int = 0  # this track's blink count so far


@dataclass
class Event:
    """A line of the JSONL log: see README 'Event log format'."""

    kind: str  # start | blink | emotion | summary | stop | error
    frame: int | None = None
    face: int | None = None
    data: dict[str, Any] = field(default_factory=dict)
    ts: str | None = None  # ISO-8601 UTC; stamped by the first sink, so all sinks agree


@dataclass
class FrameResult:
    """What the pipeline made of one frame: faces, new events and stage timings."""

    frame: Frame
    faces: list[Face]
    events: list[Event] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # stage -> seconds
