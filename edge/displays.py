"""Where the annotated picture goes: nowhere, an OpenCV window, or a Linux framebuffer."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from edge.errors import EdgeError


class Display(Protocol):
    def show(self, image: np.ndarray) -> bool:
        """Show a BGR picture; False when the user closed the display (quit)."""
        ...

    def close(self) -> None: ...


class WindowDisplay:
    """An OpenCV HighGUI window; fullscreen for a kiosk session."""

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

    def show(self, image: np.ndarray) -> bool:
        cv2.imshow(self.title, image)
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
        # Letterbox into the screen keeping the aspect ratio.
        h, w = image.shape[:2]
        scale = min(self.width / w, self.height / h)
        size = (max(1, int(w * scale)), max(1, int(h * scale)))
        resized = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        screen = np.zeros((self.height, self.width, 3), np.uint8)
        top, left = (self.height - size[1]) // 2, (self.width - size[0]) // 2
        screen[top:top + size[1], left:left + size[0]] = resized
        if self.bpp == 16:
            return cv2.cvtColor(screen, cv2.COLOR_BGR2BGR565)
        if self.bpp == 32:
            return cv2.cvtColor(screen, cv2.COLOR_BGR2BGRA)
        return screen

    def show(self, image: np.ndarray) -> bool:
        pixels = self._convert(image)
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


def open_display(mode: str, framebuffer: str) -> Display | None:
    if mode == "none":
        return None
    if mode in ("window", "fullscreen"):
        return WindowDisplay(fullscreen=mode == "fullscreen")
    if mode == "framebuffer":
        return FramebufferDisplay(framebuffer)
    raise EdgeError(f"display.mode {mode!r} is not none, window, fullscreen or framebuffer")
