"""`edge-run check` tries what `run` will need, and fails with the line `run` would print."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest
from click.testing import CliRunner

from edge.cli import main

pytestmark = pytest.mark.usefixtures("keep_logging")  # tests/unit/conftest.py


def check_and_run(*args: str) -> tuple[str, str]:
    """check's and run's stderr for the same options; both must fail with exit 2."""
    check = CliRunner().invoke(main, ["check", "--no-camera", *args])
    run = CliRunner().invoke(main, ["run", "--max-frames", "1", *args])
    assert check.exit_code == 2, check.output
    assert run.exit_code == 2, run.output
    return check.stderr.strip(), run.stderr.strip()


def headless_opencv() -> bool:
    info = cv2.getBuildInformation()
    return "GUI:" in info and "NONE" in info.split("GUI:", 1)[1].splitlines()[0]


def test_window_on_headless_opencv() -> None:
    # fullscreen opens the same window (tests/unit/test_small_things.py: its message)
    if not headless_opencv():
        pytest.skip("this OpenCV has a GUI backend")
    check, run = check_and_run("--display", "window", "--log", "")
    assert check == run and check.startswith("edge-run: error: display.mode")


def test_missing_framebuffer(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[display]\nmode = "framebuffer"\nframebuffer = "{tmp_path / "fb7"}"\n'
                      '[log]\npath = ""\n')
    check, run = check_and_run("--config", str(config))
    assert check == run and "fb7" in check


def test_snapshot_folder_that_cannot_be_made(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    check, run = check_and_run("--snapshots", str(blocker / "shots"), "--log", "")
    assert check == run and "shots" in check


def test_log_that_cannot_be_opened(tmp_path: Path) -> None:
    check, run = check_and_run("--log", str(tmp_path))  # a folder
    assert check == run and str(tmp_path) in check


def test_check_leaves_no_file_behind(tmp_path: Path) -> None:
    log, shots = tmp_path / "events.jsonl", tmp_path / "shots"
    result = CliRunner().invoke(main, ["check", "--no-camera", "--log", str(log),
                                       "--snapshots", str(shots)])
    assert result.exit_code == 0, result.output
    assert f"ok: event log {log}" in result.output and f"ok: snapshots {shots}" in result.output
    assert not log.exists()
    assert list(shots.iterdir()) == []  # run would make the folder too; nothing in it
