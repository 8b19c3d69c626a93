"""Motion gating with the real detector, landmarks and model on the embedded clip's frames.

Assertions are on frame indices and scan counts, never on times.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge import config as config_module
from edge.build import build_pipeline
from edge.commands.pace import empty_still
from edge.config import DEFAULT_CLIP
from edge.types import Frame

FPS = 30.0


def clip_grays(count: int) -> list[np.ndarray]:
    """The embedded clip's first `count` frames, gray."""
    capture = cv2.VideoCapture(str(DEFAULT_CLIP))
    grays = []
    while len(grays) < count:
        ok, image = capture.read()
        if not ok:
            break
        grays.append(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
    capture.release()
    assert grays
    return grays


def first_frame_gray():
    return clip_grays(1)[0]


def pipeline_with(**detect: object):
    return build_pipeline(config_module.load(None, {"detect": detect}))


@pytest.mark.parametrize(("still_scan", "found"), [(2.0, 62), (10.0, 302)])
def test_a_perfectly_still_person_is_found_by_the_periodic_scan(still_scan: float,
                                                                 found: int) -> None:
    """The gate never fires (threshold at its maximum), so the picture never counts as
    changed either: only the periodic scan of an unchanged picture can find her."""
    empty = cv2.cvtColor(empty_still(DEFAULT_CLIP, 640, 360), cv2.COLOR_BGR2GRAY)
    person = first_frame_gray()
    pipeline = pipeline_with(motion=True, motion_threshold=255.0, idle_scan=2.0,
                             still_scan=still_scan, scan_lag=2)
    try:
        found_at = scans_until_found = None
        for index in range(found + 1):
            gray = empty if index == 0 else person
            result = pipeline.process(Frame(gray=gray, index=index, timestamp=index / FPS))
            if found_at is None and any(f.probabilities is not None for f in result.faces):
                found_at, scans_until_found = index, pipeline.schedule.count
        # Frame 0 (empty) is scanned on the loop's thread; the next scan starts
        # still_scan seconds later and its face joins the tracker scan_lag frames after.
        assert found_at == found
        assert scans_until_found == 2
    finally:
        pipeline.close()


@pytest.mark.parametrize(("still_scan", "scans"), [(10.0, 1), (2.0, 3)])
def test_nothing_moving_in_an_empty_room_means_no_scans_between_idle_periods(
        still_scan: float, scans: int) -> None:
    """By default an unchanged empty room is scanned once in 5 s (frame 0); with
    still_scan = idle_scan, every idle_scan (frames 0, 60 and 120)."""
    rng = np.random.default_rng(0)
    empty = cv2.cvtColor(empty_still(DEFAULT_CLIP, 640, 480), cv2.COLOR_BGR2GRAY).astype(float)
    pipeline = pipeline_with(motion=True, idle_scan=2.0, still_scan=still_scan)
    try:
        for index in range(150):  # 5 s of an empty room with sensor noise
            noisy = np.clip(empty + rng.normal(0, 6, empty.shape), 0, 255).astype(np.uint8)
            assert not pipeline.process(Frame(gray=noisy, index=index,
                                              timestamp=index / FPS)).faces
        assert pipeline.schedule.count == scans
    finally:
        pipeline.close()


def test_a_lost_face_makes_the_next_idle_scan_due_even_if_nothing_changed() -> None:
    """The last scan saw her; once her track is lost (she may still sit there, missed
    by the search near her box), the picture no longer counts as already scanned."""
    empty = cv2.cvtColor(empty_still(DEFAULT_CLIP, 640, 360), cv2.COLOR_BGR2GRAY)
    person = first_frame_gray()
    pipeline = pipeline_with()
    try:
        index = 0
        for index in range(10):
            assert pipeline.process(Frame(gray=person, index=index, timestamp=index / FPS)).faces
        while pipeline.tracker.tracks:  # she leaves; the track lives max_age longer
            index += 1
            pipeline.process(Frame(gray=empty, index=index, timestamp=index / FPS))
            assert index < 200
        assert pipeline.gate.changed_since_scan()
    finally:
        pipeline.close()


def test_refinding_waits_for_idle_and_gives_the_same_results_without_it() -> None:
    """The loop calls idle() after a frame's events are out: the search near each
    tracked face runs there, never inside process(). A caller that never calls
    idle() (a test, a tool) gets exactly the same faces, frame for frame."""
    grays = clip_grays(40)
    phase = ["process"]
    calls: list[str] = []
    with_idle, without = pipeline_with(scan_lag=0), pipeline_with(scan_lag=0)
    search = with_idle.detector.detect_near

    def counted(gray, box):
        calls.append(phase[0])
        return search(gray, box)

    with_idle.detector.detect_near = counted
    for index, gray in enumerate(grays):
        phase[0] = "process"
        a = with_idle.process(Frame(gray=gray, index=index, timestamp=index / FPS))
        phase[0] = "idle"
        with_idle.idle()
        b = without.process(Frame(gray=gray, index=index, timestamp=index / FPS))
        assert [(f.track_id, f.box) for f in a.faces] == [(f.track_id, f.box) for f in b.faces]
        for fa, fb in zip(a.faces, b.faces):
            assert np.array_equal(fa.landmarks, fb.landmarks)
            assert np.array_equal(fa.probabilities, fb.probabilities)
    assert calls and set(calls) == {"idle"}  # every 3rd frame with a face, after it
    assert len(calls) >= len(grays) // 3 - 1


def test_a_face_keeps_its_id_at_two_frames_a_second() -> None:
    """Re-finds come every `every` frames: at 2 fps that is 1.5 s apart, more than a
    track's one second without being seen, which used to end every track between two
    re-finds (a new id, blink count and smoothing each time)."""
    pipeline = pipeline_with(scan_lag=0)
    ids = set()
    for index, gray in enumerate(clip_grays(14)):
        result = pipeline.process(Frame(gray=gray, index=index, timestamp=index / 2.0))
        pipeline.idle()
        ids.update(face.track_id for face in result.faces)
    assert ids == {1}


class RecordingScan:
    """A scan detector (the real one, on the scan thread) that records pause/resume."""

    def __init__(self, calls: list[str]) -> None:
        from edge.faces import FaceDetector

        self.detector = FaceDetector()
        self.calls = calls

    def detect(self, image: np.ndarray):
        return self.detector.detect(image)

    def pause(self) -> None:
        self.calls.append("pause")

    def resume(self) -> None:
        self.calls.append("resume")


def pipeline_recording(live: bool, calls: list[str]):
    from edge.classify import EmotionClassifier
    from edge.faces import FaceDetector, LandmarkPredictor, find_landmark_model
    from edge.pipeline import Pipeline

    config = config_module.load(None, {})
    classifier = EmotionClassifier(config.model_path(), threads=1,
                                   mirror_average=config.mirror_average())
    return Pipeline(FaceDetector(config.detect), LandmarkPredictor(find_landmark_model()),
                    classifier, config.detect, smoothing=config.model.smoothing,
                    blink=config.blink, live=live, scan_detector=RecordingScan(calls))


def test_from_a_camera_the_scan_is_held_from_each_frame_to_the_loops_idle() -> None:
    calls: list[str] = []
    pipeline = pipeline_recording(live=True, calls=calls)
    try:
        grays = clip_grays(3)
        pipeline.process(Frame(gray=grays[0], index=0, timestamp=0.0))
        assert calls == []  # a loop that never calls idle is never held: nothing resumes it
        pipeline.idle()
        calls.clear()
        for index, gray in enumerate(grays[1:], start=1):
            pipeline.process(Frame(gray=gray, index=index, timestamp=index / FPS))
            calls.append("frame done")
            pipeline.idle()
        assert calls == ["pause", "frame done", "resume"] * 2
    finally:
        pipeline.close()


def test_from_a_file_the_scan_is_never_held() -> None:
    """The loop may wait for a due scan within a frame: holding it there would hang."""
    calls: list[str] = []
    pipeline = pipeline_recording(live=False, calls=calls)
    try:
        for index, gray in enumerate(clip_grays(3)):
            pipeline.process(Frame(gray=gray, index=index, timestamp=index / FPS))
            pipeline.idle()
        assert "pause" not in calls
    finally:
        pipeline.close()


def test_closing_resumes_a_scan_held_by_the_last_frame() -> None:
    """A run that stops right after a frame (no idle after it) must not leave the scan
    stopped: closing waits for the scan thread, which waits for that scan."""
    calls: list[str] = []
    pipeline = pipeline_recording(live=True, calls=calls)
    grays = clip_grays(2)
    pipeline.process(Frame(gray=grays[0], index=0, timestamp=0.0))
    pipeline.idle()
    pipeline.process(Frame(gray=grays[1], index=1, timestamp=1 / FPS))
    assert calls[-1] == "pause"
    pipeline.close()
    assert calls[-1] == "resume"
