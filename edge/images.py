"""Small image helpers shared by the sources and the face stages."""

from __future__ import annotations

import cv2
import numpy as np


def to_gray(image: np.ndarray) -> np.ndarray:
    """8-bit single-channel image; BGR and BGRA frames are converted."""
    if image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    elif image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.dtype != np.uint8:
        raise ValueError(f"expected an 8-bit image, got {image.dtype}")
    return np.ascontiguousarray(image)


MIN_SIDE = 16  # pixels: smaller frames cannot hold a face the detector finds


def frame_is_usable(image: np.ndarray | None) -> bool:
    """Reject empty, tiny or odd-typed frames some drivers return after a glitch."""
    return (image is not None and isinstance(image, np.ndarray) and image.dtype == np.uint8
            and image.ndim in (2, 3) and image.shape[0] >= MIN_SIDE
            and image.shape[1] >= MIN_SIDE)


def letterbox(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale to fit width x height keeping the aspect ratio; pad the rest with black."""
    h, w = image.shape[:2]
    scale = min(width / w, height / h)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (new_w, new_h), interpolation=interpolation)
    canvas = np.zeros((height, width, *image.shape[2:]), dtype=image.dtype)
    top, left = (height - new_h) // 2, (width - new_w) // 2
    canvas[top : top + new_h, left : left + new_w] = resized
    return canvas
