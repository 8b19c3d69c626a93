"""The face scan's helper process (edge/scan_worker.py): real child, real detector.

Assertions are on faces, priorities and process states, never on times.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.config import DEFAULT_CLIP, DetectConfig
from edge.faces import FaceDetector
from edge.scan_worker import SCAN_NICE, ScanWorker

REPO_ROOT = Path(__file__).resolve().parents[2]
linux_only = pytest.mark.skipif(not Path("/proc/self/stat").exists(),
                                reason="reads process states from Linux's /proc")


def clip_gray(index: int = 0) -> np.ndarray:
    capture = cv2.VideoCapture(str(DEFAULT_CLIP))
    capture.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, image = capture.read()
    capture.release()
    assert ok
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def proc_stat(pid: int) -> list[str]:
    """/proc/PID/stat fields from the state on (field 3 = index 0), or [] once gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return []


def wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@pytest.fixture
def worker():
    scan = ScanWorker(DetectConfig())
    yield scan
    scan.close()


def test_the_process_finds_exactly_what_the_detector_finds(worker: ScanWorker) -> None:
    detector = FaceDetector(DetectConfig())
    for index in (0, 40):
        gray = clip_gray(index)
        expected = detector.detect(gray)
        assert expected, "the embedded clip shows a face"
        assert worker.detect(gray) == expected  # same boxes, same scores
    assert worker.detect(np.zeros((120, 160), np.uint8)) == []
    assert worker.fallback_reason is None


@linux_only
def test_it_runs_at_a_lower_priority(worker: ScanWorker) -> None:
    worker.ready()
    assert worker.nice == SCAN_NICE
    assert int(proc_stat(worker.pid)[16]) == os.nice(0) + SCAN_NICE  # field 19: nice


def test_a_dead_process_moves_the_scan_to_the_thread_said_once(
        worker: ScanWorker, caplog: pytest.LogCaptureFixture) -> None:
    gray = clip_gray()
    expected = FaceDetector(DetectConfig()).detect(gray)
    os.kill(worker.pid, signal.SIGKILL)
    with caplog.at_level(logging.WARNING, logger="edge.scan_worker"):
        assert worker.detect(gray) == expected  # this scan is not lost
        assert worker.detect(gray) == expected
    assert "exited" in worker.fallback_reason
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "scanning on a thread instead" in warnings[0]


def test_a_process_that_cannot_start_falls_back_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    scan = ScanWorker(DetectConfig())
    try:
        assert scan.pid is None and "cannot start it" in scan.fallback_reason
        assert scan.detect(clip_gray()) == FaceDetector(DetectConfig()).detect(clip_gray())
    finally:
        scan.close()


@linux_only
def test_close_ends_the_process(worker: ScanWorker) -> None:
    worker.ready()
    pid = worker.pid
    worker.close()
    assert worker.pid is None
    assert wait_for(lambda: proc_stat(pid)[:1] in ([], ["Z"]))


@linux_only
def test_pause_stops_a_running_scan_and_resume_lets_it_finish(worker: ScanWorker) -> None:
    worker.ready()
    worker.shares_core = True  # as when the loop and the child are confined to one core
    big = cv2.resize(clip_gray(), (1920, 1440))  # a scan long enough to catch running
    result: list = []
    scan = threading.Thread(target=lambda: result.append(worker.detect(big)))
    scan.start()
    assert wait_for(lambda: worker._in_flight)
    worker.pause()
    assert wait_for(lambda: proc_stat(worker.pid)[0] == "T")  # stopped
    worker.resume()
    scan.join(timeout=60)
    assert result and result[0], "the scan finished after resume and found the face"


def test_pause_does_nothing_where_the_child_has_its_own_core(worker: ScanWorker) -> None:
    worker.ready()
    worker.shares_core = False
    worker._in_flight = True  # even mid-scan
    worker.pause()
    assert not worker._paused
    worker._in_flight = False


@linux_only
def test_the_process_dies_with_its_parent_even_while_stopped(tmp_path: Path) -> None:
    parent = subprocess.run(
        [sys.executable, "-c",
         "import os, signal, sys; sys.path.insert(0, sys.argv[1])\n"
         "from edge.config import DetectConfig\nfrom edge.scan_worker import ScanWorker\n"
         "w = ScanWorker(DetectConfig()); w.ready(); print(w.pid, flush=True)\n"
         "os.kill(w.pid, signal.SIGSTOP)\nos.kill(os.getpid(), signal.SIGKILL)\n",
         str(REPO_ROOT)], capture_output=True, text=True, timeout=120)
    assert parent.returncode == -signal.SIGKILL, parent.stderr
    child = int(parent.stdout.split()[0])
    assert wait_for(lambda: proc_stat(child)[:1] in ([], ["Z"]))  # killed (a zombie at most)


def test_a_child_started_wrongly_says_so_in_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
         "from edge.scan_worker import main; sys.exit(main(['{not json', '10']))",
         str(REPO_ROOT)], stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=120)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edge-emotion face scan process: ")
