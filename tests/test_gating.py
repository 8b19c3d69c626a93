"""Motion gating and the scan beside the loop, with the real detector, landmarks and model.

Frames are the embedded clip's (a repository asset) or, for the person entering,
the shared FOCUS clip spliced after an empty lead-in by the paced benchmark's own
scene maker. Assertions are on frame indices, never on times.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
from conftest import REPO_ROOT, require_shared

from edge import config as config_module
from edge.config import DEFAULT_CLIP
from edge.eventlog import read_events
from edge.pace import empty_still, make_scenes
from edge.runner import build_pipeline
from edge.types import Frame

FPS = 30.0
FOCUS = "data/media/video/focus_blink_noncommercial/mahie_test_2.avi"


def first_frame_gray(path: Path) -> np.ndarray:
    capture = cv2.VideoCapture(str(path))
    ok, image = capture.read()
    capture.release()
    assert ok
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def pipeline_with(**detect: object):
    return build_pipeline(config_module.load(None, {"detect": detect}))


def test_a_perfectly_still_person_is_found_by_the_periodic_scan() -> None:
    """The gate never fires (threshold at its maximum): only the idle scan can find her."""
    empty = cv2.cvtColor(empty_still(DEFAULT_CLIP, 640, 360), cv2.COLOR_BGR2GRAY)
    person = first_frame_gray(DEFAULT_CLIP)
    pipeline = pipeline_with(motion=True, motion_threshold=255.0, idle_scan=2.0, scan_lag=2)
    try:
        found_at = None
        for index in range(120):
            gray = empty if index == 0 else person
            result = pipeline.process(Frame(gray=gray, index=index, timestamp=index / FPS))
            if found_at is None and any(f.probabilities is not None for f in result.faces):
                found_at = index
        # Frame 0 (empty) is scanned on the loop's thread; the next scan starts at 2 s
        # (frame 60) and its face joins the tracker scan_lag frames later.
        assert found_at == 62
        assert pipeline.schedule.count == 2
    finally:
        pipeline.close()


def test_nothing_moving_in_an_empty_room_means_no_scans_between_idle_periods() -> None:
    rng = np.random.default_rng(0)
    empty = cv2.cvtColor(empty_still(DEFAULT_CLIP, 640, 480), cv2.COLOR_BGR2GRAY).astype(float)
    pipeline = pipeline_with(motion=True, idle_scan=2.0)
    try:
        for index in range(150):  # 5 s of an empty room with sensor noise
            noisy = np.clip(empty + rng.normal(0, 6, empty.shape), 0, 255).astype(np.uint8)
            assert not pipeline.process(Frame(gray=noisy, index=index,
                                              timestamp=index / FPS)).faces
        assert pipeline.schedule.count == 3  # frames 0, 60 and 120
    finally:
        pipeline.close()


def test_the_embedded_clip_gives_the_same_events_gated_or_not(tmp_path: Path) -> None:
    """Same faces, same emotion changes and blinks at the same frames as the old loop."""
    def events(name: str, detect: str) -> list[tuple]:
        config = tmp_path / f"{name}.toml"
        config.write_text(f"[detect]\n{detect}\n")
        log = tmp_path / f"{name}.jsonl"
        done = subprocess.run([sys.executable, "-m", "edge.cli", "run", "-q", "--config",
                               str(config), "--log", str(log)], capture_output=True, text=True,
                              cwd=REPO_ROOT, timeout=300)
        assert done.returncode == 0, done.stderr
        return [(e["event"], e["frame"], e["face"], e.get("emotion"), e.get("face_blinks"))
                for e in read_events(log) if e["event"] in ("emotion", "blink")]

    before = events("before", "motion = false\nscan_lag = 0")
    after = events("after", "motion = true")
    assert before and after == before


def test_a_person_entering_after_an_empty_lead_in_is_found_within_half_a_second(
        tmp_path: Path) -> None:
    clip = require_shared(FOCUS)
    scenes = make_scenes(clip, tmp_path, FPS, seconds=5.0)
    path, face_from = scenes["person enters"]
    log = tmp_path / "events.jsonl"
    done = subprocess.run([sys.executable, "-m", "edge.cli", "run", "-q", "--input", str(path),
                           "--log", str(log)], capture_output=True, text=True,
                          cwd=REPO_ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    emotions = [e for e in read_events(log) if e["event"] == "emotion"]
    assert emotions, "the person was never classified"
    first = emotions[0]["frame"]
    assert face_from <= first <= face_from + int(0.5 * FPS)
    summary = [e for e in read_events(log) if e["event"] == "summary"][-1]
    assert summary["total"]["faces"] == 1  # one person, one id


def test_the_empty_scene_has_no_face(tmp_path: Path) -> None:
    """The benchmark's empty room really is empty (the harness refuses a still with a face)."""
    scenes = make_scenes(DEFAULT_CLIP, tmp_path, FPS, seconds=1.0)
    path, face_from = scenes["no face"]
    assert face_from is None
    pipeline = pipeline_with(motion=False, scan_lag=0)
    try:
        capture = cv2.VideoCapture(str(path))
        ok, image = capture.read()
        capture.release()
        assert ok and not pipeline.detector.detect(image)
    finally:
        pipeline.close()
