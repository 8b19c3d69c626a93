"""Sources: files in order, live capture with newest-frame and reconnect, the Pi camera.

Live sources are fed recorded frames from the embedded clip through the real
capture code: a fake `cv2.VideoCapture` and a fake `picamera2` module with the
same API as the real ones.
"""

from __future__ import annotations

import itertools
import sys
import threading
import time
import types
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.config import DEFAULT_CLIP
from edge.errors import MissingModule, SourceError
from edge.sources import FileSource, LiveSource, OpenCVCamera, PiCamera, open_source


def recorded_frames(n: int = 20) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(DEFAULT_CLIP))
    frames = []
    while len(frames) < n:
        ok, image = capture.read()
        assert ok
        frames.append(image)
    capture.release()
    return frames


class RecordedCapture:
    """cv2.VideoCapture look-alike: plays frames, can fail and be 'unplugged'."""

    def __init__(self, frames: list[np.ndarray], schedule: dict) -> None:
        self.frames, self.schedule = frames, schedule
        self.position = 0
        self.opened = not schedule.get("absent", False)
        self.settings: dict[int, float] = {}

    def isOpened(self) -> bool:
        return self.opened

    def set(self, prop: int, value: float) -> bool:
        self.settings[prop] = value
        return True

    def read(self) -> tuple[bool, np.ndarray | None]:
        self.schedule["reads"] = self.schedule.get("reads", 0) + 1
        if self.schedule.get("unplugged"):
            return False, None
        if self.schedule.get("odd_frame_at") == self.position:
            self.position += 1
            return True, np.zeros((0, 0, 3), np.uint8)  # a glitching driver
        image = self.frames[self.position % len(self.frames)]
        self.position += 1
        time.sleep(0.002)
        return True, image

    def release(self) -> None:
        self.opened = False


def make_opener(frames: list[np.ndarray], schedule: dict):
    def opener(target, *args):
        schedule["opens"] = schedule.get("opens", 0) + 1
        if schedule.get("unplugged") and schedule.get("refuse_open_while_unplugged", True):
            return RecordedCapture(frames, {"absent": True})
        return RecordedCapture(frames, schedule)
    return opener


def test_file_source_reads_every_frame_in_order_with_media_time() -> None:
    source = FileSource(str(DEFAULT_CLIP), keep_color=False)
    source.open()
    frames = []
    while (frame := source.read()) is not None:
        frames.append(frame)
    source.close()
    assert len(frames) == 72 and source.finished
    assert [f.index for f in frames] == list(range(72))
    assert frames[0].gray.ndim == 2 and frames[0].bgr is None
    assert np.allclose(np.diff([f.timestamp for f in frames]), 1 / 30, atol=1e-3)


def test_looped_file_keeps_time_rising() -> None:
    source = FileSource(str(DEFAULT_CLIP), keep_color=False, loop=True)
    source.open()
    stamps = [source.read().timestamp for _ in range(150)]
    source.close()
    assert all(b > a for a, b in itertools.pairwise(stamps))


def test_realtime_file_is_paced_from_its_first_read() -> None:
    """--realtime plays a file like a camera from the first frame read: the models load
    after the source opens, and that time must not let the first frames rush through."""
    source = FileSource(str(DEFAULT_CLIP), keep_color=False, realtime=True)
    source.open()
    try:
        time.sleep(0.3)  # as a model load between open and the first read
        first = source.read()
        started = time.monotonic()
        for _ in range(4):
            last = source.read()
    finally:
        source.close()
    assert first is not None and last is not None
    assert time.monotonic() - started >= (last.timestamp - first.timestamp) - 0.01 > 0


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file"):
        FileSource(str(tmp_path / "nope.mp4"), keep_color=False).open()
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video")
    with pytest.raises(SourceError, match="not a readable video"):
        FileSource(str(junk), keep_color=False).open()


def test_open_source_picks_the_kind() -> None:
    assert isinstance(open_source("0"), LiveSource)
    assert isinstance(open_source("/dev/video2"), LiveSource)
    assert isinstance(open_source("rtsp://127.0.0.1/cam"), LiveSource)
    assert isinstance(open_source("picamera").camera, PiCamera)
    assert isinstance(open_source("clip.mp4"), FileSource)


def test_camera_that_does_not_exist_fails_at_start() -> None:
    schedule = {"absent": True}
    camera = OpenCVCamera("7", 640, 480, 30, False, opener=make_opener([], schedule))
    with pytest.raises(SourceError, match="could not be opened"):
        LiveSource(camera, "camera 7").open()


def test_live_source_keeps_only_the_newest_frame() -> None:
    frames = recorded_frames()
    schedule: dict = {}
    source = LiveSource(OpenCVCamera("0", 640, 480, 30, False,
                                     opener=make_opener(frames, schedule)), "camera 0")
    source.open()
    time.sleep(0.2)  # a slow consumer: many frames were captured meanwhile
    first = source.read(timeout=1.0)
    second = source.read(timeout=1.0)
    source.close()
    assert first is not None and second is not None
    assert schedule["reads"] > 5  # the capture thread kept reading
    assert second.index == first.index + 1  # indices count frames handed out
    assert second.timestamp > first.timestamp


