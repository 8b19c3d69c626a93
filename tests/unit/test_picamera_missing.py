"""`--input picamera` without the picamera2 module: a missing module is not a missing camera."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from edge.cli import main


@pytest.fixture(autouse=True)
def no_picamera2(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setitem(sys.modules, "picamera2", None)  # import fails, as on a plain venv
    logger = logging.getLogger("edge")
    handlers, level, propagate = logger.handlers[:], logger.level, logger.propagate
    yield
    logger.handlers[:], logger.level, logger.propagate = handlers, level, propagate


@pytest.mark.parametrize("command", ["run", "check"])
def test_exit_2_with_the_install_hint(command: str) -> None:
    result = CliRunner().invoke(main, [command, "--input", "picamera", "--log", ""])
    # 3 would make systemd retry every 15 s forever; 2 stops it (RestartPreventExitStatus=2).
    assert result.exit_code == 2, result.output
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("edge-run: error: picamera2 is not installed")
    assert "sudo apt install python3-picamera2" in line and "--system-site-packages" in line
