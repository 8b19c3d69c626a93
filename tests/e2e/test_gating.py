"""Motion gating end to end: whole runs in subprocesses, the shared FOCUS clip.

The person entering is the FOCUS clip spliced after an empty lead-in by the paced
benchmark's own scene maker. Assertions are on frame indices, never on times.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2

from edge.commands.pace import make_scenes
from edge.config import DEFAULT_CLIP
from edge.faces import FaceDetector
from edge.sinks.jsonl import read_events
from tests.conftest import REPO_ROOT, require_shared

FPS = 30.0
FOCUS = "data/media/video/focus_blink_noncommercial/mahie_test_2.avi"


def edge_run(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "edge.cli", "run", "-q", *args],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=600)
    assert done.returncode == 0, done.stderr


def logged_events(tmp_path: Path, name: str, detect: str, *args: str) -> list[tuple]:
    config = tmp_path / f"{name}.toml"
    config.write_text(f"[detect]\n{detect}\n")
    log = tmp_path / f"{name}.jsonl"
    edge_run("--config", str(config), "--log", str(log), *args)
    return [(e["event"], e["frame"], e["face"], e.get("emotion"), e.get("face_blinks"))
            for e in read_events(log) if e["event"] in ("emotion", "blink")]


def test_the_embedded_clip_gives_the_same_events_gated_or_not(tmp_path: Path) -> None:
    """Same faces, same emotion changes and blinks at the same frames as the old loop."""
    before = logged_events(tmp_path, "before", "motion = false\nscan_lag = 0")
    after = logged_events(tmp_path, "after", "")
    assert before and after == before


def test_when_scans_run_changes_nothing_a_tracked_face_reports(tmp_path: Path) -> None:
    """The clip whose blinks and emotions were the most sensitive to which frames' boxes
    came from a scan (before scans stopped moving tracked boxes, scanning every 16th
    frame instead of every 15th moved a third of its events): now every schedule gives
    the same events, frame for frame."""
    clip = str(require_shared("data/media/video/focus_blink_noncommercial/"
                              "soniya_test_6_low_fps.avi"))
    ungated = logged_events(tmp_path, "ungated", "motion = false\nscan_lag = 0",
                            "--input", clip)
    assert sum(event[0] == "blink" for event in ungated) >= 10
    assert logged_events(tmp_path, "defaults", "", "--input", clip) == ungated
    assert logged_events(tmp_path, "other", "motion = false\nscan_lag = 3\nscan_every = 7",
                         "--input", clip) == ungated


def test_a_person_entering_after_an_empty_lead_in_is_found_within_half_a_second(
        tmp_path: Path) -> None:
    clip = require_shared(FOCUS)
    path, face_from = make_scenes(clip, tmp_path, FPS, seconds=5.0)["person enters"]
    log = tmp_path / "events.jsonl"
    edge_run("--input", str(path), "--log", str(log))
    logged = list(read_events(log))
    emotions = [e for e in logged if e["event"] == "emotion"]
    assert emotions, "the person was never classified"
    assert face_from <= emotions[0]["frame"] <= face_from + int(0.5 * FPS)
    summary = [e for e in logged if e["event"] == "summary"][-1]
    assert summary["total"]["faces"] == 1  # one person, one id


def test_the_benchmark_empty_room_has_no_face(tmp_path: Path) -> None:
    """The paced benchmark's empty room really is empty (the harness also checks)."""
    path, face_from = make_scenes(DEFAULT_CLIP, tmp_path, FPS, seconds=1.0)["no face"]
    assert face_from is None
    capture = cv2.VideoCapture(str(path))
    ok, image = capture.read()
    capture.release()
    assert ok and not FaceDetector().detect(image)
