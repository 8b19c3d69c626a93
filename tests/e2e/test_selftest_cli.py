"""The self-test's failure as a user meets it: a real `edge-run check` process with a
tampered sidecar says so in one line and exits 2 (the in-process cases: tests/unit)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT
from tests.conftest import copy_shipped_model as copy_model


def test_tampered_reference_is_one_line_and_exit_2(tmp_path: Path) -> None:
    def tamper(sidecar: dict) -> None:
        sidecar["selftest"]["expected"][0] = [127] + [-128] * 6
        sidecar["selftest"]["tolerance"] = {"mean": 0.001, "max": 0.25}
    model = copy_model(tmp_path, tamper)
    done = subprocess.run([sys.executable, "-m", "edge.cli", "check", "--no-camera",
                           "--model", str(model)], capture_output=True, text=True,
                          timeout=120, cwd=REPO_ROOT)
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("edge-run: error")]
    assert len(errors) == 1 and "self-test failed" in errors[0], done.stderr
    assert "Traceback" not in done.stderr
    # the two tries are logged as warnings before the one error line
    assert "retrying with LiteRT's builtin kernels" in done.stderr
