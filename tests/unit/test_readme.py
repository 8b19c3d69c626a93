"""The README's quick start is what CI runs: keep the two from drifting apart."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def quick_start_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", section)


def test_quick_start_has_the_two_commands() -> None:
    commands = quick_start_commands()
    assert len(commands) == 2
    assert commands[0].endswith("pip install . && edge-run")
    assert "pytest" in commands[1]
    assert "-rs" in commands[1].split()  # the skip reasons the README promises are shown


def test_ci_runs_the_readme_test_command() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    assert quick_start_commands()[1] in ci.splitlines()


def test_every_event_kind_is_documented() -> None:
    text = (REPO / "README.md").read_text()
    for kind in ("start", "emotion", "blink", "summary", "error", "stop"):
        assert f"| `{kind}` |" in text
