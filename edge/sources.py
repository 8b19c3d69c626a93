"""Frame sources: files, USB/V4L2 cameras, network streams and the Pi camera.

Two behaviours, chosen by the kind of source:

* Files are read in order, every frame, on the caller's thread: deterministic.
* Live sources capture on their own thread and keep only the newest frame, so a
  slow device never falls behind the camera. A camera that fails to open or
  goes away is retried with exponential backoff; problems are reported through
  `drain_problems()` for the event log, and the run goes on.

Hardware sits behind the small `Camera` protocol, so tests feed recorded frames
through exactly the code a real camera uses.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from edge.errors import MissingModule, SourceError
from edge.images import MIN_SIDE, frame_is_usable, to_gray
from edge.types import Frame

# OpenCV's own warnings (a missing device, a backend probe) would interleave with
# our one-line errors and the journal; we report failures ourselves.
with contextlib.suppress(AttributeError):
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


class Problem(str):
    """A message for the journal and the event log, with its level and a rate-limit key.

    A str, so a problem reads as its message; `key` groups problems the runner rate-
    limits together ("lost", "retry", "back"): a reconnect is never hidden behind the
    failed retries before it.
    """

    level: int
    key: str

    def __new__(cls, text: str, level: int = logging.ERROR, key: str = "") -> Problem:
        problem = super().__new__(cls, text)
        problem.level, problem.key = level, key
        return problem


class Source(Protocol):
    live: bool
    description: str

    def open(self) -> None: ...
    def read(self, timeout: float = 1.0) -> Frame | None: ...
    @property
    def finished(self) -> bool: ...
    def drain_problems(self) -> list[Problem]: ...
    def close(self) -> None: ...


class Camera(Protocol):
    """One physical capture device. `grab` returns (gray, bgr or None) or None on failure."""

    def open(self) -> None: ...
    def grab(self) -> tuple[np.ndarray, np.ndarray | None] | None: ...
    def close(self) -> None: ...


class OpenCVCamera:
    """USB/V4L2 camera (index or /dev/video*) or a network stream, through OpenCV."""

    def __init__(self, target: str, width: int, height: int, fps: float, keep_color: bool,
                 opener: Callable[..., Any] = cv2.VideoCapture) -> None:
        self.target = target
        self.width, self.height, self.fps = width, height, fps
        self.keep_color = keep_color
        self._opener = opener
        self._capture: Any = None

    def device_target(self) -> Any:
        """Index for V4L2 ("0", "/dev/video0", a /dev/v4l/by-id link), else the URL."""
        if self.target.isdigit():
            return int(self.target)
        if self.target.startswith("/dev/"):
            real = Path(self.target).resolve()
            if not real.exists():
                raise SourceError(f"camera {self.target!r} could not be opened: no such device")
            if real.name.startswith("video") and real.name[5:].isdigit():
                return int(real.name[5:])  # OpenCV's V4L2 backend opens indices, not paths
            return str(real)
        return self.target

    def open(self) -> None:
        target = self.device_target()
        is_device = isinstance(target, int) or str(target).startswith("/dev/")
        capture = (self._opener(target, cv2.CAP_V4L2) if is_device and hasattr(cv2, "CAP_V4L2")
                   else self._opener(target))
        if not capture.isOpened():
            capture.release()
            if is_stream_url(self.target):
                from edge.stream_probe import stream_failure_reason

                raise SourceError(f"stream {public_name(self.target)} could not be opened: "
                                  f"{stream_failure_reason(self.target)}")
            raise SourceError(f"camera {self.target!r} could not be opened")
        if is_device:
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
            capture.set(cv2.CAP_PROP_FPS, self.fps)
            capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # newest frame, not a stale queue
        self._capture = capture

    def grab(self) -> tuple[np.ndarray, np.ndarray | None] | None:
        ok, image = self._capture.read()
        if not ok or not frame_is_usable(image):
            return None
        return to_gray(image), (image if self.keep_color and image.ndim == 3 else None)

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


class PiCamera:
    """Raspberry Pi camera through picamera2 (imported only when used).

    Asks for YUV420 and takes the Y plane as the grayscale frame: no colour
    conversion at all, which is most of a Pi Zero's per-frame budget at 640x480.
    Video modes deliver limited-range luma (16..235); one table lookup stretches
    it to the full range the model was trained on.
    """

    LIMITED_TO_FULL = np.clip((np.arange(256) - 16) * 255.0 / 219.0 + 0.5, 0, 255).astype(np.uint8)

    def __init__(self, width: int, height: int, fps: float, keep_color: bool) -> None:
        self.width, self.height, self.fps = width, height, fps
        self.keep_color = keep_color
        self._camera: Any = None

    def open(self) -> None:
        try:
            from picamera2 import Picamera2
        except ImportError:
            raise MissingModule(
                "picamera2 is not installed: on Raspberry Pi OS `sudo apt install "
                "python3-picamera2`, in a venv made with --system-site-packages") from None
        try:
            camera = Picamera2()
            config = camera.create_video_configuration(
                main={"size": (self.width, self.height), "format": "YUV420"},
                controls={"FrameRate": self.fps})
            camera.configure(config)
            camera.start()
        except Exception as exc:  # libcamera raises RuntimeError/IndexError when absent
            raise SourceError(f"Pi camera could not be opened ({exc})") from None
        self._camera = camera

    def grab(self) -> tuple[np.ndarray, np.ndarray | None] | None:
        try:
            yuv = self._camera.capture_array("main")
        except Exception:
            return None
        if not frame_is_usable(yuv):
            return None
        gray = cv2.LUT(yuv[: self.height, : self.width], self.LIMITED_TO_FULL)
        bgr = cv2.cvtColor(yuv, cv2.COLOR_YUV2BGR_I420) if self.keep_color else None
        return gray, bgr

    def close(self) -> None:
        if self._camera is not None:
            with contextlib.suppress(Exception):
                self._camera.stop()
                self._camera.close()
            self._camera = None


class LiveSource:
    """Captures on a thread, keeps the newest frame, reconnects with backoff."""

    live = True

    def __init__(self, camera: Camera, description: str, retry_initial: float = 0.5,
                 retry_max: float = 30.0, failures_before_reconnect: int = 10) -> None:
        self.camera = camera
        self.description = description
        self.retry_initial, self.retry_max = retry_initial, retry_max
        self.failures_before_reconnect = failures_before_reconnect
        self._lock = threading.Condition()
        self._latest: tuple[np.ndarray, np.ndarray | None, float] | None = None
        self._index = 0
        self._problems: list[Problem] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lost_at: float | None = None
        self.connected = False

    def open(self) -> None:
        # The first open is synchronous so a camera that does not exist is a
        # one-line error at start, not an endless retry loop.
        self.camera.open()
        self.connected = True
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)
        self._thread.start()

    @property
    def finished(self) -> bool:
        return False

    def _problem(self, text: str, level: int = logging.ERROR, key: str = "") -> None:
        with self._lock:
            self._problems.append(Problem(text, level, key))

    def drain_problems(self) -> list[Problem]:
        with self._lock:
            problems, self._problems = self._problems, []
        return problems

    def _reconnect(self, delay: float) -> float:
        """Close, then open again with exponential backoff; returns the next delay."""
        self.camera.close()
        self.connected = False
        while not self._stop.is_set():
            try:
                self.camera.open()
            except SourceError as exc:
                self._problem(f"{self.description}: reconnect failed ({exc}); "
                              f"retrying in {delay:.1f}s", key="retry")
                self._stop.wait(delay)
                delay = min(delay * 2, self.retry_max)
                continue
            self.connected = True
            # Good news: a warning in the journal (the outage happened), not an error.
            outage = time.monotonic() - (self._lost_at or time.monotonic())
            self._lost_at = None
            self._problem(f"{self.description}: reconnected after {outage:.1f}s",
                          logging.WARNING, key="back")
            break
        return delay

    def _run(self) -> None:
        failures = 0
        # The backoff survives a reconnect that opens but gives no frame (a stream
        # that accepts the connection, then fails): only a real frame resets it.
        delay = self.retry_initial
        while not self._stop.is_set():
            grabbed = self.camera.grab()
            if grabbed is None:
                failures += 1
                if failures >= self.failures_before_reconnect:
                    if self._lost_at is None:
                        self._lost_at = time.monotonic()
                    with self._lock:  # one step: no pre-outage frame after the outage line
                        self._latest = None
                        self._problems.append(Problem(
                            f"{self.description}: no frames ({failures} failed reads); "
                            f"reconnecting in {delay:.1f}s", logging.ERROR, "lost"))
                    self._stop.wait(delay)
                    delay = self._reconnect(min(delay * 2, self.retry_max))
                    failures = 0
                else:
                    self._stop.wait(0.01)
                continue
            failures = 0
            delay = self.retry_initial
            with self._lock:
                self._latest = (grabbed[0], grabbed[1], time.monotonic())
                self._lock.notify_all()

    def read(self, timeout: float = 1.0) -> Frame | None:
        """The newest frame not yet read, or None if none arrived within `timeout`."""
        with self._lock:
            if self._latest is None and not self._lock.wait_for(
                    lambda: self._latest is not None, timeout=timeout):
                return None
            gray, bgr, captured = self._latest  # type: ignore[misc]
            self._latest = None
            index = self._index
            self._index += 1
        return Frame(gray=gray, index=index, timestamp=captured, bgr=bgr)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        self.camera.close()


class FileSource:
    """A video file or still image, every frame in order, optionally looped or paced."""

    live = False

    def __init__(self, path: str, keep_color: bool, loop: bool = False,
                 realtime: bool = False) -> None:
        self.path = path
        self.description = path
        self.keep_color = keep_color
        self.loop, self.realtime = loop, realtime
        self._capture: Any = None
        self._index = 0
        self._offset = 0.0  # media time carried across loops so timestamps keep rising
        self._last_ts = 0.0
        self._fps = 30.0
        self._done = False
        self._problems: list[Problem] = []
        self._started: float | None = None
        self._jpeg_gray = False

    def open(self) -> None:
        if not Path(self.path).exists():
            raise SourceError(f"{self.path}: no such file")
        self._capture = cv2.VideoCapture(self.path)
        if not self._capture.isOpened():
            raise SourceError(f"{self.path}: not a readable video or image")
        # Every frame of a file has one size: a file of tiny frames is an error now, not
        # a run of skipped frames that ends in "0 frames".
        width = int(self._capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(self._capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if 0 < min(width, height) < MIN_SIDE:
            self.close()
            raise SourceError(f"{self.path}: frames are {width}x{height}, under the "
                              f"{MIN_SIDE}x{MIN_SIDE} minimum")
        fps = self._capture.get(cv2.CAP_PROP_FPS)
        self._fps = fps if fps and 0.5 <= fps <= 240 else 30.0
        self._started = None  # --realtime: the clock starts at the first read
        # Motion-JPEG without colour wanted: take each frame's JPEG bytes and decode
        # them straight to gray, half the time of BGR decode + cvtColor.
        mjpeg = int(self._capture.get(cv2.CAP_PROP_FOURCC)) == cv2.VideoWriter_fourcc(*"MJPG")
        self._jpeg_gray = (mjpeg and not self.keep_color
                           and bool(self._capture.set(cv2.CAP_PROP_FORMAT, -1)))

    @property
    def fps(self) -> float:
        return self._fps

    @property
    def finished(self) -> bool:
        return self._done

    def drain_problems(self) -> list[Problem]:
        problems, self._problems = self._problems, []
        return problems

    def read(self, timeout: float = 1.0) -> Frame | None:
        while not self._done:
            ok, image = self._capture.read()
            if not ok:
                if self.loop and self._index > 0:
                    self._offset = self._last_ts + 1.0 / self._fps
                    self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                    ok, image = self._capture.read()
                if not ok:
                    self._done = True
                    return None
            if self._jpeg_gray:
                image = cv2.imdecode(image, cv2.IMREAD_GRAYSCALE)
            if not frame_is_usable(image):
                self._problems.append(Problem(f"{self.path}: unusable frame skipped"))
                continue
            media_ts = self._capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            timestamp = self._offset + media_ts
            if timestamp <= self._last_ts and self._index > 0:
                timestamp = self._last_ts + 1.0 / self._fps  # containers without timing
            self._last_ts = timestamp
            if self.realtime:
                if self._started is None:  # not at open: the models load after it
                    self._started = time.monotonic() - timestamp
                wait = self._started + timestamp - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
            frame = Frame(gray=to_gray(image), index=self._index, timestamp=timestamp,
                          bgr=image if self.keep_color and image.ndim == 3 else None)
            self._index += 1
            return frame
        return None

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


def is_stream_url(target: str) -> bool:
    return "://" in target


# Query keys that carry a secret in cameras' stream URLs (Axis, Hikvision, Reolink, ...).
SECRET_QUERY_KEYS = frozenset({"password", "passwd", "pwd", "pass", "token", "access_token",
                               "key", "apikey", "api_key", "secret", "auth", "sig",
                               "signature"})


def public_name(target: str) -> str:
    """`target` as it may be logged: a stream URL's password and secret query values
    become `***` (`rtsp://admin:***@cam/1`). Logs, events and MQTT carry the source's
    name; the credentials stay in the config file, readable by its owner only."""
    if not is_stream_url(target):
        return target
    try:
        parts = urllib.parse.urlsplit(target)
    except ValueError:  # e.g. an unclosed [IPv6 address: say nothing but the scheme
        return target.split("://", 1)[0] + "://***"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user, has_password, _ = userinfo.partition(":")
        netloc = f"{user}:***@{host}" if has_password else f"{userinfo}@{host}"
    query = "&".join(
        f"{key}=***" if key.lower() in SECRET_QUERY_KEYS and sep else f"{key}{sep}{value}"
        for key, sep, value in (item.partition("=") for item in parts.query.split("&") if item))
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc, query=query))


def is_live(target: str) -> bool:
    """Cameras and streams (retried when absent), as opposed to files."""
    return (target == "picamera" or target.isdigit() or target.startswith("/dev/")
            or is_stream_url(target))


def open_source(target: str, width: int = 640, height: int = 480, fps: float = 30.0,
                keep_color: bool = False, loop: bool = False, realtime: bool = False,
                retry_initial: float = 0.5, retry_max: float = 30.0) -> Source:
    """Build (not yet open) the source named by `target`."""
    if target == "picamera":
        return LiveSource(PiCamera(width, height, fps, keep_color), "Pi camera",
                          retry_initial, retry_max)
    if is_live(target):
        name = f"stream {public_name(target)}" if is_stream_url(target) else f"camera {target}"
        return LiveSource(OpenCVCamera(target, width, height, fps, keep_color), name,
                          retry_initial, retry_max)
    return FileSource(target, keep_color=keep_color, loop=loop, realtime=realtime)
