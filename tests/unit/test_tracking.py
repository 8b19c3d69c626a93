"""Face ids stay stable across frames; smoothing is in seconds, not frames."""

from __future__ import annotations

import numpy as np

from edge.smoothing import EmotionSmoother
from edge.tracking import FaceTracker, Track
from edge.types import Box, Detection


def face(left: int, top: int, size: int = 100) -> Detection:
    return Detection(box=Box(left, top, size, size), score=1.0)


def test_ids_follow_moving_faces_and_new_faces_get_new_ids() -> None:
    tracker = FaceTracker()
    first = tracker.update([face(100, 100), face(400, 100)], 0.0)
    ids = {t.box.left: t.track_id for t in first}
    # Moved by a third of a box: matched (IoU ~0.5), and the box follows the detection.
    moved = tracker.update([face(430, 105), face(130, 96), face(250, 300)], 0.1)
    by_left = {t.box.left: t.track_id for t in moved}
    assert by_left[130] == ids[100] and by_left[430] == ids[400]
    assert by_left[250] not in ids.values()


def test_tracks_expire_after_max_age() -> None:
    tracker = FaceTracker(max_age=1.0)
    tracker.update([face(100, 100)], 0.0)
    assert len(tracker.update([], 0.9)) == 1
    assert tracker.update([], 1.5) == []
    again = tracker.update([face(100, 100)], 1.6)
    assert again[0].track_id == 2  # a face that left and came back is a new track


def test_box_follows_landmarks_between_detections() -> None:
    track = Track(1, Box(100, 100, 100, 100), 1.0, 0.0, 0.0)
    points = np.random.default_rng(0).uniform(110, 190, (68, 2)).astype(np.float32)
    track.follow_landmarks(points)
    track.follow_landmarks(points + np.float32([20, -10]))
    assert track.box == Box(120, 90, 100, 100)


def test_smoothing_is_the_same_at_any_frame_rate() -> None:
    happy, sad = np.eye(7, dtype=np.float32)[3], np.eye(7, dtype=np.float32)[4]
    results = []
    for fps in (6, 30):
        smoother = EmotionSmoother(0.5)
        smoother.update(sad, 0.0)
        for i in range(1, fps + 1):  # one second of Happy
            probabilities = smoother.update(happy, i / fps)
        results.append(probabilities[3])
    assert abs(results[0] - results[1]) < 1e-3
    assert results[0] > 0.8  # after two time constants Happy dominates


def test_faces_from_an_earlier_scan_add_only_new_tracks() -> None:
    """A background scan's faces arrive frames late: a tracked face is not doubled."""
    tracker = FaceTracker(max_age=1.0)
    (track,) = tracker.update([face(100, 100)], 0.0)
    track.box = Box(140, 100, 100, 100)  # followed its landmarks since the scanned frame
    live = tracker.add_new([face(100, 100), face(400, 300)], 0.9)
    assert len(live) == 2 and track in live
    assert track.box == Box(140, 100, 100, 100)  # moved since: its own box is kept
    assert len(tracker.update([], 1.5)) == 2  # ...and the scan kept it alive


def test_a_scan_never_moves_a_tracked_box() -> None:
    """Tracked boxes come from detect_near and the landmarks only, so when a scan runs
    (gated, or beside the loop) cannot change a tracked face's landmarks."""
    tracker = FaceTracker()
    (track,) = tracker.update([face(100, 100)], 0.0)
    track.box = Box(104, 102, 96, 96)  # a little landmark drift since
    tracker.add_new([face(100, 100, 100)], 0.1)
    assert track.box == Box(104, 102, 96, 96) and len(tracker.tracks) == 1
    assert track.last_seen == 0.1  # ...but it was seen


def test_a_refound_box_close_to_the_followed_one_leaves_it_alone() -> None:
    """HOG boxes come in coarse steps; the landmark model starts from the box, so
    snapping to each would make the landmarks jump. A drifted box is replaced."""
    tracker = FaceTracker()
    (track,) = tracker.update([face(100, 100)], 0.0)
    track.box = Box(104, 102, 100, 100)  # IoU with the new detection ~0.89
    tracker.update([face(100, 100, 100)], 0.1)
    assert track.box == Box(104, 102, 100, 100) and track.last_seen == 0.1
    track.box = Box(125, 100, 100, 100)  # drifted: IoU 0.6
    tracker.update([face(100, 100, 100)], 0.2)
    assert track.box == Box(100, 100, 100, 100)


def test_two_new_faces_side_by_side_in_one_scan_are_two_tracks() -> None:
    """Cheek to cheek, their centres are within a box of each other: each is still new."""
    tracker = FaceTracker()
    live = tracker.add_new([face(100, 100), face(180, 100)], 0.0)
    assert len(live) == 2
