"""When the full-frame scan runs, and the scan beside the loop (synthetic frames, no models)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from edge.scan import BackgroundScan, ScanSchedule
from edge.types import Box, Detection

FPS = 30.0


def schedule_run(schedule: ScanSchedule, frames: int, tracked: bool, moving: bool
                 ) -> list[int]:
    started = []
    for index in range(frames):
        if schedule.should_scan(index, index / FPS, tracked, moving):
            schedule.started(index / FPS)
            started.append(index)
    return started


def test_ungated_is_the_old_loop() -> None:
    """Every frame with no face tracked, every scan_every frames with one."""
    assert schedule_run(ScanSchedule(15, 2.0, gated=False), 10, False, False) == list(range(10))
    assert schedule_run(ScanSchedule(15, 2.0, gated=False), 61, True, False) == [0, 15, 30, 45,
                                                                                 60]


def test_empty_still_room_is_scanned_only_every_idle_period() -> None:
    started = schedule_run(ScanSchedule(15, 2.0, gated=True), 10 * 30, False, False)
    assert started == [0, 60, 120, 180, 240]


def test_motion_with_no_face_scans_at_once() -> None:
    schedule = ScanSchedule(15, 2.0, gated=True)
    schedule_run(schedule, 5, False, False)  # frame 0 scanned, then still
    assert not schedule.should_scan(5, 5 / FPS, tracked=False, moving=False)
    assert schedule.should_scan(6, 6 / FPS, tracked=False, moving=True)


def test_with_a_face_tracked_motion_elsewhere_scans_every_scan_every_frames() -> None:
    """Someone else may be walking in: as often as the old loop, not more."""
    started = schedule_run(ScanSchedule(15, 1.0, gated=True), 100, True, True)
    assert started == [0, 15, 30, 45, 60, 75, 90]


def test_with_a_face_tracked_and_nothing_else_moving_only_idle_scans() -> None:
    """A scan only adds faces (FaceTracker.add_new), so skipping it cannot change what
    the tracked face reports; the idle period still finds a second, still person."""
    started = schedule_run(ScanSchedule(15, 2.0, gated=True), 300, True, False)
    assert started == [0, 60, 120, 180, 240]


def test_an_unchanged_picture_is_scanned_again_only_every_still_scan() -> None:
    """The same picture scanned again finds the same faces: with nothing changed since
    the last scan, only a face it just missed is worth the next one."""
    def started(changed: bool, still_scan: float) -> list[int]:
        schedule = ScanSchedule(15, 2.0, gated=True, still_scan=still_scan)
        found = []
        for index in range(25 * 30):
            if schedule.should_scan(index, index / FPS, False, False, lambda: changed):
                schedule.started(index / FPS)
                found.append(index)
        return found

    assert started(changed=False, still_scan=10.0) == [0, 300, 600]
    assert started(changed=True, still_scan=10.0) == list(range(0, 750, 60))
    assert started(changed=False, still_scan=0.5) == list(range(0, 750, 60))  # >= idle_scan


class Gate:
    """A detector stand-in whose calls finish when the test says so."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.seen: list[int] = []

    def detect(self, gray: np.ndarray) -> list[Detection]:
        self.release.wait(5.0)
        self.seen.append(int(gray[0, 0]))
        return [Detection(box=Box(int(gray[0, 0]), 0, 50, 50), score=1.0)]


def test_background_scan_is_collected_exactly_lag_frames_later() -> None:
    gate = Gate()
    scan = BackgroundScan(gate.detect, lag=2)
    try:
        frame = np.full((48, 64), 7, dtype=np.uint8)
        scan.start(frame, index=10)
        frame[:] = 99  # the loop's buffer changes: the scan has its own copy
        assert scan.busy and not scan.due(10) and not scan.due(11) and scan.due(12)
        with pytest.raises(RuntimeError):
            scan.start(frame, index=11)  # one at a time
        gate.release.set()
        faces = scan.collect()
        assert [face.box.left for face in faces] == [7] and gate.seen == [7]
        assert not scan.busy and not scan.due(13)
    finally:
        scan.close()


def test_collect_waits_for_an_unfinished_scan_and_counts_it() -> None:
    gate = Gate()
    scan = BackgroundScan(gate.detect, lag=1)
    try:
        scan.start(np.full((8, 8), 3, dtype=np.uint8), index=0)
        threading.Timer(0.05, gate.release.set).start()
        assert [face.box.left for face in scan.collect()] == [3]
        assert scan.waits == 1
    finally:
        scan.close()


def test_from_a_camera_a_late_scan_is_collected_when_done_not_waited_for() -> None:
    gate = Gate()
    scan = BackgroundScan(gate.detect, lag=2, wait=False)
    try:
        scan.start(np.full((8, 8), 5, dtype=np.uint8), index=0)
        assert not scan.due(2) and not scan.due(3)  # due, but not done: the loop goes on
        gate.release.set()
        for _ in range(500):  # the scan thread finishes soon after the release
            if scan.due(4):
                break
            threading.Event().wait(0.01)
        assert [face.box.left for face in scan.collect()] == [5] and scan.waits == 0
    finally:
        scan.close()


def test_a_failed_scan_raises_in_the_loop() -> None:
    def broken(gray: np.ndarray) -> list[Detection]:
        raise ValueError("bad frame")

    scan = BackgroundScan(broken, lag=1)
    try:
        scan.start(np.zeros((8, 8), dtype=np.uint8), index=0)
        with pytest.raises(ValueError, match="bad frame"):
            scan.collect()
        assert not scan.busy  # the next scan may start
    finally:
        scan.close()


def test_lag_must_be_positive() -> None:
    with pytest.raises(ValueError):
        BackgroundScan(lambda gray: [], lag=0)


# --- the helper process's protocol (edge/scan_worker.serve), in memory ---------------


class FakeDetector:
    """Answers with one box per request, the frame's size in it; fails on a 1x1 frame."""

    def detect(self, gray: np.ndarray) -> list[Detection]:
        if gray.shape == (1, 1):
            raise RuntimeError("odd frame")
        return [Detection(box=Box(1, 2, gray.shape[1], gray.shape[0]), score=0.5)]


def request(gray: np.ndarray) -> bytes:
    import struct

    return struct.pack("<II", *gray.shape) + gray.tobytes()


def test_serve_answers_each_frame_in_order_and_reports_a_failure_without_stopping() -> None:
    import io
    import json

    from edge.scan_worker import serve

    frames = [np.zeros((3, 4), np.uint8), np.zeros((1, 1), np.uint8), np.ones((5, 2), np.uint8)]
    replies = io.BytesIO()
    serve(io.BytesIO(b"".join(request(f) for f in frames)), replies, FakeDetector())
    lines = [json.loads(line) for line in replies.getvalue().splitlines()]
    assert lines == [[[1, 2, 4, 3, 0.5]], {"error": "RuntimeError: odd frame"}, [[1, 2, 2, 5, 0.5]]]


def test_serve_stops_quietly_at_a_closed_or_cut_off_input() -> None:
    import io

    from edge.scan_worker import serve

    for data in (b"", b"\x03\x00", request(np.zeros((3, 4), np.uint8))[:-1]):
        replies = io.BytesIO()
        serve(io.BytesIO(data), replies, FakeDetector())
        assert replies.getvalue() == b""
