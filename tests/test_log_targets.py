"""Where the event log may point: only a regular file rotates; anything else is written as is."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from edge.eventlog import JsonlLog, read_events
from edge.types import Event


def write_past_rotation(path: Path) -> None:
    with JsonlLog(path, max_bytes=4096, backups=2) as log:
        for i in range(200):
            log.write(Event("summary", data={"n": i, "pad": "x" * 40}))


def test_symlink_is_written_through_never_replaced(tmp_path: Path) -> None:
    target = tmp_path / "real.jsonl"
    link = tmp_path / "events.jsonl"
    link.symlink_to(target)
    write_past_rotation(link)
    assert link.is_symlink() and link.resolve() == target  # still the user's link
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.jsonl", "real.jsonl"]
    assert [e["n"] for e in read_events(target, rotated=False)] == list(range(200))


def test_fifo_is_written_never_renamed(tmp_path: Path) -> None:
    fifo = tmp_path / "events.fifo"
    os.mkfifo(fifo)
    received = bytearray()

    def reader() -> None:
        with open(fifo, "rb") as f:
            received.extend(f.read())

    thread = threading.Thread(target=reader)
    thread.start()
    write_past_rotation(fifo)
    thread.join(timeout=10)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert list(tmp_path.iterdir()) == [fifo]
    assert received.count(b"\n") == 200


def test_character_device_is_never_renamed(tmp_path: Path) -> None:
    # A private /dev/null twin: rotating the real one would need root and break the host.
    null = tmp_path / "null"
    try:
        os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except (PermissionError, OSError) as exc:
        pytest.skip(f"cannot make a device node here ({exc.strerror})")
    write_past_rotation(null)
    assert stat.S_ISCHR(os.lstat(null).st_mode)
    assert list(tmp_path.iterdir()) == [null]
