"""Where results go. Each output is one sink behind one of two small protocols.

Event sinks take every event (the JSONL log, MQTT, the console); frame sinks take
each annotated frame (a window, the framebuffer, snapshots). `edge.build` opens
them from the config; the runner feeds them and closes them. A new output is a
new module here and one line in `edge.build.open_sinks`.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from edge.types import Event, FrameResult


class EventSink(Protocol):
    name: str

    def write(self, event: Event) -> None:
        """Take one event; never blocks on the network or a slow disk."""

    def sync(self) -> None:
        """Make what was written durable (at each summary and at stop)."""

    def close(self) -> None: ...


class FrameSink(Protocol):
    name: str

    def show(self, result: FrameResult, picture: np.ndarray) -> bool:
        """Take one annotated BGR picture; False when the user closed it (quit).

        May raise OSError: the runner reports it and goes on."""

    def close(self) -> None: ...
