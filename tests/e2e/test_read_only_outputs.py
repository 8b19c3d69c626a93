"""`check` and `run` on a real read-only mount: both fail with the same line (exit 2)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("unshare") is None, reason="unshare is not installed")
def test_read_only_filesystem(tmp_path: Path) -> None:
    """A real read-only mount (a private mount namespace: needs root or user namespaces)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    python = sys.executable
    script = (f"mount -t tmpfs -o ro tmpfs {ro} || exit 99\n"
              f"{python} -m edge.cli check --no-camera --log {ro}/events.jsonl\necho rc=$?\n"
              f"{python} -m edge.cli run --max-frames 1 --log {ro}/events.jsonl\necho rc=$?\n"
              f"{python} -m edge.cli check --no-camera --log '' --snapshots {ro}/shots\n"
              "echo rc=$?\n"
              f"{python} -m edge.cli run --max-frames 1 --log '' --snapshots {ro}/shots\n"
              "echo rc=$?\n")
    result = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True,
                            text=True, timeout=300, cwd=REPO)
    if result.returncode == 99 or "unshare failed" in result.stderr:
        pytest.skip(f"cannot mount a read-only file system here: {result.stderr.strip()}")
    assert result.stdout.count("rc=2") == 4, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("edge-run: error")]
    assert len(errors) == 4, result.stderr
    assert errors[0] == errors[1] and "Read-only file system" in errors[0]
    assert errors[2] == errors[3] and "Read-only file system" in errors[2]
