"""The full-frame search for new faces: when it runs, and beside the loop.

A full-frame HOG scan costs tens of milliseconds (28 ms at 640x480 on one x86
core, several times that on a Raspberry Pi) against ~2 ms for a frame whose
faces are tracked. Two things keep it from costing a frame or a core:

* `ScanSchedule` runs it only when it can find something: while nothing moves
  outside the people already tracked, only every `idle_scan` seconds once the
  picture differs from what the last scan saw (a person who sits perfectly
  still is still found), every `still_scan` seconds if it does not; with
  motion, at most every `scan_every` frames while faces are tracked.
* `BackgroundScan` runs it beside the loop: a thread that hands each frame to
  the scan's helper process (edge/scan_worker.py, the default) or, with
  `scan_process = false`, calls the detector itself (dlib releases the GIL inside
  its HOG detector since 19.22). From a file
  its result is used exactly `lag` frames after the frame it was started on,
  never "whenever it is ready", so a file gives the same events on any machine
  (the loop waits for it if it is not done by then); from a camera
  (`wait=False`) it is used at the first frame from `lag` on that finds it
  done, so a busy core delays a new face, never a frame.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

import numpy as np

from edge.types import Detection


class ScanSchedule:
    """Decides, frame by frame, whether a full-frame scan should start."""

    def __init__(self, scan_every: int, idle_scan: float, gated: bool,
                 still_scan: float | None = None) -> None:
        self.scan_every = scan_every
        self.idle_scan = idle_scan
        self.still_scan = idle_scan if still_scan is None else max(idle_scan, still_scan)
        self.gated = gated
        self._last_scan: float | None = None  # source timestamp of the last scan started
        self.count = 0  # scans started

    def should_scan(self, index: int, timestamp: float, tracked: bool, moving: bool,
                    changed: Callable[[], bool] | None = None) -> bool:
        """`moving`: motion in the frame outside the people already tracked; `changed()`:
        the picture outside them differs from what the last scan saw (asked only when
        the answer matters, not every frame; None: always changed).

        Ungated (`motion = false`), the loop as it always was: every frame while
        nothing is tracked, every `scan_every` frames while faces are. Gated: while
        nothing is tracked, on motion; with faces tracked, on motion at most every
        `scan_every` frames (someone else may be walking in); and every `idle_scan`
        seconds once the picture changed since the last scan (a person who came in too
        slowly to count as motion, and now sits perfectly still, is still found). The
        same picture scanned again gives the same faces, so an unchanged one is scanned
        again only every `still_scan` seconds (a face the last scan just missed).
        A scan only ever adds faces (FaceTracker.add_new), so skipping one cannot
        change what a tracked face reports.
        """
        if tracked and index % self.scan_every != 0:
            return False
        if not self.gated:
            return True
        if self._last_scan is None or moving:
            return True
        elapsed = timestamp - self._last_scan
        if elapsed < self.idle_scan:
            return False
        return elapsed >= self.still_scan or changed is None or changed()

    def started(self, timestamp: float) -> None:
        self._last_scan = timestamp
        self.count += 1


class BackgroundScan:
    """One scan at a time on a daemon thread; its faces are collected `lag` frames later."""

    def __init__(self, detect: Callable[[np.ndarray], Sequence[Detection]], lag: int,
                 wait: bool = True) -> None:
        if lag < 1:
            raise ValueError(f"lag must be >= 1, got {lag}")
        self.detect = detect
        self.lag = lag
        self.wait = wait  # at the due frame: wait for the scan (files) or go on (cameras)
        self._due: int | None = None  # frame index at which the running scan is collected
        self._result: list[Detection] | None = None
        self._error: BaseException | None = None
        self._job: np.ndarray | None = None
        self._wake = threading.Condition()
        self._done = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        self.waits = 0  # collections that found the scan unfinished: the loop waited
        self.wait_max = 0.0  # seconds, the longest such wait

    @property
    def busy(self) -> bool:
        return self._due is not None

    def start(self, gray: np.ndarray, index: int) -> None:
        """Begin scanning (a copy of) `gray`; collect it at frame `index + lag`."""
        if self.busy:
            raise RuntimeError("a scan is already running")
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="face-scan", daemon=True)
            self._thread.start()
        self._done.clear()
        self._due = index + self.lag
        with self._wake:
            self._job = gray.copy()  # the source may reuse its buffer
            self._wake.notify()

    def due(self, index: int) -> bool:
        """Collect now? From frame start + lag on; without `wait`, only once it is done."""
        return (self._due is not None and index >= self._due
                and (self.wait or self._done.is_set()))

    def collect(self) -> list[Detection]:
        """The running scan's faces, waiting for it if it is not done yet."""
        if self._due is None:
            raise RuntimeError("no scan is running")
        if not self._done.is_set():
            started = time.perf_counter()
            self._done.wait()
            self.waits += 1
            self.wait_max = max(self.wait_max, time.perf_counter() - started)
        self._due = None
        result, error = self._result, self._error
        self._result = self._error = None
        if error is not None:
            raise error
        return result or []

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    def _run(self) -> None:
        # Same priority as the loop, on purpose: a lower one (nice +10 was tried) lets the
        # thread be preempted while it holds the GIL for the few Python lines around the
        # detector call, and then the loop waits for the GIL behind every other program
        # on the core (frames of 400-800 ms on a busy machine).
        while True:
            with self._wake:
                while self._job is None and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
                job, self._job = self._job, None
            try:
                self._result = list(self.detect(job))
            except BaseException as exc:  # handed to the loop at collect()
                self._error = exc
            self._done.set()
