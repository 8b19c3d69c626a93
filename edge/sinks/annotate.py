"""Drawing a FrameResult for people: boxes, labels, probability bars, blinks, fps.

Kept apart from detection and from the displays that show the picture.
"""

from __future__ import annotations

import cv2
import numpy as np

from edge.types import FrameResult

GREEN, WHITE, BLACK, YELLOW = (80, 200, 80), (255, 255, 255), (0, 0, 0), (0, 220, 255)
FONT = cv2.FONT_HERSHEY_SIMPLEX


def annotate(result: FrameResult, labels: tuple[str, ...], total_blinks: int,
             fps: float) -> np.ndarray:
    """A BGR picture of the frame with everything the pipeline found."""
    frame = result.frame
    canvas = (frame.bgr.copy() if frame.bgr is not None
              else cv2.cvtColor(frame.gray, cv2.COLOR_GRAY2BGR))
    for face in result.faces:
        b = face.box
        cv2.rectangle(canvas, (b.left, b.top), (b.right, b.bottom), GREEN, 2)
        title = f"#{face.track_id} {face.emotion or '?'}"
        if face.eyes_closed:
            title += " (blink)"
        cv2.putText(canvas, title, (b.left, max(14, b.top - 6)), FONT, 0.55, GREEN, 2)
        if face.probabilities is not None:
            _bars(canvas, face.probabilities, labels, b.right + 6, b.top)
    status = f"{fps:4.1f} fps  faces {len(result.faces)}  blinks {total_blinks}"
    cv2.rectangle(canvas, (0, 0), (8 + 9 * len(status), 24), BLACK, -1)
    cv2.putText(canvas, status, (6, 17), FONT, 0.5, WHITE, 1)
    return canvas


def _bars(canvas: np.ndarray, probs: np.ndarray, labels: tuple[str, ...], x: int, y: int) -> None:
    width = 90
    if x + 70 + width > canvas.shape[1]:
        return  # no room beside the face: the label above still says the emotion
    for i, (label, p) in enumerate(zip(labels, probs)):
        top = y + i * 14
        cv2.putText(canvas, label[:8], (x, top + 10), FONT, 0.35, WHITE, 1)
        cv2.rectangle(canvas, (x + 62, top + 2), (x + 62 + width, top + 11), BLACK, -1)
        cv2.rectangle(canvas, (x + 62, top + 2), (x + 62 + int(width * float(p)), top + 11),
                      YELLOW, -1)