def test_unplugged_camera_reconnects_and_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    frames = recorded_frames()
    schedule: dict = {"odd_frame_at": 3}
    camera = OpenCVCamera("0", 640, 480, 30, False, opener=make_opener(frames, schedule))
    source = LiveSource(camera, "camera 0", retry_initial=0.05, retry_max=0.1,
                        failures_before_reconnect=3)
    source.open()
    assert source.read(timeout=1.0) is not None
    schedule["unplugged"] = True
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:
        source.read(timeout=0.05)
    assert not source.connected
    assert source.read(timeout=0.1) is None  # no frames while unplugged
    schedule["unplugged"] = False  # plugged back in
    frame = source.read(timeout=2.0)
    problems = source.drain_problems()
    source.close()
    assert frame is not None
    assert any("reconnecting" in p for p in problems)
    assert any("reconnect failed" in p for p in problems)
    assert any("reconnected after" in p for p in problems)
    assert schedule["opens"] >= 2


def test_no_frame_from_before_an_outage_is_handed_out_after_it_is_reported() -> None:
    """The loop logs the outage (drain_problems), then reads: the frame captured before
    the camera went must not come after that line, as if it were new."""
    frames = recorded_frames()
    schedule: dict = {}
    source = LiveSource(OpenCVCamera("0", 640, 480, 30, False,
                                     opener=make_opener(frames, schedule)), "camera 0",
                        retry_initial=5.0, retry_max=5.0, failures_before_reconnect=3)
    source.open()
    try:
        assert source.read(timeout=1.0) is not None
        schedule["unplugged"] = True  # no read from here: the newest frame stays unread
        problems: list = []
        deadline = time.monotonic() + 2.0
        while not problems and time.monotonic() < deadline:
            problems = source.drain_problems()
            time.sleep(0.01)
        assert any("no frames" in p for p in problems)
        assert source.read(timeout=0.2) is None
    finally:
        source.close()


def fake_picamera2_module(frames: list[np.ndarray], calls: dict) -> types.ModuleType:
    """A stand-in for picamera2 with the calls we use and the same array layout."""

    class Picamera2:
        def __init__(self) -> None:
            self.n = 0

        def create_video_configuration(self, main: dict, controls: dict | None = None) -> dict:
            calls["main"] = main
            return {"main": main, "controls": controls}

        def configure(self, config: dict) -> None:
            calls["configured"] = config

        def start(self) -> None:
            calls["started"] = True

        def capture_array(self, stream: str = "main") -> np.ndarray:
            bgr = frames[self.n % len(frames)]
            self.n += 1
            return cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420)  # (h*3/2, w): Y plane first

        def stop(self) -> None:
            calls["stopped"] = True

        def close(self) -> None:
            calls["closed"] = True

    module = types.ModuleType("picamera2")
    module.Picamera2 = Picamera2  # type: ignore[attr-defined]
    return module


def test_pi_camera_uses_the_y_plane(monkeypatch: pytest.MonkeyPatch) -> None:
    frames = [cv2.resize(f, (640, 480)) for f in recorded_frames(3)]
    calls: dict = {}
    monkeypatch.setitem(sys.modules, "picamera2", fake_picamera2_module(frames, calls))
    source = open_source("picamera", width=640, height=480)
    source.open()
    frame = source.read(timeout=2.0)
    source.close()
    assert calls["main"] == {"size": (640, 480), "format": "YUV420"}
    assert calls["stopped"] and calls["closed"]
    assert frame is not None and frame.gray.shape == (480, 640) and frame.bgr is None
    # The capture thread may be a frame or two ahead: compare with the closest one.
    error = min(np.abs(frame.gray.astype(int) - cv2.cvtColor(f, cv2.COLOR_BGR2GRAY)).mean()
                for f in frames)
    assert error < 3  # the Y plane is the luma: no colour conversion was needed


def test_pi_camera_missing_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)  # import fails
    with pytest.raises(MissingModule, match="picamera2 is not installed") as info:
        open_source("picamera").open()
    assert not isinstance(info.value, SourceError)  # not a camera to wait for (exit 3)


def test_close_stops_the_capture_thread() -> None:
    frames = recorded_frames(5)
    source = LiveSource(OpenCVCamera("0", 640, 480, 30, False,
                                     opener=make_opener(frames, {})), "camera 0")
    source.open()
    source.close()
    assert not any(t.name == "capture" and t.is_alive() for t in threading.enumerate())


def test_network_stream_drops_and_comes_back() -> None:
    """A real MJPEG-over-HTTP camera on loopback, stopped and restarted on its port."""
    from tests.helpers.mjpeg_server import MjpegCamera, unplug

    camera = MjpegCamera().start()
    restarted = MjpegCamera(port=0)
    source = open_source(camera.url, retry_initial=0.1, retry_max=0.4)
    assert isinstance(source, LiveSource)
    source.open()
    try:
        assert source.read(timeout=5.0) is not None
        unplug(camera, source)
        assert not source.connected  # the outage was noticed
        restarted = MjpegCamera(port=camera.port).start()  # plugged back in
        frame = None
        deadline = time.monotonic() + 10.0
        while frame is None and time.monotonic() < deadline:
            frame = source.read(timeout=0.5)
        problems = source.drain_problems()
    finally:
        source.close()
        camera.stop()
        restarted.stop()
    assert frame is not None and frame.gray.shape == (360, 640)
    assert any("reconnect" in p for p in problems)
