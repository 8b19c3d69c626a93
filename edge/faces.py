"""Face detection (dlib HOG on a downscaled frame) and 68-point landmarks.

Detection is the costliest per-frame stage, so it runs on a frame shrunk to
`detect_width` pixels and its boxes are mapped back to full-frame pixels.
Landmarks run on the full-resolution frame: they are cheap (~1 ms a face) and
the eye points need every pixel for a usable eye aspect ratio.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Any

import cv2
import dlib
import numpy as np

from edge.config import DetectConfig
from edge.errors import ModelError, first_line
from edge.images import to_gray
from edge.types import Box, Detection

LANDMARK_MODEL_NAME = "shape_predictor_68_face_landmarks.dat"

ROI_FACE_PX = 100  # detect_near scales a tracked face to this: HOG's window is 80 px


def find_landmark_model(path: str | Path | None = None) -> Path:
    """The 68-point model: `path` if given, else the face-recognition-models copy.

    face_recognition_models is located, never imported: its __init__ imports
    pkg_resources, which setuptools >= 81 no longer ships.
    """
    if path is not None:
        candidate = Path(path).expanduser()
        if not candidate.is_file():
            raise ModelError(f"landmark model not found: {candidate}")
        return candidate
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None:
        raise ModelError(
            f"no landmark model: pip install face-recognition-models or give a path to "
            f"{LANDMARK_MODEL_NAME}"
        )
    roots = list(spec.submodule_search_locations or [])
    if spec.origin:
        roots.append(str(Path(spec.origin).parent))
    for root in roots:
        candidate = Path(root) / "models" / LANDMARK_MODEL_NAME
        if candidate.is_file():
            return candidate
    raise ModelError(f"face-recognition-models is installed but has no {LANDMARK_MODEL_NAME}")


class FaceDetector:
    """dlib's frontal HOG detector on a downscaled grayscale frame."""

    def __init__(self, config: DetectConfig | None = None) -> None:
        config = config or DetectConfig()  # validated by edge.config
        self.config = config
        self.detect_width = config.width
        self.upsample = config.upsample
        self.threshold = config.threshold
        self.min_face = config.min_face
        self._detector = dlib.get_frontal_face_detector()

    def clone(self) -> FaceDetector:
        """The same detector with its own dlib object: one dlib detector must not run on
        two threads at once (it keeps its feature pyramid between calls)."""
        return FaceDetector(self.config)

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in `image` (gray or BGR), boxes in its pixels, best score first."""
        gray = to_gray(image)
        small, scale = self._downscale(gray)
        rects, scores, _ = self._detector.run(small, self.upsample, self.threshold)
        return self._faces(rects, scores, scale, (0, 0), gray.shape[:2])

    def detect_near(self, image: np.ndarray, box: Box) -> list[Detection]:
        """Faces in `box` grown by half its size, seen at ~ROI_FACE_PX a face.

        Re-finding a tracked face this way costs a fraction of a full-frame scan
        (HOG's 80 px window needs no upsampling at that scale).
        """
        gray = to_gray(image)
        margin = box.width // 2
        left, top = max(0, box.left - margin), max(0, box.top - margin)
        crop = gray[top : box.bottom + margin, left : box.right + margin]
        scale = ROI_FACE_PX / max(1, box.width)
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        small = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=interpolation)
        rects, scores, _ = self._detector.run(small, 0, self.threshold)
        return self._faces(rects, scores, scale, (left, top), gray.shape[:2])

    def _faces(self, rects: Any, scores: Any, scale: float, offset: tuple[int, int],
               shape: tuple[int, int]) -> list[Detection]:
        height, width = shape
        faces = []
        for rect, score in zip(rects, scores, strict=True):
            box = _rect_to_box(rect).scaled(1.0 / scale)
            box = _clip(Box(box.left + offset[0], box.top + offset[1], box.width, box.height),
                        width, height)
            if min(box.width, box.height) >= max(self.min_face, 1):
                faces.append(Detection(box=box, score=float(score)))
        faces.sort(key=lambda face: face.score, reverse=True)
        return faces

    def _downscale(self, gray: np.ndarray) -> tuple[np.ndarray, float]:
        width = gray.shape[1]
        if width <= self.detect_width:
            return gray, 1.0
        scale = self.detect_width / width
        height = max(1, round(gray.shape[0] * scale))
        # INTER_AREA averages pixels: no aliasing that would break HOG gradients.
        return cv2.resize(gray, (self.detect_width, height), interpolation=cv2.INTER_AREA), scale


@functools.lru_cache(maxsize=2)
def _shape_predictor(path: str, size: int, mtime_ns: int) -> Any:
    """The loaded model, shared within a process (~0.5 s and ~100 MB a load: `check`
    then a run, or many runs in one test process). Its predictions are read-only.
    A file replaced in place has another size or time, so it is loaded again."""
    return dlib.shape_predictor(path)


class LandmarkPredictor:
    """dlib's 68-point shape predictor on the full-resolution frame."""

    def __init__(self, model_path: str | Path | None = None) -> None:
        self.model_path = find_landmark_model(model_path)
        try:
            stat = self.model_path.stat()
            self._predictor = _shape_predictor(str(self.model_path.resolve()), stat.st_size,
                                               stat.st_mtime_ns)
        except RuntimeError as exc:
            raise ModelError(f"cannot load landmark model {self.model_path}: "
                             f"{first_line(exc)}") from None

    def predict(self, image: np.ndarray, box: Box) -> np.ndarray:
        """(68, 2) float32 landmark coordinates (x, y) in `image` pixels."""
        rect = dlib.rectangle(box.left, box.top, box.right - 1, box.bottom - 1)
        shape = self._predictor(to_gray(image), rect)
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


def _rect_to_box(rect: dlib.rectangle) -> Box:
    # dlib rectangles are inclusive of right/bottom; Box width counts pixels.
    return Box(rect.left(), rect.top(), rect.width(), rect.height())


def _clip(box: Box, width: int, height: int) -> Box:
    """Clip to the frame: HOG boxes may stick out past an edge."""
    left, top = max(0, box.left), max(0, box.top)
    right, bottom = min(width, box.right), min(height, box.bottom)
    return Box(left, top, max(0, right - left), max(0, bottom - top))
