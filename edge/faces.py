"""Face detection (dlib HOG on a downscaled frame) and 68-point landmarks.

Detection is the costliest per-frame stage, so it runs on a frame shrunk to
`detect_width` pixels and its boxes are mapped back to full-frame pixels.
Landmarks run on the full-resolution frame: they are cheap (~1 ms a face) and
the eye points need every pixel for a usable eye aspect ratio.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import cv2
import dlib
import numpy as np

from edge.errors import ModelError
from edge.images import to_gray
from edge.types import Box, Face

LANDMARK_MODEL_NAME = "shape_predictor_68_face_landmarks.dat"

# iBUG 300-W 68-point scheme: the subject's right eye, then the left eye.
RIGHT_EYE = slice(36, 42)
LEFT_EYE = slice(42, 48)

# Why these defaults (measured on a 2-core x86_64 with a training run beside it,
# 640x480 frame, one face):
# dlib's HOG window finds faces down to a ~75 px box at the scale the detector
# sees, so a 640x480 frame needs an effective 2x scale for 40-45 px faces:
#   detect_width/upsample   smallest face found (640 px frame)   time
#   320 / 0                 ~100 px                              ~4 ms
#   320 / 1  (= 640 / 0)    ~55-60 px                           ~13 ms
#   480 / 1                 ~40-44 px                           ~30 ms
#   640 / 1                 ~37 px                              ~53 ms
# 480/1 is the cheapest setting that finds a 44 px face (a person ~2 m from a
# 60-degree 640x480 webcam); 320/1 is the choice when faces are known to be close.
DEFAULT_DETECT_WIDTH = 480
DEFAULT_UPSAMPLE = 1
# dlib's own threshold is 0.0. Real faces score ~0.5-3; texture false positives
# such as the astronaut's mission patch score <= 0.07 at any scale we tried.
DEFAULT_THRESHOLD = 0.2
DEFAULT_MIN_FACE = 0
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

    def __init__(
        self,
        detect_width: int = DEFAULT_DETECT_WIDTH,
        upsample: int = DEFAULT_UPSAMPLE,
        threshold: float = DEFAULT_THRESHOLD,
        min_face: int = DEFAULT_MIN_FACE,
    ) -> None:
        if detect_width < 32:
            raise ValueError(f"detect_width must be >= 32, got {detect_width}")
        if upsample < 0:
            raise ValueError(f"upsample must be >= 0, got {upsample}")
        self.detect_width = detect_width
        self.upsample = upsample
        self.threshold = threshold
        self.min_face = min_face
        self._detector = dlib.get_frontal_face_detector()

    def clone(self) -> FaceDetector:
        """The same detector with its own dlib object: one dlib detector must not run on
        two threads at once (it keeps its feature pyramid between calls)."""
        return FaceDetector(self.detect_width, self.upsample, self.threshold, self.min_face)

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in `image` (gray or BGR), boxes in its pixels, best score first."""
        gray = to_gray(image)
        small, scale = self._downscale(gray)
        rects, scores, _ = self._detector.run(small, self.upsample, self.threshold)
        return self._faces(rects, scores, scale, (0, 0), gray.shape[:2])

    def detect_near(self, image: np.ndarray, box: Box) -> list[Face]:
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
               shape: tuple[int, int]) -> list[Face]:
        height, width = shape
        faces = []
        for rect, score in zip(rects, scores, strict=True):
            box = _rect_to_box(rect).scaled(1.0 / scale)
            box = _clip(Box(box.left + offset[0], box.top + offset[1], box.width, box.height),
                        width, height)
            if min(box.width, box.height) >= max(self.min_face, 1):
                faces.append(Face(box=box, score=float(score)))
        faces.sort(key=lambda face: face.score, reverse=True)
        return faces

    __call__ = detect

    def _downscale(self, gray: np.ndarray) -> tuple[np.ndarray, float]:
        width = gray.shape[1]
        if width <= self.detect_width:
            return gray, 1.0
        scale = self.detect_width / width
        height = max(1, round(gray.shape[0] * scale))
        # INTER_AREA averages pixels: no aliasing that would break HOG gradients.
        return cv2.resize(gray, (self.detect_width, height), interpolation=cv2.INTER_AREA), scale


class LandmarkPredictor:
    """dlib's 68-point shape predictor on the full-resolution frame."""

    def __init__(self, model_path: str | Path | None = None) -> None:
        self.model_path = find_landmark_model(model_path)
        try:
            self._predictor = dlib.shape_predictor(str(self.model_path))
        except RuntimeError as exc:
            reason = (str(exc).strip().splitlines() or ["unreadable"])[0]
            raise ModelError(f"cannot load landmark model {self.model_path}: {reason}") from None

    def predict(self, image: np.ndarray, box: Box) -> np.ndarray:
        """(68, 2) float32 landmark coordinates (x, y) in `image` pixels."""
        rect = dlib.rectangle(box.left, box.top, box.right - 1, box.bottom - 1)
        shape = self._predictor(to_gray(image), rect)
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)

    __call__ = predict


def eye_aspect_ratio(eye: np.ndarray) -> float:
    """Soukupová & Čech (2016): eye height over width from six eye landmarks.

    Points are p1..p6 clockwise from the outer corner; (|p2-p6| + |p3-p5|) / (2 |p1-p4|).
    About 0.25-0.35 for an open eye, near 0.1 when closed; 0.0 for a degenerate eye.
    """
    pts = np.asarray(eye, dtype=np.float64).reshape(6, 2)
    vertical = np.linalg.norm(pts[1] - pts[5]) + np.linalg.norm(pts[2] - pts[4])
    horizontal = np.linalg.norm(pts[0] - pts[3])
    return float(vertical / (2.0 * horizontal)) if horizontal > 0 else 0.0


def mean_ear(landmarks: np.ndarray) -> float:
    """Mean eye aspect ratio of both eyes from 68-point landmarks."""
    pts = np.asarray(landmarks).reshape(68, 2)
    return 0.5 * (eye_aspect_ratio(pts[RIGHT_EYE]) + eye_aspect_ratio(pts[LEFT_EYE]))


def _rect_to_box(rect: dlib.rectangle) -> Box:
    # dlib rectangles are inclusive of right/bottom; Box width counts pixels.
    return Box(rect.left(), rect.top(), rect.width(), rect.height())


def _clip(box: Box, width: int, height: int) -> Box:
    """Clip to the frame: HOG boxes may stick out past an edge."""
    left, top = max(0, box.left), max(0, box.top)
    right, bottom = min(width, box.right), min(height, box.bottom)
    return Box(left, top, max(0, right - left), max(0, bottom - top))
