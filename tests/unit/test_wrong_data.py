"""Data that used to be silently wrong: tiny frames, float .npz, a text file named .npz,
a folder given as the model. Each is now one clear line and a non-zero exit."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from convert.cli import main as convert_main
from convert.data import DataError, load_faces
from edge.cli import main as edge_main
from edge.errors import ModelError, SourceError
from edge.sources import FileSource
from tests.conftest import synthetic_faces

pytestmark = pytest.mark.usefixtures("keep_logging")  # tests/unit/conftest.py


def write_video(path: Path, width: int, height: int, frames: int = 5) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (width, height))
    for _ in range(frames):
        writer.write(np.zeros((height, width, 3), np.uint8))
    writer.release()
    return path


def one_line(result, *needles: str, code: int = 2, prog: str = "edge-run") -> str:
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# --- edge-run -------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(1, 1), (8, 12)])
def test_frames_under_16_px_are_an_error_at_open(tmp_path: Path, size: tuple[int, int]) -> None:
    video = write_video(tmp_path / "tiny.avi", *size)
    with pytest.raises(SourceError, match=f"{size[0]}x{size[1]}.*16x16"):
        FileSource(str(video), keep_color=False).open()
    run = one_line(CliRunner().invoke(edge_main, ["run", "--input", str(video), "--log", ""]))
    check = one_line(CliRunner().invoke(edge_main, ["check", "--input", str(video), "--log", ""]))
    assert run == check


def test_tiny_still_image_is_an_error(tmp_path: Path) -> None:
    image = tmp_path / "dot.png"
    cv2.imwrite(str(image), np.zeros((1, 1), np.uint8))
    one_line(CliRunner().invoke(edge_main, ["check", "--input", str(image)]), "1x1")


def test_a_file_with_no_frame_is_not_an_empty_success(tmp_path: Path) -> None:
    video = write_video(tmp_path / "empty.avi", 64, 64, frames=0)
    log = tmp_path / "events.jsonl"
    run = CliRunner().invoke(edge_main, ["run", "--input", str(video), "--log", str(log)])
    one_line(run, "no usable frame")
    assert log.read_text().splitlines()[-1].startswith('{"event":"stop"')  # still logged
    check = CliRunner().invoke(edge_main, ["check", "--input", str(video), "--log", ""])
    line = one_line(check, "no usable frame")
    assert "5 s" not in line  # a file that ended is not a slow camera


def test_model_folder_says_it_is_a_folder(tmp_path: Path) -> None:
    line = one_line(CliRunner().invoke(edge_main, ["check", "--model", str(tmp_path)]))
    assert "is a folder" in line and "sidecar" not in line


# --- edge-convert: one loader for train, quantize and evaluate ------------------------


def npz(path: Path, x: np.ndarray, y: np.ndarray) -> Path:
    np.savez(path, x=x, y=y)
    return path


@pytest.fixture(scope="module")
def faces() -> tuple[np.ndarray, np.ndarray]:
    return synthetic_faces(2)


@pytest.mark.parametrize(("name", "change", "needle"), [
    ("unit_float", lambda x: x.astype(np.float32) / 255.0, "[0, 1]"),
    ("fractional", lambda x: x.astype(np.float64) + 0.5, "not whole numbers"),
    ("negative", lambda x: x.astype(np.int16) - 128, "outside 0..255"),
    ("too_big", lambda x: x.astype(np.int32) * 4, "outside 0..255"),
    ("boolean", lambda x: x > 128, "bool"),
])
def test_npz_pixels_must_be_0_to_255(tmp_path: Path, faces, name: str, change, needle: str
                                     ) -> None:
    x, y = faces
    path = npz(tmp_path / f"{name}.npz", change(x), y)
    with pytest.raises(DataError, match="'x'") as info:
        load_faces(path)
    assert needle in str(info.value)
    for command in (["train", "--data", path, "--out", tmp_path / "run"],
                    ["quantize", tmp_path / "m.keras", "--data", path, "--out",
                     tmp_path / "m.tflite"],
                    ["evaluate", tmp_path / "m.tflite", "--data", path]):
        one_line(CliRunner().invoke(convert_main, [str(a) for a in command]), needle,
                 prog="edge-convert")


def test_npz_whole_float_pixels_and_labels_are_accepted(tmp_path: Path, faces) -> None:
    x, y = faces
    loaded = load_faces(npz(tmp_path / "f.npz", x.astype(np.float32), y.astype(np.float64)))
    assert np.array_equal(loaded.x, x) and np.array_equal(loaded.y, y)


def test_npz_fractional_labels(tmp_path: Path, faces) -> None:
    x, y = faces
    with pytest.raises(DataError, match=r"'y'.*whole"):
        load_faces(npz(tmp_path / "f.npz", x, y + 0.3))


@pytest.mark.parametrize("content", [b"emotion,pixels\n0,1 2 3\n", b"\x93NUMPY not really"])
def test_not_an_npz(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "fer.npz"
    path.write_bytes(content)
    with pytest.raises(DataError, match=r"not a valid \.npz") as info:
        load_faces(path)
    assert "pickle" not in str(info.value)


def test_npz_with_object_arrays_never_suggests_allow_pickle(tmp_path: Path, faces) -> None:
    x, y = faces
    path = tmp_path / "objects.npz"
    np.savez(path, x=np.array(list(x), dtype=object), y=y)
    with pytest.raises(DataError) as info:
        load_faces(path)
    assert "allow_pickle" not in str(info.value) and "objects" in str(info.value)


def test_model_error_names_a_folder_in_the_classifier(tmp_path: Path) -> None:
    from edge.classify import EmotionClassifier

    with pytest.raises(ModelError, match="is a folder"):
        EmotionClassifier(tmp_path)
