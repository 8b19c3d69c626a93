"""Drawing, the framebuffer display, and privacy: no image written unless asked."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.errors import EdgeError
from edge.model_contract import FER2013_LABELS
from edge.sinks.annotate import annotate
from edge.sinks.display import FramebufferDisplay, WindowDisplay
from edge.types import Box, Face, Frame, FrameResult

REPO = Path(__file__).resolve().parents[2]


def sample_result() -> FrameResult:
    gray = np.full((480, 640), 90, np.uint8)
    probs = np.array([0.05, 0.0, 0.05, 0.7, 0.05, 0.05, 0.1], np.float32)
    face = Face(box=Box(200, 120, 160, 160), score=1.0, track_id=3, probabilities=probs,
                emotion="Happy", blinks=2)
    return FrameResult(frame=Frame(gray=gray, index=0, timestamp=0.0), faces=[face])


def test_annotate_draws_box_and_bars() -> None:
    picture = annotate(sample_result(), FER2013_LABELS, total_blinks=2, fps=29.5)
    assert picture.shape == (480, 640, 3)
    assert (picture[120, 200:360] != 90).any()  # the box's top edge
    assert (picture[125:220, 380:520] != 90).any()  # the probability bars beside it


@pytest.mark.parametrize("bpp", [16, 32])
def test_framebuffer_gets_a_letterboxed_frame(tmp_path: Path, bpp: int) -> None:
    device = tmp_path / "fb0"
    width, height = 800, 480
    stride = width * bpp // 8 + 64  # drivers may pad lines
    device.write_bytes(bytes(stride * height))
    display = FramebufferDisplay(device, geometry=(width, height, bpp, stride))
    image = np.zeros((480, 640, 3), np.uint8)
    image[:, :, 2] = 255  # red
    assert display.show(sample_result(), image)
    display.close()
    raw = np.frombuffer(device.read_bytes(), np.uint8).reshape(height, stride)
    row = raw[240, : width * bpp // 8]
    if bpp == 32:
        pixels = row.reshape(width, 4)
        assert tuple(pixels[400][:3]) == (0, 0, 255)  # BGRA red in the middle
        assert tuple(pixels[10][:3]) == (0, 0, 0)  # black letterbox bar at the side
    else:
        pixels = row.view(np.uint16)
        assert pixels[400] == 0xF800 and pixels[10] == 0  # RGB565 red


def test_missing_framebuffer_is_an_edge_error(tmp_path: Path) -> None:
    with pytest.raises(EdgeError, match="cannot open framebuffer"):
        FramebufferDisplay(tmp_path / "fb9", geometry=(640, 480, 32, 2560))


def test_window_without_gui_support_is_an_edge_error() -> None:
    if "GUI" in cv2.getBuildInformation() and "NONE" not in cv2.getBuildInformation():
        pytest.skip("this OpenCV has a GUI backend")
    with pytest.raises(EdgeError, match="GUI support"):
        WindowDisplay(fullscreen=False)


