"""Where the event log may point: only a regular file rotates; anything else is written as is."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from edge import config
from edge.cli import main
from edge.config import DEFAULT_CLIP
from edge.errors import ConfigError, EdgeError
from edge.sinks.jsonl import JsonlLog, read_events
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


# --- results that go nowhere ----------------------------------------------------------



@pytest.mark.skipif(not Path("/dev/full").exists(), reason="/dev/full is absent")
def test_log_that_takes_nothing_fails_the_run(keep_logging: None) -> None:
    result = CliRunner().invoke(main, ["run", "--log", "/dev/full", "--max-frames", "3"])
    assert result.exit_code == 1, result.output
    assert "final: 3 frames" in result.stdout  # the run itself went to the end
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("edge-run: error: event log /dev/full: not one of ")
    assert "No space left on device" in last


def test_log_folder_must_exist(tmp_path: Path) -> None:
    missing = tmp_path / "lgos" / "events.jsonl"
    with pytest.raises(EdgeError, match="does not exist"):
        JsonlLog(missing).open()
    assert not missing.parent.exists()  # a typo is not created silently
    result = CliRunner().invoke(main, ["check", "--no-camera", "--log", str(missing)])
    assert result.exit_code == 2 and "does not exist" in result.stderr


def test_log_and_input_may_not_be_the_same_file(tmp_path: Path) -> None:
    video = tmp_path / "clip.mp4"
    video.write_bytes(DEFAULT_CLIP.read_bytes())
    for log in (str(video), str(tmp_path / "." / "clip.mp4")):
        with pytest.raises(ConfigError, match="same file"):
            config.load(None, {"source": {"input": str(video)}, "log": {"path": log}})
    result = CliRunner().invoke(main, ["run", "--input", str(video), "--log", str(video)])
    assert result.exit_code == 2 and "same file" in result.stderr
    assert video.read_bytes() == DEFAULT_CLIP.read_bytes()  # no JSON appended to the video


def test_demo_run_writes_no_file_and_says_so(keep_logging: None, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["--max-frames", "3"])
    assert result.exit_code == 0, result.output
    assert os.listdir(tmp_path) == []  # nothing the user did not ask for
    assert "event log: none" in result.stdout


def test_a_real_input_says_where_the_log_went(keep_logging: None, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["--input", str(DEFAULT_CLIP), "--max-frames", "3"])
    assert result.exit_code == 0, result.output
    log = tmp_path / "edge-emotion.jsonl"
    assert f"event log: {log}" in result.stdout.splitlines()[0]
    assert [e["event"] for e in read_events(log)][-1] == "stop"
