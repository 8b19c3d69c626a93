"""Stable face ids across frames: which detection is which person, and where their box is.

A tracked face's box comes from two places only: a detection near it every N
frames (`detect_near`), and in between its own landmarks (translation of their
centroid, scale of their spread), which cost nothing extra because landmarks run
every frame for blinks anyway. Full-frame scans add faces; they never move one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.types import Box, Detection


@dataclass
class Track:
    track_id: int
    box: Box
    score: float
    first_seen: float
    last_seen: float
    landmarks: np.ndarray | None = None

    def follow_landmarks(self, landmarks: np.ndarray) -> None:
        """Move the box with the landmarks between detections."""
        if self.landmarks is not None:
            old_c, new_c = self.landmarks.mean(axis=0), landmarks.mean(axis=0)
            old_s = float(self.landmarks.std(axis=0).mean())
            new_s = float(landmarks.std(axis=0).mean())
            scale = new_s / old_s if old_s > 1e-3 else 1.0
            scale = min(max(scale, 0.8), 1.25)  # one bad fit must not blow the box up
            cx = self.box.left + self.box.width / 2 + float(new_c[0] - old_c[0])
            cy = self.box.top + self.box.height / 2 + float(new_c[1] - old_c[1])
            w, h = self.box.width * scale, self.box.height * scale
            self.box = Box(round(cx - w / 2), round(cy - h / 2), round(w), round(h))
        self.landmarks = landmarks


KEEP_IOU = 0.75  # a re-found face this close to its followed box leaves the box as it is
# (0.6 and blending the two boxes were tried: each added a false or lost a true blink
# on the shared clips; docs/BENCHMARKS.md "Same results?")


class FaceTracker:
    """Greedy IoU matching of detections to tracks; tracks expire after `max_age` s."""

    def __init__(self, iou_threshold: float = 0.3, max_age: float = 1.0) -> None:
        self.iou_threshold = iou_threshold
        self.max_age = max_age
        self.tracks: dict[int, Track] = {}
        self._next_id = 1

    def update(self, detections: list[Detection], timestamp: float) -> list[Track]:
        """Match a fresh detection round; returns the live tracks."""
        pairs = sorted(
            ((det.box.iou(track.box), i, tid)
             for i, det in enumerate(detections) for tid, track in self.tracks.items()),
            reverse=True)
        used_dets: set[int] = set()
        used_tracks: set[int] = set()
        for iou, i, tid in pairs:
            if iou < self.iou_threshold:
                break
            if i in used_dets or tid in used_tracks:
                continue
            track = self.tracks[tid]
            # HOG boxes come in coarse steps of position and scale, and the landmark
            # model starts from the box it is given: snapping to every re-found box
            # would make the landmarks (and the eye aspect ratio and the face crop)
            # jump with them. The box followed by the landmarks is kept unless the
            # detector disagrees with it (it has drifted).
            box = track.box if iou >= KEEP_IOU else detections[i].box
            track.box, track.score = box, detections[i].score
            track.last_seen = timestamp
            used_dets.add(i)
            used_tracks.add(tid)
        for i, det in enumerate(detections):
            if i not in used_dets:
                self._new_track(det, timestamp)
        return self.expire(timestamp)

    def add_new(self, detections: list[Detection], timestamp: float) -> list[Track]:
        """Tracks for the faces a full-frame scan found that are not tracked yet.

        A scanned face over a live track keeps that track alive but never moves its
        box: tracked boxes come from `detect_near` and the landmarks alone, so when
        and how often the scan runs (motion gating, a scan beside the loop that
        reports frames later) cannot change a tracked face's landmarks, and with
        them its blinks and emotions. The face may have moved since the scanned
        frame: its centre within a box-size of a track's centre is that track
        (detect_near searches the same margin).
        """
        fresh = []
        for det in detections:
            cx, cy = det.box.left + det.box.width / 2, det.box.top + det.box.height / 2
            same = [t for t in self.tracks.values()
                    if abs(cx - (t.box.left + t.box.width / 2)) <= t.box.width
                    and abs(cy - (t.box.top + t.box.height / 2)) <= t.box.height]
            for track in same:
                track.last_seen = timestamp
            if not same:
                fresh.append(det)
        # Made after the loop: two new faces side by side are two people, not one.
        for det in fresh:
            self._new_track(det, timestamp)
        return self.expire(timestamp)

    def _new_track(self, det: Detection, timestamp: float) -> Track:
        track = Track(self._next_id, det.box, det.score, timestamp, timestamp)
        self.tracks[track.track_id] = track
        self._next_id += 1
        return track

    def expire(self, timestamp: float) -> list[Track]:
        for tid in [t for t, tr in self.tracks.items() if timestamp - tr.last_seen > self.max_age]:
            del self.tracks[tid]
        return list(self.tracks.values())
