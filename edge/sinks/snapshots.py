"""Opt-in snapshots of annotated frames. Privacy by default: off unless a folder is set."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from edge.errors import EdgeError
from edge.types import FrameResult


class SnapshotWriter:
    """Writes a JPEG on each emotion change, or every `every` seconds if set."""

    name = "snapshot"

    def __init__(self, folder: str | Path, every: float = 0.0) -> None:
        self.folder = Path(folder)
        try:  # fail at start, like run's other outputs, not at the first emotion change
            self.folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.folder):
                pass
        except OSError as exc:
            raise EdgeError(f"snapshots.dir {self.folder}: {exc.strerror or exc}") from None
        self.every = every
        self._last = 0.0

    def show(self, result: FrameResult, picture: np.ndarray) -> bool:
        self.maybe_write(picture, result)
        return True

    def close(self) -> None:
        pass

    def maybe_write(self, picture: np.ndarray, result: FrameResult) -> Path | None:
        now = time.monotonic()
        due = (now - self._last >= self.every) if self.every > 0 else any(
            e.kind == "emotion" for e in result.events)
        if not due or not result.faces:
            return None
        self._last = now
        path = self.folder / f"frame{result.frame.index:08d}.jpg"
        if not cv2.imwrite(str(path), picture):
            raise OSError(f"could not write {path}")
        return path
