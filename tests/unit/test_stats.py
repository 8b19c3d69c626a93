"""The running tally: distinct faces per period and since the start, in bounded memory."""

from __future__ import annotations

import tracemalloc

import numpy as np

from edge.stats import RunStats
from edge.types import Box, Face, Frame, FrameResult

GRAY = np.zeros((16, 16), np.uint8)


def result(index: int, track_ids: list[int]) -> FrameResult:
    faces = [Face(box=Box(0, 0, 10, 10), score=1.0, track_id=t, emotion="Happy")
             for t in track_ids]
    return FrameResult(Frame(gray=GRAY, index=index, timestamp=index / 30), faces)


def test_face_count_stays_right_with_overlapping_tracks() -> None:
    stats = RunStats(("Happy",))
    for index, ids in enumerate([[1], [1, 2], [2, 3], [3]]):
        stats.add(result(index, ids))
    first = stats.summary()
    assert first["faces"] == 3 and first["total"]["faces"] == 3
    for index, ids in enumerate([[3], [3, 4], [4]], start=4):  # 3 stays in view
        stats.add(result(index, ids))
    second = stats.summary()
    assert second["faces"] == 2  # distinct ids in this period: 3 and 4
    assert second["total"]["faces"] == 4  # since the start: 1, 2, 3, 4


def test_total_face_tally_does_not_grow_with_every_new_face() -> None:
    """A busy kiosk sees a new track id every few seconds for months."""
    stats = RunStats(("Happy",))
    frames = (result(i, [i + 1]) for i in range(30_000))
    batch = 10_000
    tracemalloc.start()
    try:
        for n, frame in enumerate(frames, start=1):
            stats.add(frame)
            if n == batch:
                stats.summary()  # the period starts over: only the total keeps growing
                before = tracemalloc.get_traced_memory()[0]
            if n % batch == 0 and n > batch:
                stats.summary()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert stats.total.as_dict(stats.labels)["faces"] == 30_000
    # 20,000 more ids: a set of them would hold ~1 MB; a count holds nothing.
    assert after - before < 200_000, after - before
