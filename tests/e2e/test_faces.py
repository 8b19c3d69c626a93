"""Face detection and landmarks on real photos from <repo>/../shared/data/media."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.config import DetectConfig
from edge.errors import ModelError
from edge.faces import FaceDetector, LandmarkPredictor, find_landmark_model
from edge.landmarks import mean_ear
from edge.types import Box
from tests.conftest import SHARED_DIR

MEDIA = SHARED_DIR / "data" / "media"
STILLS = MEDIA / "stills"
VOC = STILLS / "dlib_voc_landmarks"
VOC_XML = ("training_with_face_landmarks.xml", "testing_with_face_landmarks.xml")


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"test media not found: {path} (shared media folder absent)")
    return path


def read_gray(path: Path) -> np.ndarray:
    image = cv2.imread(str(need(path)), cv2.IMREAD_GRAYSCALE)
    assert image is not None, f"cannot decode {path}"
    return image


def voc_annotations() -> list[tuple[str, list[tuple[Box, np.ndarray]]]]:
    """(image file, [(box, (68, 2) points)]) from dlib's example XML files."""
    images = []
    for name in VOC_XML:
        root = ET.parse(need(VOC / name)).getroot()
        for image in root.iter("image"):
            faces = []
            for box in image.iter("box"):
                rect = Box(*(int(box.get(k)) for k in ("left", "top", "width", "height")))
                parts = sorted(box.iter("part"), key=lambda p: int(p.get("name")))
                points = np.array([(int(p.get("x")), int(p.get("y"))) for p in parts], float)
                faces.append((rect, points))
            images.append((image.get("file"), faces))
    return images


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector()


@pytest.fixture(scope="module")
def predictor() -> LandmarkPredictor:
    return LandmarkPredictor()


@pytest.fixture(scope="module")
def small_face_detector() -> FaceDetector:
    # The VOC faces are 37-109 px in ~500 px photos: no downscaling, 2x upsampling,
    # and below the product's 40 px min_face.
    return FaceDetector(DetectConfig(width=640, upsample=1, min_face=8))


def test_astronaut_one_face_and_no_mission_patch(detector: FaceDetector) -> None:
    image = read_gray(STILLS / "other" / "skimage_astronaut.png")
    # The mission patch (lower middle) fools HOG at 640 px: try that size too.
    for size in (512, 640):
        faces = detector.detect(cv2.resize(image, (size, size)))
        assert len(faces) == 1, f"at {size} px: {faces}"
        box = faces[0].box
        assert box.bottom < 0.5 * size, "the face is in the upper half, the patch is not"


def test_no_face_in_logo(detector: FaceDetector) -> None:
    assert detector.detect(read_gray(STILLS / "other" / "max_non_face.jpg")) == []


def test_colour_and_gray_input_agree(detector: FaceDetector) -> None:
    path = need(STILLS / "other" / "pyfeat_single_face.jpg")
    bgr = cv2.imread(str(path))
    from_bgr = detector.detect(bgr)
    from_gray = detector.detect(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    assert len(from_bgr) == len(from_gray) == 1
    assert from_bgr[0].box == from_gray[0].box


def test_boxes_are_in_full_frame_pixels(detector: FaceDetector) -> None:
    """Downscaling for detection must not leak into the boxes we return."""
    image = read_gray(STILLS / "other" / "pyfeat_single_face.jpg")
    small = detector.detect(image)[0].box
    large = detector.detect(cv2.resize(image, None, fx=2.0, fy=2.0))[0].box
    assert large.iou(small.scaled(2.0)) > 0.8
    assert large.width > 1.8 * small.width


@pytest.mark.parametrize("xml_name", VOC_XML)
def test_face_counts_match_dlib_xml(xml_name: str, small_face_detector: FaceDetector) -> None:
    root = ET.parse(need(VOC / xml_name)).getroot()
    for image in root.iter("image"):
        gray = read_gray(VOC / image.get("file"))
        expected = [Box(*(int(b.get(k)) for k in ("left", "top", "width", "height")))
                    for b in image.iter("box")]
        faces = small_face_detector.detect(gray)
        assert len(faces) == len(expected), image.get("file")
        for box in expected:
            assert max(box.iou(face.box) for face in faces) > 0.5, (image.get("file"), box)
        scores = [face.score for face in faces]
        assert scores == sorted(scores, reverse=True)


def test_landmarks_match_dlib_xml(predictor: LandmarkPredictor) -> None:
    errors = []
    for file, faces in voc_annotations():
        gray = read_gray(VOC / file)
        for box, expected in faces:
            points = predictor.predict(gray, box)
            assert points.shape == (68, 2) and points.dtype == np.float32
            # 300-W convention: normalise by the outer eye corners' distance.
            inter_ocular = np.linalg.norm(expected[36] - expected[45])
            errors.append(np.linalg.norm(points - expected, axis=1).mean() / inter_ocular)
    assert len(errors) == 43
    assert np.mean(errors) < 0.03
    assert np.max(errors) < 0.08


def test_missing_landmark_model_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        find_landmark_model(tmp_path / "absent.dat")
    with pytest.raises(ModelError):
        LandmarkPredictor(tmp_path / "absent.dat")


def test_corrupt_landmark_model_is_a_model_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.dat"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="cannot load") as info:
        LandmarkPredictor(bad)
    assert "\n" not in str(info.value)


def test_default_landmark_model_is_found() -> None:
    path = find_landmark_model(None)
    assert path.name == "shape_predictor_68_face_landmarks.dat" and path.is_file()




def test_ear_of_real_open_eyes(detector: FaceDetector, predictor: LandmarkPredictor) -> None:
    gray = read_gray(STILLS / "other" / "pyfeat_single_face.jpg")
    face = detector.detect(gray)[0]
    assert 0.15 < mean_ear(predictor.predict(gray, face.box)) < 0.45
