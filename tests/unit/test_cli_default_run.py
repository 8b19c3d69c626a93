"""`edge-run [RUN OPTIONS]`: run is the default command, as the README says."""

from __future__ import annotations

from click.testing import CliRunner

from edge.cli import main


def test_run_options_work_without_the_run_word() -> None:
    # The README's device command is `edge-run --input 0`: the option must reach `run`
    # (here a missing file, so the run stops at once with run's own one-line error).
    result = CliRunner().invoke(main, ["--input", "/nonexistent/clip.mp4", "--log", ""])
    assert result.exit_code == 2, result.output
    assert "No such option" not in result.output
    assert "edge-run: error: /nonexistent/clip.mp4: no such file" in result.stderr


def test_top_level_help_shows_the_run_options() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for option in ("--input", "--loop", "--log", "--display", "--quiet", "--verbose"):
        assert option in result.output
    assert "check" in result.output and "report" in result.output  # subcommands still listed


def test_subcommands_and_unknown_words_are_not_taken_for_run() -> None:
    result = CliRunner().invoke(main, ["chek"])
    assert result.exit_code == 2 and "No such command 'chek'" in result.stderr
    assert CliRunner().invoke(main, ["report", "--help"]).output.startswith("Usage: main report")
