"""One frame in, one FrameResult out: detect, track, landmarks, crop, classify, blinks.

Per-stage wall times go into `FrameResult.timings` so `edge-run bench` and the
status line measure the real loop, not a copy of it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge.align import align_face
from edge.faces import mean_ear
from edge.tracking import FaceTracker, Track
from edge.types import Event, Face, Frame, FrameResult


@dataclass(frozen=True)
class PipelineOptions:
    detect_every: int = 3
    scan_every: int = 15  # full-frame detection (finds new faces); 3 = the old behaviour
    max_faces: int = 4
    smoothing: float = 0.5  # seconds
    track_max_age: float = 1.0  # seconds a face may go undetected before its id ends
    blinks: bool = True


class Pipeline:
    def __init__(self, detector: Any, landmarks: Any, classifier: Any,
                 options: PipelineOptions,
                 blink_factory: Callable[[], Any] | None = None) -> None:
        self.detector = detector
        self.landmarks = landmarks
        self.classifier = classifier
        self.options = options
        self.tracker = FaceTracker(max_age=options.track_max_age,
                                   state_factory=blink_factory if options.blinks else None)
        self.labels = classifier.labels
        self.framing = classifier.sidecar.framing
        self._frames_seen = 0

    def process(self, frame: Frame) -> FrameResult:
        timings: dict[str, float] = {}
        events: list[Event] = []
        clock = time.perf_counter

        start = clock()
        tracks = self._detect_or_track(frame)
        self._frames_seen += 1
        timings["detect"] = clock() - start

        faces: list[Face] = []
        crops: list[np.ndarray] = []
        stage = {"landmarks": 0.0, "crop": 0.0, "blinks": 0.0}
        for track in tracks:
            t0 = clock()
            points = self.landmarks.predict(frame.gray, track.box)
            track.follow_landmarks(points)
            t1 = clock()
            crops.append(align_face(frame.gray, points, framing=self.framing))
            t2 = clock()
            face = Face(box=track.box, score=track.score, track_id=track.track_id,
                        landmarks=points)
            if track.blink is not None:
                face.ear = mean_ear(points)
                blink = track.blink.observe(frame.timestamp, frame.index, frame.gray, points)
                face.eyes_closed = track.blink.closed
                face.blinks = track.blink.count
                if blink is not None:
                    events.append(Event("blink", frame=blink.start_frame, face=track.track_id,
                                        data={"duration_s": round(blink.duration, 3),
                                              "face_blinks": track.blink.count,
                                              "face_rate_per_min": round(
                                                  track.blink.rate_per_minute(frame.timestamp), 1),
                                              "score": round(blink.score, 1),
                                              "detected_frame": frame.index}))
            stage["landmarks"] += t1 - t0
            stage["crop"] += t2 - t1
            stage["blinks"] += clock() - t2
            faces.append(face)
        timings.update(stage)

        t0 = clock()
        if crops:
            probabilities = self.classifier.predict(np.stack(crops))
            for track, face, probs in zip(tracks, faces, probabilities):
                events.extend(self._update_emotion(track, face, probs, frame))
        timings["classify"] = clock() - t0
        return FrameResult(frame=frame, faces=faces, events=events, timings=timings)

    def _detect_or_track(self, frame: Frame) -> list[Track]:
        """Full-frame scan every `scan_every` frames (new faces); in between, every
        `detect_every` frames re-find each tracked face near its box; else track only."""
        n, options = self._frames_seen, self.options
        if not self.tracker.tracks or n % options.scan_every == 0:
            detections = self.detector.detect(frame.gray)[: options.max_faces]
        elif n % options.detect_every == 0:
            detections = [face for track in list(self.tracker.tracks.values())
                          for face in self.detector.detect_near(frame.gray, track.box)[:1]]
        else:
            return self.tracker.expire(frame.timestamp)
        return self.tracker.update(detections, frame.timestamp)

    def _update_emotion(self, track: Track, face: Face, probs: np.ndarray,
                        frame: Frame) -> list[Event]:
        track.smooth(probs, frame.timestamp, self.options.smoothing)
        face.probabilities = track.probabilities
        emotion = self.labels[int(np.argmax(track.probabilities))]
        face.emotion = emotion
        if emotion == track.emotion:
            return []
        previous, track.emotion = track.emotion, emotion
        scores = {label: round(float(p), 3) for label, p in zip(self.labels, track.probabilities)}
        return [Event("emotion", frame=frame.index, face=track.track_id,
                      data={"emotion": emotion, "previous": previous, "scores": scores})]
