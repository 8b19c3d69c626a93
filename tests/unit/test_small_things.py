"""Small things a new user hit: messages, output formats, the service under /tmp, the plot."""

from __future__ import annotations

import json
import stat
import tempfile
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import cv2
import pytest
from click.testing import CliRunner

from edge import config
from edge.cli import main
from edge.commands import service as svc
from edge.errors import ConfigError, EdgeError
from edge.sinks.display import WindowDisplay

LABELS = ["Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral"]



def test_fullscreen_error_says_fullscreen_and_how_to_swap_opencv() -> None:
    info = cv2.getBuildInformation()
    if "GUI:" not in info or "NONE" not in info.split("GUI:", 1)[1].splitlines()[0]:
        pytest.skip("this OpenCV has a GUI backend")
    with pytest.raises(EdgeError) as error:
        WindowDisplay(fullscreen=True)
    message = str(error.value)
    assert message.startswith("display.mode fullscreen needs")
    # Swap the builds: both installed side by side fight over the cv2 module.
    assert "pip uninstall opencv-python-headless && pip install opencv-python" in message


@pytest.mark.parametrize(("toml", "needle"), [
    ('[detect]\nwidth = "wide"\n', "detect.width: expected an integer"),
    ("[detect]\nwidth = 5\n", "detect.width: 5 is out of range"),
    ('[display]\nmode = "tv"\n', "display.mode: 'tv' is not one of"),
    ("[blink]\nopen_ratio = 0.5\nclose_ratio = 0.6\n", "blink.open_ratio must be"),
])
def test_config_value_errors_name_the_file(tmp_path: Path, toml: str, needle: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as error:
        config.load(path)
    assert str(error.value).startswith(f"{path}: {needle}")


def test_command_line_value_errors_say_command_line() -> None:
    with pytest.raises(ConfigError, match=r"^command line: detect\.every: 0 is out of range"):
        config.load(None, {"detect": {"every": 0}})


def test_verbose_prints_json_lines_and_final_line_has_no_fps_now(keep_logging: None) -> None:
    result = CliRunner().invoke(main, ["-v", "--max-frames", "3", "--log", ""])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    events = [json.loads(line) for line in lines if line.startswith("{")]
    assert events[0]["event"] == "start" and events[-1]["event"] == "stop"
    assert not any(line.startswith(("start ", "stop ", "summary ")) for line in lines)
    final = [line for line in lines if line.startswith("final:")]
    assert len(final) == 1 and "fps now" not in final[0] and " fps" in final[0]


# --- the service under /tmp ---------------------------------------------------------


@pytest.fixture
def under_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict]:
    monkeypatch.setattr(svc, "is_root", lambda: True)
    monkeypatch.setattr(svc, "code_paths", lambda exec_path: ())
    with tempfile.TemporaryDirectory(dir="/tmp") as venv:
        exe = Path(venv) / "bin" / "edge-run"
        exe.parent.mkdir()
        exe.write_text("#!/bin/sh\n")
        exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
        unit_dir = tmp_path / "units"
        unit_dir.mkdir()
        yield {"args": ["--exec-path", str(exe), "--unit-dir", str(unit_dir),
                        "--config-dir", str(tmp_path / "etc")], "unit_dir": unit_dir}


def test_install_refuses_a_venv_under_tmp(under_tmp: dict) -> None:
    result = CliRunner().invoke(svc.service, ["install", *under_tmp["args"]])
    assert result.exit_code == 2, result.output
    assert "PrivateTmp=yes" in result.stderr and "/tmp" in result.stderr
    assert list(under_tmp["unit_dir"].iterdir()) == []


def test_dry_run_warns_about_a_venv_under_tmp(under_tmp: dict) -> None:
    result = CliRunner().invoke(svc.service, ["install", "--dry-run", *under_tmp["args"]])
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("edge-run: warning: ") and "PrivateTmp=yes" in result.stderr


# --- report --plot on a log without faces ------------------------------------------------


def no_face_log(path: Path, days: int = 3) -> Path:
    t0 = datetime(2025, 3, 4, 8, 0, tzinfo=timezone.utc)
    with open(path, "w") as f:
        for k in range(days * 24):
            ts = (t0 + timedelta(hours=k + 1)).isoformat(timespec="milliseconds")
            f.write(json.dumps({
                "event": "summary", "ts": ts.replace("+00:00", "Z"),
                "counts": dict.fromkeys(LABELS, 0), "blinks": 0, "faces": 0, "frames": 3000,
                "seconds": 3600.0, "media_seconds": 3600.0, "fps": 1.0,
                "blink_rate_per_min": 0.0, "final": False}) + "\n")
    return path


@pytest.mark.parametrize("by", ["day", "hour"])
def test_plot_of_a_log_without_faces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     by: str) -> None:
    pytest.importorskip("matplotlib", reason="matplotlib is not installed")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    from edge.commands.report import report

    figures = []
    close = plt.close
    monkeypatch.setattr(plt, "close", lambda fig: figures.append(fig))
    out = tmp_path / "plot.png"
    result = CliRunner().invoke(report, [str(no_face_log(tmp_path / "e.jsonl")), "--by", by,
                                         "--plot", str(out)])
    assert result.exit_code == 0, result.output
    (figure,) = figures
    mix, blinks, faces = figure.axes
    assert faces.get_ylim()[0] == 0 and faces.get_ylim()[1] >= 1  # no negative faces
    assert blinks.get_ylim()[0] == 0
    assert mix.get_legend() is None  # no empty "emotion" legend
    assert any("no faces" in text.get_text() for text in mix.texts)
    renderer = figure.canvas.get_renderer()
    for ax in figure.axes:  # y labels inside the picture
        assert ax.yaxis.label.get_window_extent(renderer).x0 >= 0
    if by == "day":  # each day's tick under the middle of its bar
        ticks = [mdates.num2date(t) for t in faces.get_xticks()]
        assert ticks and all((t.hour, t.minute) == (12, 0) for t in ticks)
    close(figure)
