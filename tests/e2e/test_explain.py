"""edge-convert explain on a tiny model trained here: Grad-CAM and occlusion follow the
evidence, the command writes its figures, and bad input is one line.

Class 0 (Angry) of the training faces is a bright square in a random corner of a
noisy face; the other classes are conftest's horizontal bands. A model that learned
class 0 must look at the square wherever it is, so its maps must move with it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from convert import explain
from convert.explain_report import OCC_FLOAT, OCC_INT8, Settings, load
from edge.model_contract import FER2013_LABELS
from tests.conftest import synthetic_faces
from tests.e2e.test_convert import TINY, assert_ok, assert_one_line_error, run_cli

pytestmark = pytest.mark.slow  # trains and converts a model
SIDE = explain.SIDE
SQUARE = 12
CORNERS = ("top_left", "top_right", "bottom_left", "bottom_right")
PER_CLASS = 16


def square_face(rng: np.random.Generator, corner: str) -> np.ndarray:
    face = rng.integers(0, 90, (SIDE, SIDE))
    r = 0 if corner.startswith("top") else SIDE - SQUARE
    c = 0 if corner.endswith("left") else SIDE - SQUARE
    face[r:r + SQUARE, c:c + SQUARE] = rng.integers(200, 256, (SQUARE, SQUARE))
    return face.astype(np.uint8)


def corner_faces(per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Class 0: a square in a corner (the corners in turn); classes 1..6: bands."""
    x, y = synthetic_faces(per_class, seed=seed)
    rng = np.random.default_rng(seed + 100)
    zero = np.flatnonzero(y == 0)
    for k, i in enumerate(zero):
        x[i] = square_face(rng, CORNERS[k % 4])
    return x, y


@dataclass(frozen=True)
class Tiny:
    keras: Path
    tflite: Path
    data: Path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Tiny:
    work = tmp_path_factory.mktemp("explain")
    train, test = work / "train.npz", work / "publictest.npz"
    for path, (x, y) in ((train, corner_faces(PER_CLASS, seed=1)),
                         (test, corner_faces(4, seed=2))):
        np.savez(path, x=x, y=y)
    assert_ok(run_cli("train", "--data", train, "--out", work / "run", *TINY,
                      "--rotation", "0", "--zoom", "0", "--shift", "0"))
    keras, tflite = work / "run" / "best.keras", work / "tiny.tflite"
    assert_ok(run_cli("quantize", keras, "--data", train, "--out", tflite,
                      "--calibration-size", 7 * PER_CLASS))
    return Tiny(keras, tflite, test)


def two_corners() -> np.ndarray:
    """The same class-0 face with its square top left, then bottom right."""
    rng = np.random.default_rng(7)
    first = square_face(rng, "top_left")
    second = first.copy()
    second[:SQUARE, :SQUARE] = np.random.default_rng(8).integers(0, 90, (SQUARE, SQUARE))
    second[-SQUARE:, -SQUARE:] = first[:SQUARE, :SQUARE]
    return np.stack([first, second])


def assert_follows_the_square(maps: np.ndarray, ratio: float) -> None:
    """The map of each face peaks in the square's quadrant and holds more there than in
    the opposite one (by `ratio`); from one face to the other it moves with the square."""
    assert maps.shape == (2, SIDE, SIDE)
    assert np.isfinite(maps.sum()) and np.maximum(maps, 0).sum() > 0
    half = SIDE // 2
    top_left, bottom_right = (slice(0, half),) * 2, (slice(half, SIDE),) * 2
    for face, inside, outside in ((0, top_left, bottom_right), (1, bottom_right, top_left)):
        positive = np.maximum(maps[face], 0)
        assert positive[inside].sum() > ratio * positive[outside].sum()
        peak = np.unravel_index(positive.argmax(), positive.shape)
        assert all(part.start <= p < part.stop for p, part in zip(peak, inside, strict=True))
    moved = maps[1] - maps[0]
    assert moved[bottom_right].sum() > 0 > moved[top_left].sum()


