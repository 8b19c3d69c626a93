"""The JSONL event log: one whole line per write, rotation, and survival of a full disk.

Each event is encoded completely first and written with a single os.write on
an O_APPEND descriptor, so a SIGKILL can tear at most the last line; readers
(`read_events`) skip such a line. A write that fails (ENOSPC, EROFS, EIO) is
reported once to the journal, the line is kept in a bounded memory queue, and
writing resumes, queue first, once the disk takes data again. The pipeline
never stops for the log.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edge.errors import EdgeError, NothingLogged
from edge.types import Event

log = logging.getLogger("edge.eventlog")
RETRY_SECONDS = 2.0


class JsonlLog:
    """Append-only JSONL file with size-based rotation (LOG, LOG.1 ... LOG.N).

    Only a regular file rotates; a device, a FIFO or a symlink is appended to as is."""

    name = "log"

    def __init__(self, path: str | Path, max_bytes: int = 10_000_000, backups: int = 5,
                 queue_limit: int = 10_000) -> None:
        self.path = Path(path)
        self.max_bytes, self.backups = max_bytes, backups
        self._fd: int | None = None
        self._size = 0
        self._pending: deque[bytes] = deque(maxlen=queue_limit)
        self._failing_since: float | None = None
        self._next_retry = 0.0
        self._needs_newline = False
        self._rotates = True
        self.dropped = 0
        self.written = 0  # lines that reached the file
        self.failure: str | None = None  # why the last write failed

    def open(self) -> JsonlLog:
        # The folder must exist: a typo in it must not become a new folder nobody reads.
        if not self.path.parent.is_dir():
            raise EdgeError(f"event log {self.path}: folder {self.path.parent} does not exist")
        try:
            self._open_fd()
        except OSError as exc:  # one line for run and check alike (EROFS, EACCES, EISDIR)
            raise EdgeError(f"event log {self.path}: {exc.strerror or exc}") from None
        return self

    def probe(self) -> None:
        """Open as a run would, then close; a file made here is removed (edge-run check)."""
        existed = os.path.lexists(self.path)
        self.open()
        self.close()
        if not existed:
            self.path.unlink(missing_ok=True)

    def _open_fd(self) -> None:
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        status = os.fstat(self._fd)
        regular = stat.S_ISREG(status.st_mode)
        self._size = status.st_size if regular else 0
        # Only a regular file rotates: renaming /dev/null, /dev/stdout, a FIFO or the
        # user's symlink and creating a plain file in its place would break the system
        # (or the link). Those are written to as they are, without a size limit.
        self._rotates = regular and not self.path.is_symlink()
        # A previous run killed mid-write may have left a torn last line: never
        # glue our first line onto it.
        if self._size:
            with open(self.path, "rb") as f:
                f.seek(-1, os.SEEK_END)
                self._needs_newline = f.read(1) != b"\n"

    def __enter__(self) -> JsonlLog:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write(self, event: Event) -> None:
        data = (json.dumps(event.to_dict(), separators=(",", ":")) + "\n").encode()
        if len(self._pending) == self._pending.maxlen:
            self.dropped += 1
        self._pending.append(data)
        if self._failing_since is None or time.monotonic() >= self._next_retry:
            self._drain()

    def _drain(self) -> None:
        try:
            if self._fd is None:
                self._open_fd()
            if self._needs_newline:
                self._size += os.write(self._fd, b"\n")  # type: ignore[arg-type]
                self._needs_newline = False
            while self._pending:
                data = self._pending[0]
                if self._rotates and self._size and self._size + len(data) > self.max_bytes:
                    self._rotate()
                written = os.write(self._fd, data)  # type: ignore[arg-type]
                if written != len(data):  # a short write on a nearly full disk
                    raise OSError(28, "short write")
                self._size += written
                self.written += 1
                self._pending.popleft()
        except OSError as exc:
            self._on_failure(exc)
            return
        if self._failing_since is not None:
            log.warning("event log %s writable again after %.0fs; %d lines were dropped",
                        self.path, time.monotonic() - self._failing_since, self.dropped)
            self._failing_since = None

    def _on_failure(self, exc: OSError) -> None:
        self.failure = exc.strerror or str(exc)
        if self._failing_since is None:
            self._failing_since = time.monotonic()
            log.error("event log %s: write failed (%s); keeping up to %d lines in memory "
                      "and retrying", self.path, exc.strerror or exc, self._pending.maxlen)
        self._next_retry = time.monotonic() + RETRY_SECONDS
        # A failed write may have left part of a line: start the next on a fresh line.
        self._needs_newline = True

    def _rotate(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self.backups > 0:
            for n in range(self.backups - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{n}")
                if older.exists():
                    older.replace(self.path.with_name(f"{self.path.name}.{n + 1}"))
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink(missing_ok=True)
        self._open_fd()

    def sync(self) -> None:
        """Retry anything queued and push it to stable storage (summary and stop)."""
        if self._pending:
            self._drain()
        if self._fd is not None:
            with contextlib.suppress(OSError):  # fsync on a failing disk: already reported
                os.fsync(self._fd)

    @property
    def lost(self) -> int:
        """Lines that never reached the file: still queued, or dropped from the queue."""
        return len(self._pending) + self.dropped

    def check_written(self) -> None:
        """After the run: NothingLogged if not one line reached the file (--log /dev/full)."""
        if self.written == 0 and self.lost:
            raise NothingLogged(f"event log {self.path}: not one of {self.lost} events could "
                                f"be written ({self.failure or 'unknown error'})")

    def close(self) -> None:
        self.sync()
        if self._pending and self.written:  # none written at all: the caller says so
            log.error("event log %s: %d lines could not be written", self.path,
                      len(self._pending))
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def log_files(path: str | Path) -> list[Path]:
    """The log and its rotated copies, oldest first."""
    path = Path(path)
    rotated = sorted(path.parent.glob(path.name + ".*"),
                     key=lambda p: int(p.suffix[1:]) if p.suffix[1:].isdigit() else -1,
                     reverse=True)
    return [p for p in rotated if p.suffix[1:].isdigit()] + ([path] if path.exists() else [])


def read_events(path: str | Path, rotated: bool = True) -> Iterator[dict[str, Any]]:
    """Every event in order; a torn or garbled line (SIGKILL mid-write) is skipped."""
    for file in log_files(path) if rotated else [Path(path)]:
        with open(file, "rb") as f:
            for raw in f:
                try:
                    event = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(event, dict) and "event" in event:
                    yield event
