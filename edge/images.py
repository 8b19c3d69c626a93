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
