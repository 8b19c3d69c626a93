"""Motion gating: is anything in the picture changing, and where?

A network video recorder runs its detector only where the picture changes; here
the same idea decides when the full-frame face scan (tens of milliseconds of HOG)
is worth running. The measure is deliberately crude and cheap (~0.1 ms at
640x480): the gray frame shrunk to a thumbnail of THUMB_WIDTH pixels, compared
with a background that slowly follows the thumbnail. Shrinking averages blocks
of pixels, so sensor noise shrinks with it (an 8x8 block divides its standard
deviation by 8) while a moving person changes whole blocks; a change of the whole
picture at once (auto-exposure, a light switched on) is taken off as its median.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import cv2
import numpy as np

from edge.medians import median
from edge.types import Box

THUMB_WIDTH = 80  # 8x8 pixel blocks at 640x480: a 44 px face spans ~5 thumbnail pixels
BACKGROUND_SECONDS = 2.0  # time constant of the background: slower changes are not motion
# Around a tracked face, motion is that person's own (head, shoulders, hands):
# ignore a box-width either side, half a box above and three boxes below.
EXCLUDE_SIDE, EXCLUDE_ABOVE, EXCLUDE_BELOW = 1.0, 0.5, 3.0


class MotionGate:
    """Per frame: the share of thumbnail pixels that differ from the background.

    `threshold` is in gray levels of the thumbnail (a block's mean), `area` the
    share of the frame that must change for `moving` to say yes.
    """

    def __init__(self, threshold: float = 12.0, area: float = 0.003,
                 background_seconds: float = BACKGROUND_SECONDS,
                 thumb_width: int = THUMB_WIDTH) -> None:
        if threshold <= 0:
            raise ValueError(f"threshold must be > 0, got {threshold}")
        if not 0 <= area <= 1:
            raise ValueError(f"area must be in [0, 1], got {area}")
        self.threshold = threshold
        self.area = area
        self.background_seconds = background_seconds
        self.thumb_width = thumb_width
        self.changed: np.ndarray | None = None  # bool thumbnail of the last update
        self._background: np.ndarray | None = None  # float32 thumbnail
        self._thumb: np.ndarray | None = None  # the last update's thumbnail
        self._scanned: np.ndarray | None = None  # the thumbnail the last scan saw
        self._scale = 1.0  # frame pixels per thumbnail pixel
        self._last_ts: float | None = None

    def update(self, gray: np.ndarray, timestamp: float) -> None:
        """Compare `gray` with the background, then let the background follow it."""
        height, width = gray.shape[:2]
        self._scale = width / self.thumb_width
        size = (self.thumb_width, max(1, round(height / self._scale)))
        thumb = cv2.resize(gray, size, interpolation=cv2.INTER_AREA).astype(np.float32)
        self._thumb = thumb
        if self._background is None or self._background.shape != thumb.shape:
            # No history: everything counts as change, so the first frame is scanned.
            self._background = thumb
            self.changed = np.ones(thumb.shape, dtype=bool)
        else:
            self.changed = self._differs(thumb, self._background)
            dt = max(0.0, timestamp - (self._last_ts if self._last_ts is not None else timestamp))
            # Per second, not per frame: the same background at 7 or 30 fps.
            alpha = 1.0 - math.exp(-dt / self.background_seconds) if dt > 0 else 0.0
            if alpha > 0:
                cv2.accumulateWeighted(thumb, self._background, alpha)
        self._last_ts = timestamp

    def changed_share(self, exclude: Iterable[Box] = ()) -> float:
        """Share of the thumbnail that changed, outside the regions around `exclude` faces."""
        if self.changed is None:
            return 0.0
        return self._share(self.changed, exclude)

    def moving(self, exclude: Iterable[Box] = ()) -> bool:
        """Did enough of the frame change, not counting tracked people (`exclude`)?"""
        return self._enough(self.changed_share(exclude))

    def scanned(self) -> None:
        """A full-frame scan starts on the last update's picture: remember what it saw
        (a copy: the first thumbnail is also the background, which follows the picture)."""
        self._scanned = None if self._thumb is None else self._thumb.copy()

    def forget_scan(self) -> None:
        """What the last scan saw no longer holds (a tracked face was lost in it)."""
        self._scanned = None

    def changed_since_scan(self, exclude: Iterable[Box] = ()) -> bool:
        """Does the picture, outside tracked people, differ from what the last scan saw
        (by the same measure as `moving`)? A scan of the same picture finds the same."""
        if self._scanned is None or self._thumb is None or \
                self._scanned.shape != self._thumb.shape:
            return True
        return self._enough(self._share(self._differs(self._thumb, self._scanned), exclude))

    def _enough(self, share: float) -> bool:
        return share > 0 and share >= self.area

    def _differs(self, thumb: np.ndarray, reference: np.ndarray) -> np.ndarray:
        difference = thumb - reference
        # A camera's auto-exposure shifts the whole picture at once: that is not
        # motion, so the typical (median) change is taken off first.
        difference -= float(median(difference.ravel()))
        return np.abs(difference) > self.threshold

    def _share(self, changed: np.ndarray, exclude: Iterable[Box]) -> float:
        boxes = list(exclude)
        if boxes:
            changed = changed.copy()
            for box in boxes:
                left, top, right, bottom = self._around(box)
                changed[top:bottom, left:right] = False
        return float(np.count_nonzero(changed)) / changed.size

    def _around(self, box: Box) -> tuple[int, int, int, int]:
        """A face's person in thumbnail pixels: the face grown by EXCLUDE_* of its size."""
        s = self._scale
        left = math.floor((box.left - EXCLUDE_SIDE * box.width) / s)
        right = math.ceil((box.right + EXCLUDE_SIDE * box.width) / s)
        top = math.floor((box.top - EXCLUDE_ABOVE * box.height) / s)
        bottom = math.ceil((box.bottom + EXCLUDE_BELOW * box.height) / s)
        return max(0, left), max(0, top), max(0, right), max(0, bottom)
