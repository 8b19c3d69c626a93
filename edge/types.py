"""The frame and result types every stage shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
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


@dataclass(frozen=True)
class Detection:
    """What a face detector returns: a box and its score, nothing known yet about who."""

    box: Box
    score: float


@dataclass
class Face:
    """One tracked face in one frame, as the pipeline finished it."""

    box: Box
    score: float
    track_id: int
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

    def to_dict(self) -> dict[str, Any]:
        """The JSONL line / MQTT payload; stamps `ts` on first use so every sink agrees."""
        if self.ts is None:
            self.ts = utc_now_iso()
        line: dict[str, Any] = {"event": self.kind, "ts": self.ts}
        if self.frame is not None:
            line["frame"] = self.frame
        if self.face is not None:
            line["face"] = self.face
        line.update(self.data)
        return line


def utc_now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class FrameResult:
    """What the pipeline made of one frame: faces, new events and stage timings."""

    frame: Frame
    faces: list[Face]
    events: list[Event] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # stage -> seconds
