"""What each eye looks like, compared with how it looked while open.

The six eye landmarks of a small, blurred eye (behind glasses, in dim light, a face
of ~120 px) follow the lids weakly: the eye aspect ratio may fall only to 0.8-0.9 of
its open level in a blink. The pixels change far more: the dark iris and the bright
sclera vanish under the lid. So each eye is also seen as a small patch, aligned on
its two corners (which the landmarks find reliably even when the lid points lag),
and compared with a per-eye template of the open eye learnt online.

- Patch: PATCH_W x PATCH_H pixels, eye corners CORNER_SPAN pixels apart, centred on
  the six eye points: the same eye gives the same patch at any face size or roll.
- Distance: 1 - the best normalised cross-correlation of the patch with the
  template within +-SHIFT pixels. Normalised: lighting and exposure changes cancel;
  shift-tolerant: landmark jitter (dlib's points are whole pixels) does not count.
- Template: an exponential average in time (`time_constant` seconds) of patches
  the blink detector judged open; it follows slow changes of pose and light.

What reaches this module stays in memory: no patch is ever written anywhere.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from edge.landmarks import LEFT_EYE, RIGHT_EYE

PATCH_W, PATCH_H = 24, 16  # an eye is ~3:1 wide; the lids and some skin around them
CORNER_SPAN = 16.0  # corner-to-corner pixels in the patch: 4 px of skin on each side
SHIFT = 1  # pixels of misalignment the comparison forgives
DEFAULT_TIME_CONSTANT = 1.0  # seconds: a second of open eyes renews the template


def eye_patch(gray: np.ndarray, eye: np.ndarray, margin: int = 0) -> np.ndarray:
    """The eye aligned on its corners: (PATCH_H + 2 margin, PATCH_W + 2 margin) float32."""
    pts = np.asarray(eye, dtype=np.float64).reshape(6, 2)
    axis = pts[3] - pts[0]
    width = math.hypot(axis[0], axis[1])
    if width < 1.0:
        raise ValueError("degenerate eye: corners coincide")
    cos, sin = axis / width * (CORNER_SPAN / width)
    out_w, out_h = PATCH_W + 2 * margin, PATCH_H + 2 * margin
    centre = pts.sum(axis=0) / 6.0
    # Rotate and scale about the eye centre, which lands on the patch centre.
    matrix = np.array([[cos, sin, 0.0], [-sin, cos, 0.0]])
    matrix[:, 2] = (out_w / 2.0, out_h / 2.0) - matrix[:, :2] @ centre
    patch = cv2.warpAffine(gray, matrix, (out_w, out_h), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
    return patch.astype(np.float32)


class EyeAppearance:
    """Open-eye templates of one face's two eyes, and how far a new frame is from them."""

    def __init__(self, time_constant: float = DEFAULT_TIME_CONSTANT) -> None:
        if time_constant <= 0:
            raise ValueError("time_constant must be > 0")
        self.time_constant = time_constant
        self.reset()

    def reset(self) -> None:
        self._templates: np.ndarray | None = None  # (2, PATCH_H, PATCH_W)
        self._unit: np.ndarray | None = None  # the templates, zero-mean, unit norm

    @property
    def ready(self) -> bool:
        return self._templates is not None

    def patches(self, gray: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """Both eyes' patches (subject's right, then left) with the search margin:
        (2, PATCH_H + 2 SHIFT, PATCH_W + 2 SHIFT) float32."""
        pts = np.asarray(landmarks).reshape(68, 2)
        return np.stack([eye_patch(gray, pts[RIGHT_EYE], SHIFT),
                         eye_patch(gray, pts[LEFT_EYE], SHIFT)])

    def distance(self, patches: np.ndarray) -> np.ndarray | None:
        """Per eye, 1 - best correlation with the open template (0 = same); None untrained.

        The normalised cross-correlation at each of the (2 SHIFT + 1)^2 offsets, in
        numpy: for patches this small, a few vector operations beat cv2.matchTemplate.
        """
        if self._unit is None:
            return None
        n = PATCH_H * PATCH_W
        eyes = len(patches)
        windows = np.ascontiguousarray(np.lib.stride_tricks.sliding_window_view(
            patches, (PATCH_H, PATCH_W), axis=(1, 2))).reshape(eyes, -1, n)  # (2, 9, n)
        sums = windows.sum(axis=-1)
        energy = np.einsum("ekn,ekn->ek", windows, windows) - sums * sums / n
        cross = np.matmul(windows, self._unit.reshape(eyes, n, 1))[..., 0]
        correlation = cross / np.sqrt(np.maximum(energy, 1e-6))
        return 1.0 - correlation.max(axis=1).astype(np.float64)

    def learn(self, patches: np.ndarray, interval: float) -> None:
        """Blend open-eye patches into the templates with the weight of `interval` seconds
        (the frame interval), so the template's memory is the same at 6 or 30 fps."""
        cores = patches[:, SHIFT:SHIFT + PATCH_H, SHIFT:SHIFT + PATCH_W]
        if self._templates is None:
            self._templates = cores.copy()
        else:
            alpha = np.float32(1.0 - math.exp(-max(0.0, interval) / self.time_constant))
            self._templates += alpha * (cores - self._templates)
        unit = self._templates - self._templates.mean(axis=(1, 2), keepdims=True)
        norm = np.sqrt((unit * unit).sum(axis=(1, 2), keepdims=True))
        self._unit = unit / np.maximum(norm, 1e-6)
