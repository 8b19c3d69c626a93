"""Random augmentation of 48x48 training faces, in NumPy and OpenCV.

One random affine warp per face (horizontal flip, rotation, zoom, shift) and,
optionally, random erasing of a rectangle. Plain NumPy/OpenCV rather than Keras
preprocessing layers, so training runs the same on every Keras backend and the
warps run on the CPU beside the accelerator. Borders repeat the edge pixels,
like Keras' `fill_mode="nearest"`.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Augmentation:
    shift: float = 0.1  # fraction of the side, each way
    rotation_degrees: float = 10.0
    zoom: float = 0.1  # scale drawn from 1 +/- zoom
    flip: bool = True
    erase: float = 0.0  # probability of erasing one rectangle

    @property
    def warps(self) -> bool:
        return self.shift > 0 or self.rotation_degrees > 0 or self.zoom > 0


def augment_batch(faces: np.ndarray, aug: Augmentation, rng: np.random.Generator) -> np.ndarray:
    """uint8 (N, H, W) faces -> augmented uint8 (N, H, W); the input is not modified."""
    n, height, width = faces.shape
    out = np.empty_like(faces)
    flips = rng.random(n) < 0.5 if aug.flip else np.zeros(n, bool)
    angles = rng.uniform(-aug.rotation_degrees, aug.rotation_degrees, n)
    scales = 1.0 + rng.uniform(-aug.zoom, aug.zoom, n)
    shifts = rng.uniform(-aug.shift, aug.shift, (n, 2)) * (width, height)
    centre = ((width - 1) / 2.0, (height - 1) / 2.0)
    for i in range(n):
        face = faces[i, :, ::-1] if flips[i] else faces[i]
        if aug.warps:
            matrix = cv2.getRotationMatrix2D(centre, float(angles[i]), float(scales[i]))
            matrix[:, 2] += shifts[i]
            out[i] = cv2.warpAffine(np.ascontiguousarray(face), matrix, (width, height),
                                    flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        else:
            out[i] = face
    if aug.erase > 0:
        _erase(out, aug.erase, rng)
    return out


def _erase(faces: np.ndarray, probability: float, rng: np.random.Generator) -> None:
    """Random erasing (Zhong et al. 2017): a rectangle of 2-25% of the face, random grey."""
    n, height, width = faces.shape
    for i in np.flatnonzero(rng.random(n) < probability):
        area = rng.uniform(0.02, 0.25) * height * width
        aspect = np.exp(rng.uniform(np.log(0.3), np.log(3.3)))
        h = int(min(height, round(np.sqrt(area * aspect))))
        w = int(min(width, round(np.sqrt(area / aspect))))
        top = int(rng.integers(0, height - h + 1))
        left = int(rng.integers(0, width - w + 1))
        faces[i, top:top + h, left:left + w] = rng.integers(0, 256, dtype=np.uint8)
