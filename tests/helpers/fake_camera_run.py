"""Run `edge-run` with camera 0 played from a recorded clip: a test double for a USB camera.

The capture goes through the real LiveSource/OpenCVCamera code; only
cv2.VideoCapture is replaced, before edge.sources binds it. While the file
named by $FAKE_CAMERA_UNPLUGGED exists, the camera behaves as unplugged: reads
fail and re-opening fails, as a USB camera pulled from its socket does.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import cv2

REAL_CAPTURE = cv2.VideoCapture
CLIP = Path(__file__).resolve().parents[2] / "edge" / "assets" / "pyfeat_single_face.mp4"


def unplugged() -> bool:
    flag = os.environ.get("FAKE_CAMERA_UNPLUGGED")
    return bool(flag) and Path(flag).exists()


class RecordedCamera:
    def __init__(self, target: object, *args: object) -> None:
        self._clip = REAL_CAPTURE(str(CLIP))
        self._open = not unplugged()

    def isOpened(self) -> bool:
        return self._open

    def set(self, prop: int, value: float) -> bool:
        return True

    def read(self) -> tuple[bool, object]:
        time.sleep(1 / 30)  # a camera delivers at its frame rate
        if unplugged():
            return False, None
        ok, image = self._clip.read()
        if not ok:
            self._clip.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, image = self._clip.read()
        return ok, image

    def release(self) -> None:
        self._open = False
        self._clip.release()


cv2.VideoCapture = RecordedCamera  # before edge.sources is imported

from edge.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
