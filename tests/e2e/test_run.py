"""`edge-run` end to end, as real subprocesses: the log, the summary, bad input, signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest

from edge.config import DEFAULT_CLIP
from edge.sinks.jsonl import read_events

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "models" / "emotion_int8.tflite"


def edge_run(*args: str, timeout: float = 120, env: dict | None = None
             ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge.cli", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO,
                          env={**os.environ, **(env or {})})


def one_line_error(result: subprocess.CompletedProcess, *needles: str, code: int = 2) -> None:
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("edge-run: error: ")
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0]


@pytest.fixture(scope="module")
def default_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess,
                                                                   list[dict]]:
    """The README's main job: the embedded clip, default settings."""
    log = tmp_path_factory.mktemp("run") / "events.jsonl"
    result = edge_run("run", "--log", str(log))
    return result, [json.loads(line) for line in log.read_text().splitlines()]


def test_default_run_logs_every_event_kind(default_run) -> None:
    result, events = default_run
    assert result.returncode == 0, result.stderr
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "stop"
    assert {"emotion", "blink", "summary"} <= set(kinds)
    assert "error" not in kinds
    for event in events:
        assert event["ts"].endswith("Z")
    start = events[0]
    assert start["source"] == str(DEFAULT_CLIP) and len(start["model_sha256"]) == 64
    assert "final:" in result.stdout  # the human summary


def test_default_run_blink_and_smile(default_run) -> None:
    _, events = default_run
    blinks = [e for e in events if e["event"] == "blink"]
    assert len(blinks) == 1 and 22 <= blinks[0]["frame"] <= 30  # eyes close ~26-28
    emotions = [e for e in events if e["event"] == "emotion"]
    assert emotions[-1]["emotion"] == "Happy"  # the man ends smiling
    summary = [e for e in events if e["event"] == "summary"][-1]
    assert summary["final"] and summary["faces"] == 1 and summary["blinks"] == 1
    assert summary["frames"] == 72 and sum(summary["counts"].values()) >= 60
    assert summary["counts"]["Happy"] > 0


def test_quiet_prints_nothing_on_success(tmp_path: Path) -> None:
    result = edge_run("run", "--quiet", "--log", "", "--max-frames", "5")
    assert result.returncode == 0 and result.stdout == ""


def test_check_passes_on_defaults() -> None:
    result = edge_run("check")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("ok:") == 6
    assert "ok: kernels XNNPACK, self-test passed" in result.stdout  # the model's own check


@pytest.mark.parametrize(("args", "needles"), [
    (["--model", "/nonexistent/model.tflite"], ["model file not found"]),
    (["--input", "/nonexistent/clip.mp4"], ["no such file"]),
    (["--detect-every", "0"], ["detect.every"]),
    (["--threads", "999"], ["model.threads"]),
])
def test_bad_input_is_one_line(args: list[str], needles: list[str]) -> None:
    one_line_error(edge_run("run", "--log", "", *args), *needles)


def test_missing_camera_exits_3_so_systemd_retries() -> None:
    one_line_error(edge_run("run", "--log", "", "--input", "/dev/video57"),
                   "could not be opened", code=3)


def test_bad_config_key_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[detect]\nevry = 2\n")
    one_line_error(edge_run("run", "--config", str(config)), "unknown key detect.evry")
    one_line_error(edge_run("check", "--config", str(config)), "detect.evry")


def test_corrupt_model(tmp_path: Path) -> None:
    bad = tmp_path / "emotion.tflite"
    bad.write_bytes(os.urandom(4096))
    (tmp_path / "emotion.json").write_text((MODEL.with_suffix(".json")).read_text())
    one_line_error(edge_run("run", "--log", "", "--model", str(bad)), "not a loadable")


def test_missing_sidecar(tmp_path: Path) -> None:
    model = tmp_path / "emotion.tflite"
    model.write_bytes(MODEL.read_bytes())
    one_line_error(edge_run("check", "--model", str(model)), "sidecar missing")


def test_sidecar_that_disagrees(tmp_path: Path) -> None:
    model = tmp_path / "emotion.tflite"
    model.write_bytes(MODEL.read_bytes())
    sidecar = json.loads(MODEL.with_suffix(".json").read_text())
    sidecar["labels"] = sidecar["labels"][:5]
    (tmp_path / "emotion.json").write_text(json.dumps(sidecar))
    one_line_error(edge_run("check", "--model", str(model)), "7 outputs but the sidecar has 5")


def test_log_folder_that_cannot_be_made(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    one_line_error(edge_run("run", "--log", str(blocker / "sub" / "events.jsonl")))


def start_looping_run(log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "edge.cli", "run", "--loop", "--log", str(log),
         "--summary-every", "1"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)


def wait_for_lines(log: Path, kind: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and any(e["event"] == kind for e in read_events(log)):
            return
        time.sleep(0.2)
    raise AssertionError(f"no {kind} line in {log} after {timeout}s")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_writes_final_summary_and_exits_zero(tmp_path: Path, sig: signal.Signals) -> None:
    log = tmp_path / "events.jsonl"
    process = start_looping_run(log)
    try:
        wait_for_lines(log, "summary")
        process.send_signal(sig)
        code = process.wait(timeout=10)  # a hang guard, not a speed claim
    finally:
        process.kill()
    assert code == 0, process.stderr.read() if process.stderr else ""
    events = list(read_events(log))
    assert events[-1]["event"] == "stop" and events[-1]["reason"] == sig.name
    assert events[-2]["event"] == "summary" and events[-2]["final"] is True


def test_sigkill_leaves_only_whole_lines(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    process = start_looping_run(log)
    try:
        wait_for_lines(log, "summary")
        process.kill()
        process.wait(timeout=10)
    finally:
        process.kill()
    *whole, tail = log.read_bytes().split(b"\n")
    assert tail == b""  # each line is one os.write: the kill left no partial line
    assert all(json.loads(line)["event"] for line in whole)
    # A kill can still tear a line on a full or failing disk: make one, then restart.
    with open(log, "ab") as f:
        f.write(b'{"event":"emotion","fr')
    result = edge_run("run", "--log", str(log), "--max-frames", "3", "--quiet")
    assert result.returncode == 0
    _, restarted = log.read_bytes().split(b'"fr\n')  # the restart began on a fresh line
    assert restarted.startswith(b'{"event":"start"')
    events = list(read_events(log))  # the torn line is skipped, every other line parses
    assert len(events) == len(whole) + restarted.count(b"\n")
    assert events[-1]["event"] == "stop"


def test_no_image_is_written_unless_snapshots_are_asked_for(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "edge.cli", "run", "--quiet", "--max-frames", "40",
               "--log", str(tmp_path / "events.jsonl")]
    subprocess.run(command, cwd=tmp_path, check=True, timeout=120)
    images = [p for p in tmp_path.rglob("*") if p.suffix.lower() in (".jpg", ".png", ".bmp")]
    assert images == []
    snaps = tmp_path / "snaps"
    subprocess.run([*command, "--snapshots", str(snaps)], cwd=tmp_path, check=True, timeout=120)
    written = sorted(snaps.glob("*.jpg"))
    assert written and cv2.imread(str(written[0])) is not None