def test_the_tiny_model_learned_the_square(tiny: Tiny) -> None:
    loaded = load(tiny.keras, tiny.tflite, Settings())
    faces = two_corners()
    assert (loaded.float_predict(faces).argmax(axis=1) == 0).all()
    assert (loaded.classifier.predict(faces).argmax(axis=1) == 0).all()


def test_gradcam_follows_the_square(tiny: Tiny) -> None:
    loaded = load(tiny.keras, None, Settings())
    gradcam = loaded.gradcam
    assert gradcam.layer == "head_relu" and gradcam.side == 12  # 2 modules: 48 -> 12
    maps = gradcam.maps(two_corners(), np.array([0, 0]))
    assert maps.min() >= 0  # Grad-CAM keeps the positive part
    # At the last layer a tiny network's Grad-CAM has a broad floor (its receptive field
    # is the whole face), so the contrast is milder than occlusion's.
    assert_follows_the_square(maps, ratio=1.1)


def test_occlusion_follows_the_square_in_float_and_int8(tiny: Tiny) -> None:
    loaded = load(tiny.keras, tiny.tflite, Settings())
    occlusion = explain.Occlusion(8, 4)
    floats = occlusion.maps(loaded.float_predict, two_corners(), np.array([0, 0]))
    int8 = occlusion.maps(loaded.classifier.predict, two_corners(), np.array([0, 0]))
    assert_follows_the_square(floats, ratio=2)
    assert_follows_the_square(int8, ratio=2)
    assert (explain.correlation(floats, int8) > 0.8).all()  # quantization kept the attention


def test_explain_writes_figures_and_summary(tiny: Tiny, tmp_path: Path) -> None:
    out = tmp_path / "explain"
    result = assert_ok(run_cli("explain", tiny.keras, "--tflite", tiny.tflite, "--data",
                               tiny.data, "--out", out, "--per-class", "2"))
    assert "Grad-CAM at head_relu (12x12)" in result.output
    summary = json.loads((out / "explain.json").read_text())
    assert summary["command"].startswith(f"edge-convert explain {tiny.keras} --data ")
    assert f"--tflite {tiny.tflite}" in summary["command"]
    assert summary["models"]["int8_converted_from_float"] is True
    assert summary["methods"]["gradcam"]["layer"] == "head_relu"
    assert summary["methods"]["occlusion"]["positions"] == 121
    assert summary["means"]["faces_occlusion"] == 7 * 4 and not summary["means"]["subsampled"]
    with np.load(out / "mean_maps.npz") as z:
        for method in ("gradcam_float", OCC_FLOAT, OCC_INT8):
            assert z[method].shape == (7, SIDE, SIDE) and np.isfinite(z[method]).all()
    for label, name in summary["samples"]["images"].items():
        assert label in FER2013_LABELS
        image = cv2.imread(str(out / name))
        assert image is not None and image.shape[1] > 400
    assert cv2.imread(str(out / "mean_maps.png")) is not None
    agreement = summary["agreement"]["occlusion_float_vs_int8"]
    assert agreement["median_correlation"] > 0.5
    shares = summary["regions"]["shares"][OCC_INT8]["Angry"]
    assert set(shares) == {"eyes_brows", "mouth", "border"}
    # Class 0's evidence is the corner square: on the border and outside the face.
    assert shares["border"] > summary["regions"]["area_share"]["border"]


def test_explain_int8_alone_has_no_gradcam(tiny: Tiny, tmp_path: Path) -> None:
    out = tmp_path / "int8"
    result = assert_ok(run_cli("explain", tiny.tflite, "--data", tiny.data, "--out", out,
                               "--per-class", "1", "--occlusion-faces", "14"))
    assert "no Grad-CAM" in result.output
    summary = json.loads((out / "explain.json").read_text())
    assert summary["methods"]["gradcam"] is None and summary["accuracy_of"] == "int8"
    assert summary["means"]["faces_occlusion"] == 14 and summary["means"]["subsampled"]
    with np.load(out / "mean_maps.npz") as z:
        assert OCC_INT8 in z.files and "gradcam_float" not in z.files


