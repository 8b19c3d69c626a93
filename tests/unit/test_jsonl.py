"""The JSONL event log: whole lines, rotation, torn lines, and a full disk."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from edge.sinks import jsonl as eventlog
from edge.sinks.jsonl import JsonlLog, log_files, read_events
from edge.types import Event


def test_lines_are_complete_json_with_iso_utc_ts(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with JsonlLog(path) as log:
        log.write(Event("start", data={"source": "x"}))
        log.write(Event("blink", frame=12, face=1, data={"duration_s": 0.1}))
    lines = path.read_text().splitlines()
    assert len(lines) == 2
    blink = json.loads(lines[1])
    assert blink["event"] == "blink" and blink["frame"] == 12 and blink["face"] == 1
    assert blink["ts"].endswith("Z") and "T" in blink["ts"]


def test_rotation_keeps_backups_in_order(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with JsonlLog(path, max_bytes=4096, backups=2) as log:
        for i in range(400):
            log.write(Event("summary", data={"n": i, "pad": "x" * 40}))
    files = log_files(path)
    assert [f.name for f in files] == ["events.jsonl.2", "events.jsonl.1", "events.jsonl"]
    assert all(f.stat().st_size <= 4096 for f in files)
    numbers = [e["n"] for e in read_events(path)]
    assert numbers == sorted(numbers) and numbers[-1] == 399  # oldest lines rotated away


def test_torn_last_line_is_skipped_and_not_glued(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"event":"start","ts":"x"}\n{"event":"blink","fr')  # SIGKILL mid-write
    assert [e["event"] for e in read_events(path)] == ["start"]
    with JsonlLog(path) as log:  # the next run appends after the torn line
        log.write(Event("start"))
    assert [e["event"] for e in read_events(path)] == ["start", "start"]


def test_full_disk_keeps_running_and_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "events.jsonl"
    real_write = os.write
    state = {"full": False}

    def flaky_write(fd: int, data: bytes) -> int:
        if state["full"]:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(eventlog.os, "write", flaky_write)
    monkeypatch.setattr(eventlog, "RETRY_SECONDS", 0.0)
    log = JsonlLog(path).open()
    log.write(Event("start"))
    state["full"] = True
    for i in range(5):
        log.write(Event("blink", frame=i))  # must not raise
    assert "No space left" in caplog.text
    state["full"] = False
    log.write(Event("stop"))
    log.close()
    kinds = [e["event"] for e in read_events(path)]
    assert kinds == ["start"] + ["blink"] * 5 + ["stop"]  # nothing queued was lost


def test_read_only_disk_bounded_queue_counts_drops(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "events.jsonl"
    log = JsonlLog(path, queue_limit=3).open()

    def erofs(fd: int, data: bytes) -> int:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(eventlog.os, "write", erofs)
    for i in range(5):
        log.write(Event("blink", frame=i))
    assert log.dropped == 2
    monkeypatch.undo()
    log.close()
    assert [e["frame"] for e in read_events(path)] == [2, 3, 4]  # the newest 3 kept
