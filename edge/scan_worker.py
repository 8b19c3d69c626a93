"""The full-frame face scan in a helper process at a lower CPU priority.

A scan is one long native call (40-60 ms of HOG at 640x480 here, several times that
on a Pi). On a thread beside the loop it takes half of a shared core whenever both
want it, so on one core the frames it overlaps took twice as long (a frame p99 of
14 ms against the loop's own 7 ms). Lowering a thread's priority is no cure: the
thread holds the GIL for the few Python lines around the call and, preempted there,
makes the loop wait for the GIL behind every other program on the core (frames of
400-800 ms were seen). A process has no GIL to share, so it can run at nice +10:
the loop preempts it the moment a frame arrives, and it scans in the time the loop
spends waiting for the camera. On a multi-core device it simply runs on another core.

`ScanWorker.detect` is a drop-in for `FaceDetector.detect`, called on the scan thread
(edge/scan.py): the child runs the very same detector code, so its faces are the same.
Protocol, over the child's stdin/stdout: one hello line (JSON), then per request a
header (height, width as two little-endian uint32) and the gray pixels; per reply
one JSON line, a list of [left, top, width, height, score] or {"error": ...}.
If the child cannot start or dies, the scan runs on the thread as before, said once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import struct
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

import numpy as np

from edge.config import DetectConfig
from edge.images import to_gray
from edge.types import Box, Detection

log = logging.getLogger(__name__)

SCAN_NICE = 10  # weight 110 against the loop's 1024: the loop gets 90% of a shared core
_HEADER = struct.Struct("<II")


class ScanWorkerError(RuntimeError):
    """The helper process is gone or answered nonsense."""


class ScanWorker:
    """`detect(gray)` by a child process; one call at a time (the scan thread's)."""

    def __init__(self, config: DetectConfig, nice: int = SCAN_NICE) -> None:
        self.config = config
        self.nice: int | None = None  # what the child got, once it said hello
        self.fallback_reason: str | None = None  # set once scanning moved to the thread
        self._fallback: Any = None  # a FaceDetector on the scan thread
        self._proc: subprocess.Popen[bytes] | None = None
        self._in_flight = False  # a frame sent, its reply not read yet (the scan thread's)
        self._paused = False
        # Confined to one core with the loop (taskset, a cpuset): even at nice +10 the
        # kernel hands the child one 4 ms tick when it becomes eligible, in the middle of
        # a frame. There the loop stops it for the length of each frame instead (pause).
        self.shares_core = len(getattr(os, "sched_getaffinity", lambda _: {0, 1})(0)) == 1
        try:
            self._proc = _spawn(config, nice)
        except OSError as exc:
            self._fall_back(f"cannot start it: {exc}")

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def ready(self) -> None:
        """Wait until the child has loaded its detector (a benchmark keeps that out of
        its timing; the loop never needs to: the first scan waits for it)."""
        if self._proc is not None and self.nice is None:
            try:
                self._hello()
            except (OSError, ValueError, ScanWorkerError) as exc:
                self._stop()
                self._fall_back(str(exc))

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in `image` (gray or BGR), full-frame boxes, best score first."""
        if self._proc is not None:
            gray = np.ascontiguousarray(to_gray(image), dtype=np.uint8)
            try:
                return self._ask(gray)
            except (OSError, ValueError, ScanWorkerError) as exc:
                code = self._proc.poll()
                self._stop()
                self._fall_back(str(exc) if code is None else f"it exited with status {code}")
        return self._fallback.detect(image)

    def pause(self) -> None:
        """Stop a running scan until `resume` (the loop, for the length of a frame, where
        it shares one core with the child; nothing otherwise)."""
        if self.shares_core and self._in_flight and self._proc is not None and not self._paused:
            self._signal(signal.SIGSTOP)
            self._paused = True

    def resume(self) -> None:
        if self._paused:
            self._paused = False
            self._signal(signal.SIGCONT)

    def close(self) -> None:
        self.resume()
        self._stop()

    def _signal(self, number: int) -> None:
        proc = self._proc
        if proc is not None and proc.returncode is None:  # not reaped: the pid is still its
            with contextlib.suppress(OSError):  # gone: the scan thread finds out, falls back
                os.kill(proc.pid, number)

    def _ask(self, gray: np.ndarray) -> list[Detection]:
        proc = self._proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        if self.nice is None:
            self._hello()
        self._in_flight = True
        try:
            proc.stdin.write(_HEADER.pack(*gray.shape))
            proc.stdin.write(memoryview(gray).cast("B"))
            proc.stdin.flush()
            reply = _read_json(proc)
        finally:
            self._in_flight = False
        if isinstance(reply, dict):
            raise ScanWorkerError(f"it failed: {reply.get('error')}")
        return [Detection(box=Box(int(a), int(b), int(c), int(d)), score=float(s))
                for a, b, c, d, s in reply]

    def _hello(self) -> None:
        assert self._proc is not None
        hello = _read_json(self._proc)
        self.nice = int(hello["nice"])
        if hello.get("nice_error"):
            log.warning("face scan process runs at normal priority: %s", hello["nice_error"])
        else:
            log.debug("face scan: in a helper process (pid %d) at nice +%d", self._proc.pid,
                      self.nice)

    def _fall_back(self, reason: str) -> None:
        from edge.faces import FaceDetector

        self.fallback_reason = reason
        log.warning("face scan process: %s; scanning on a thread instead", reason)
        self._fallback = FaceDetector(self.config)

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                proc.stdin.close()  # the child's cue to exit
        except OSError:
            pass
        try:
            proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def _spawn(config: DetectConfig, nice: int) -> subprocess.Popen[bytes]:
    # The child imports the same `edge` as this process, wherever it was imported from.
    root = str(Path(__file__).resolve().parent.parent)
    code = ("import sys; sys.path.insert(0, sys.argv[1]); "
            "from edge.scan_worker import main; sys.exit(main(sys.argv[2:]))")
    return subprocess.Popen(
        [sys.executable, "-c", code, root, json.dumps(asdict(config)), str(nice)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True)


def _read_json(proc: subprocess.Popen[bytes]) -> Any:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        code = proc.poll()
        raise ScanWorkerError("it exited" + ("" if code is None else f" with status {code}"))
    return json.loads(line)


# --- the child ------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    """The helper process: scan each frame it is sent until its stdin closes."""
    # The parent decides when we stop (it closes our stdin, or dies): a Ctrl-C or a
    # service stop reaches the whole process group, and must not kill a scan mid-reply
    # or print a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _die_with_parent()
    out = sys.stdout.buffer
    try:
        hello = _lower_priority(int(argv[1]))
        from edge.faces import FaceDetector

        detector = FaceDetector(DetectConfig(**json.loads(argv[0])))
        _write_json(out, hello)
        serve(sys.stdin.buffer, out, detector)
    except BrokenPipeError:
        return 0  # the parent is gone
    except Exception as exc:  # one line to the journal, never a traceback
        print(f"edge-emotion face scan process: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


def serve(requests: IO[bytes], replies: IO[bytes], detector: Any) -> None:
    while True:
        header = requests.read(_HEADER.size)
        if len(header) < _HEADER.size:
            return  # stdin closed: the parent is done
        height, width = _HEADER.unpack(header)
        pixels = requests.read(height * width)
        if len(pixels) < height * width:
            return
        gray = np.frombuffer(pixels, dtype=np.uint8).reshape(height, width)
        try:
            faces = detector.detect(gray)
        except Exception as exc:  # handed to the parent, which falls back
            _write_json(replies, {"error": f"{type(exc).__name__}: {exc}"})
            continue
        _write_json(replies, [[f.box.left, f.box.top, f.box.width, f.box.height, f.score]
                              for f in faces])


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when the parent dies, even while it is stopped (a
    stopped child would not see its stdin close). Best effort: the closed stdin is
    the cue everywhere else."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() == 1:  # the parent died before prctl: nobody will close our stdin
        sys.exit(0)


def _lower_priority(nice: int) -> dict[str, Any]:
    if nice <= 0:
        return {"nice": 0}
    try:
        return {"nice": os.nice(nice)}
    except OSError as exc:  # a seccomp filter without setpriority, for one
        return {"nice": 0, "nice_error": f"setpriority: {exc.strerror or exc}"}


def _write_json(out: IO[bytes], value: Any) -> None:
    out.write(json.dumps(value).encode() + b"\n")
    out.flush()