def test_explain_bad_input_is_one_line(tiny: Tiny, tmp_path: Path) -> None:
    data, out = tiny.data, tmp_path / "out"
    assert_one_line_error(run_cli("explain", tmp_path / "none.keras", "--data", data, "--out",
                                  out), "no such model file")
    other = tmp_path / "model.onnx"
    other.write_bytes(b"x")
    assert_one_line_error(run_cli("explain", other, "--data", data, "--out", out), ".tflite")
    assert_one_line_error(run_cli("explain", tiny.tflite, "--tflite", tiny.tflite, "--data",
                                  data, "--out", out), "--tflite goes with a .keras")
    assert_one_line_error(run_cli("explain", tiny.tflite, "--data", data, "--out", out,
                                  "--patch", "30"), "--patch")
    assert_one_line_error(run_cli("explain", tiny.tflite, "--data", data, "--out", out,
                                  "--stride", "9"), "--stride")
    assert_one_line_error(run_cli("explain", tiny.tflite, "--data", tmp_path / "no.npz",
                                  "--out", out), "no such file")
    a_file = tmp_path / "file"
    a_file.write_text("")
    assert_one_line_error(run_cli("explain", tiny.tflite, "--data", data, "--out", a_file),
                          "not a folder")
    assert_one_line_error(run_cli("explain", tiny.keras, "--data", data, "--out", out,
                                  "--layer", "nope"), "no layer 'nope'", "head_relu")
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a model")
    junk.with_suffix(".json").write_text(tiny.tflite.with_suffix(".json").read_text())
    assert_one_line_error(run_cli("explain", junk, "--data", data, "--out", out),
                          "not a loadable TFLite model")
    junk_keras = tmp_path / "junk.keras"
    junk_keras.write_bytes(b"not a zip")
    assert_one_line_error(run_cli("explain", junk_keras, "--data", data, "--out", out),
                          "not a Keras model")
    assert not out.exists()  # nothing half-written after a refusal


def test_card_links_the_mean_maps(tiny: Tiny, tmp_path: Path) -> None:
    explained = tmp_path / "docs" / "explain"
    assert_ok(run_cli("explain", tiny.tflite, "--data", tiny.data, "--out", explained,
                      "--per-class", "1"))
    report = tmp_path / "report.json"
    assert_ok(run_cli("evaluate", tiny.tflite, "--data", tiny.data, "--report", report,
                      "--latency-faces", 5))
    card = tmp_path / "models" / "MODEL.md"
    card.parent.mkdir()
    assert_ok(run_cli("card", "--run", tiny.keras.parent, "--model", tiny.tflite, "--report",
                      report, "--quantize-command", "q", "--evaluate-command", "e",
                      "--explain", explained / "explain.json", "--out", card))
    text = card.read_text()
    section = text[text.index("## Where the model looks"):text.index("## Limits")]
    assert "![mean maps per class](../docs/explain/mean_maps.png)" in section
    assert (card.parent / "../docs/explain/mean_maps.png").exists()
    assert "| Angry |" in section and "| *share of the area* |" in section
    assert "Grad-CAM needs the float checkpoint" in section
    assert "edge-convert explain" in section  # the command that drew them
    # With the float model the Grad-CAM maps exist, and the card does not ask for them.
    assert_ok(run_cli("explain", tiny.keras, "--tflite", tiny.tflite, "--data", tiny.data,
                      "--out", explained, "--per-class", "1"))
    assert_ok(run_cli("card", "--run", tiny.keras.parent, "--model", tiny.tflite, "--report",
                      report, "--quantize-command", "q", "--evaluate-command", "e",
                      "--explain", explained / "explain.json", "--out", card))
    assert "Grad-CAM needs" not in card.read_text()
