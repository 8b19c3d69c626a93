"""`edge-run report`: per-hour and per-day sums from rotated logs, CSV, PNG and errors."""

from __future__ import annotations

import csv
import struct
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from edge import types as edge_types
from edge.commands.report import report
from edge.sinks.jsonl import JsonlLog, log_files
from edge.types import Event

LABELS = ["Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral"]
T0 = datetime(2025, 3, 4, 8, 0, tzinfo=timezone.utc)
WRONG_TOTAL = {"counts": {"Angry": 10**9}, "blinks": 10**9, "seconds": 1.0,
               "media_seconds": 1.0, "faces": 99, "frames": 1}  # must be ignored


def iso(ts: datetime) -> str:
    return ts.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def period(hour: int, **extra: Any) -> dict[str, Any]:
    """A 10-minute summary period; hour h (0..4) has distinct, checkable numbers."""
    counts = dict.fromkeys(LABELS, 0) | {"Happy": 100 * (hour + 1), "Sad": 50}
    return {"counts": counts, "blinks": 10 * (hour + 1), "faces": hour % 3 + 1,
            "frames": 3000, "seconds": 600.0, "media_seconds": 600.0, "fps": 5.0,
            "blink_rate_per_min": float(hour + 1), "total": WRONG_TOTAL, "final": False,
            **extra}


def timeline() -> Iterator[tuple[datetime, Event]]:
    """Five hours of 10-minute summaries (08:00-13:00 UTC) plus the next morning."""
    yield T0, Event("start", data={"labels": LABELS, "version": "0.1.0"})
    for k in range(30):
        end = T0 + timedelta(minutes=10 * (k + 1))  # midpoint in hour k // 6
        yield end - timedelta(minutes=3), Event("blink", frame=k, face=1,
                                                data={"duration_s": 0.1})
        yield end, Event("summary", data=period(k // 6))
        if k == 14:  # a camera gone for a minute: wall time, no video
            idle = dict(period(2), counts=dict.fromkeys(LABELS, 0), blinks=0, faces=0,
                        frames=0, seconds=60.0, media_seconds=1e-6)
            yield T0 + timedelta(hours=2, minutes=31), Event("summary", data=idle)
        if k == 20:  # a restart: `total` starts again, periods go on
            yield end, Event("stop", data={"reason": "SIGTERM"})
            yield end, Event("start", data={"labels": LABELS})
    next_day = T0 + timedelta(hours=16, minutes=10)
    morning = dict(period(0), counts=dict.fromkeys(LABELS, 0) | {"Fear": 10}, blinks=5,
                   final=True)
    yield next_day, Event("summary", data=morning)


@pytest.fixture
def log_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "events.jsonl"
    clock = {"now": T0}
    monkeypatch.setattr(edge_types, "utc_now_iso", lambda: iso(clock["now"]))
    with JsonlLog(path, max_bytes=4096, backups=50) as log:  # small: several rotations
        for ts, event in timeline():
            clock["now"] = ts
            log.write(event)
    with open(path, "a") as f:  # SIGKILL mid-write
        f.write('{"event":"summary","ts":"2025-03-05T01:00:00.000Z","seconds":600,"blin')
    assert len(log_files(path)) > 3
    return path


def run(*args: str) -> Result:
    return CliRunner().invoke(report, [str(a) for a in args])


def rows(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as f:
        return {row["bucket_start_utc"]: row for row in csv.DictReader(f)}


def test_hourly_csv_sums_periods_across_rotated_files(log_path: Path, tmp_path: Path) -> None:
    result = run(log_path, "--csv", tmp_path / "hours.csv")
    assert result.exit_code == 0, result.output
    table = rows(tmp_path / "hours.csv")
    assert list(table) == [f"2025-03-04T{h:02d}:00:00Z" for h in range(8, 13)] + [
        "2025-03-05T00:00:00Z"]
    with open(tmp_path / "hours.csv", newline="") as f:
        assert next(csv.reader(f))[-7:] == LABELS  # the model's label order
    for h in range(5):
        row = table[f"2025-03-04T{8 + h:02d}:00:00Z"]
        assert float(row["minutes"]) == 60.0
        assert int(row["blinks"]) == 6 * 10 * (h + 1)
        assert float(row["blink_rate_per_min"]) == h + 1.0
        assert int(row["Happy"]) == 600 * (h + 1) and int(row["Sad"]) == 300
        assert int(row["Angry"]) == 0  # `total` is never added
        assert int(row["faces_max"]) == h % 3 + 1
        assert int(row["frames"]) == 6 * 3000
    idle_hour = table["2025-03-04T10:00:00Z"]  # the camera-less minute: wall time only
    assert idle_hour["periods"] == "7" and float(idle_hour["wall_minutes"]) == 61.0
    assert table["2025-03-05T00:00:00Z"]["Fear"] == "10"


def test_daily_table_and_csv(log_path: Path, tmp_path: Path) -> None:
    result = run(log_path, "--by", "day", "--csv", tmp_path / "days.csv")
    assert result.exit_code == 0, result.output
    table = rows(tmp_path / "days.csv")
    day = table["2025-03-04T00:00:00Z"]
    assert day["periods"] == "31" and float(day["minutes"]) == 300.0
    assert int(day["blinks"]) == 60 * (1 + 2 + 3 + 4 + 5)
    assert float(day["blink_rate_per_min"]) == 3.0
    assert int(day["Happy"]) == 600 * 15 and int(day["faces_max"]) == 3
    lines = result.output.splitlines()
    assert lines[0].split()[:2] == ["day", "(UTC)"]
    assert lines[1].startswith("2025-03-04") and "Happy 86%, Sad 14%" in lines[1]
    assert lines[2].startswith("2025-03-05") and "Fear 100%" in lines[2]
    assert lines[3].startswith("total")


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_plot_is_a_slide_sized_png(log_path: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="matplotlib is not installed")
    out = tmp_path / "report.png"
    result = run(log_path, "--plot", out)
    assert result.exit_code == 0, result.output
    assert png_size(out) == (1920, 1080)
    assert 30_000 < out.stat().st_size < 2_000_000  # drawn, not blank


def test_plot_per_day(log_path: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="matplotlib is not installed")
    result = run(log_path, "--by", "day", "--plot", tmp_path / "days.png")
    assert result.exit_code == 0, result.output
    assert png_size(tmp_path / "days.png") == (1920, 1080)


def one_line_error(result: Result, needle: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edge-run: error: "), result.output
    assert needle in lines[0]


def test_missing_log_is_one_line(tmp_path: Path) -> None:
    one_line_error(run(tmp_path / "nope.jsonl"), "nope.jsonl: no such file")


def test_log_without_summaries_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"event":"start","ts":"2025-03-04T08:00:00.000Z"}\n{"event":"sum')
    one_line_error(run(path), "no summary events")
    one_line_error(run(tmp_path), "is a folder")


def test_missing_matplotlib_is_one_line(log_path: Path, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails
    one_line_error(run(log_path, "--plot", tmp_path / "x.png"), "pip install")


def test_unwritable_output_is_one_line(log_path: Path, tmp_path: Path) -> None:
    one_line_error(run(log_path, "--csv", tmp_path / "no" / "dir" / "x.csv"), "x.csv")
