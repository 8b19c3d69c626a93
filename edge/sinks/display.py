"""Frame sinks that show the annotated picture: an OpenCV window or a Linux framebuffer."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge.errors import EdgeError
from edge.images import letterbox
from edge.types import FrameResult


class WindowDisplay:
    """An OpenCV HighGUI window; fullscreen for a kiosk session."""

    name = "display"

    def __init__(self, fullscreen: bool, title: str = "edge-emotion") -> None:
        self.title = title
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
            if fullscreen:
                cv2.setWindowProperty(title, cv2.WND_PROP_FULLSCREEN, cv2.WINDOW_FULLSCREEN)
        except cv2.error:
            # The two wheels both provide cv2: installed side by side, one overwrites the
            # other unpredictably, so swap them.
            mode = "fullscreen" if fullscreen else "window"
            raise EdgeError(f"display.mode {mode} needs OpenCV with GUI support and a desktop "
                            "session: pip uninstall opencv-python-headless && pip install "
                            "opencv-python, and run it from the desktop (DISPLAY set)") from None

    def show(self, result: FrameResult, picture: np.ndarray) -> bool:
        cv2.imshow(self.title, picture)
        return (cv2.waitKey(1) & 0xFF) not in (ord("q"), 27)

    def close(self) -> None:
        cv2.destroyWindow(self.title)


def framebuffer_geometry(device: Path) -> tuple[int, int, int, int]:
    """(width, height, bits per pixel, line length in bytes) from sysfs."""
    sysfs = Path("/sys/class/graphics") / device.name
    try:
        width, height = (int(v) for v in (sysfs / "virtual_size").read_text().split(","))
        bpp = int((sysfs / "bits_per_pixel").read_text())
        stride_file = sysfs / "stride"
        stride = int(stride_file.read_text()) if stride_file.exists() else width * bpp // 8
    except (OSError, ValueError):
        raise EdgeError(f"{device}: no framebuffer geometry in {sysfs}") from None
    return width, height, bpp, stride


class FramebufferDisplay:
    """Writes straight into /dev/fbN: a Pi that boots to a console needs no desktop."""

    name = "display"

    def __init__(self, device: str | Path,
                 geometry: tuple[int, int, int, int] | None = None) -> None:
        self.device = Path(device)
        self.width, self.height, self.bpp, self.stride = geometry or framebuffer_geometry(
            self.device)
        if self.bpp not in (16, 24, 32):
            raise EdgeError(f"{self.device}: {self.bpp} bits per pixel is not supported")
        try:
            self._file = open(self.device, "r+b", buffering=0)  # noqa: SIM115 (kept open)
        except OSError as exc:
            raise EdgeError(f"{self.device}: cannot open framebuffer ({exc.strerror})") from None

    def _convert(self, image: np.ndarray) -> np.ndarray:
        screen = letterbox(image, self.width, self.height)
        if self.bpp == 16:
            return cv2.cvtColor(screen, cv2.COLOR_BGR2BGR565)
        if self.bpp == 32:
            return cv2.cvtColor(screen, cv2.COLOR_BGR2BGRA)
        return screen

    def show(self, result: FrameResult, picture: np.ndarray) -> bool:
        pixels = self._convert(picture)
        row_bytes = pixels.shape[1] * pixels.itemsize * (pixels.shape[2] if pixels.ndim == 3 else 1)
        rows = pixels.reshape(self.height, row_bytes)
        if self.stride != row_bytes:  # the driver pads each line
            padded = np.zeros((self.height, self.stride), np.uint8)
            padded[:, :row_bytes] = rows
            rows = padded
        self._file.seek(0)
        self._file.write(rows.tobytes())
        return True

    def close(self) -> None:
        self._file.close()


def open_display(mode: str, framebuffer: str) -> WindowDisplay | FramebufferDisplay | None:
    if mode == "none":
        return None
    if mode in ("window", "fullscreen"):
        return WindowDisplay(fullscreen=mode == "fullscreen")
    if mode == "framebuffer":
        return FramebufferDisplay(framebuffer)
    raise EdgeError(f"display.mode {mode!r} is not none, window, fullscreen or framebuffer")
