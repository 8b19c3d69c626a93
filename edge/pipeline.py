"""One frame in, one FrameResult out: detect, track, landmarks, crop, classify, blinks.

Per-stage wall times go into `FrameResult.timings` so `edge-run bench` and the
status line measure the real loop, not a copy of it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from edge import events
from edge.align import align_face
from edge.blinks import BlinkDetector
from edge.config import BlinkConfig, DetectConfig
from edge.smoothing import EmotionSmoother
from edge.tracking import FaceTracker, Track
from edge.types import Box, Detection, Event, Face, Frame, FrameResult


class Detector(Protocol):
    def detect(self, image: np.ndarray) -> list[Detection]: ...
    def detect_near(self, image: np.ndarray, box: Box) -> list[Detection]: ...


class LandmarkModel(Protocol):
    def predict(self, image: np.ndarray, box: Box) -> np.ndarray: ...


class Classifier(Protocol):
    labels: tuple[str, ...]
    framing: dict[str, float]

    def predict(self, faces: np.ndarray) -> np.ndarray: ...


@dataclass
class FaceState:
    """What the pipeline remembers about one tracked face between frames."""

    smoother: EmotionSmoother
    blinks: BlinkDetector | None
    emotion: str | None = None


class Pipeline:
    def __init__(self, detector: Detector, landmarks: LandmarkModel, classifier: Classifier,
                 detect: DetectConfig, smoothing: float, blink: BlinkConfig) -> None:
        self.detector = detector
        self.landmarks = landmarks
        self.classifier = classifier
        self.detect = detect
        self.smoothing = smoothing
        self.blink = blink
        self.tracker = FaceTracker()
        self.labels = classifier.labels
        self.framing = classifier.framing
        self.states: dict[int, FaceState] = {}
        self._frames_seen = 0

    def process(self, frame: Frame) -> FrameResult:
        timings: dict[str, float] = {}
        found: list[Event] = []
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
            blink = self._update_blinks(self.states[track.track_id], face, frame)
            if blink is not None:
                found.append(blink)
            stage["landmarks"] += t1 - t0
            stage["crop"] += t2 - t1
            stage["blinks"] += clock() - t2
            faces.append(face)
        timings.update(stage)

        t0 = clock()
        if crops:
            probabilities = self.classifier.predict(np.stack(crops))
            for face, probs in zip(faces, probabilities):
                change = self._update_emotion(self.states[face.track_id], face, probs, frame)
                if change is not None:
                    found.append(change)
        timings["classify"] = clock() - t0
        return FrameResult(frame=frame, faces=faces, events=found, timings=timings)

    def _detect_or_track(self, frame: Frame) -> list[Track]:
        """Full-frame scan every `scan_every` frames (new faces); in between, every
        `every` frames re-find each tracked face near its box; else track only."""
        n, detect = self._frames_seen, self.detect
        if not self.tracker.tracks or n % detect.scan_every == 0:
            detections = self.detector.detect(frame.gray)[: detect.max_faces]
        elif n % detect.every == 0:
            detections = [found for track in list(self.tracker.tracks.values())
                          for found in self.detector.detect_near(frame.gray, track.box)[:1]]
        else:
            return self._sync_states(self.tracker.expire(frame.timestamp))
        return self._sync_states(self.tracker.update(detections, frame.timestamp))

    def _sync_states(self, tracks: list[Track]) -> list[Track]:
        """A state for each new track; a lost track's state goes with it (ids are not reused)."""
        live = {track.track_id for track in tracks}
        for track_id in [t for t in self.states if t not in live]:
            del self.states[track_id]
        for track_id in live - self.states.keys():
            self.states[track_id] = FaceState(
                EmotionSmoother(self.smoothing),
                BlinkDetector(self.blink) if self.blink.enabled else None)
        return tracks

    def _update_blinks(self, state: FaceState, face: Face, frame: Frame) -> Event | None:
        detector = state.blinks
        if detector is None or face.landmarks is None:
            return None
        blink = detector.observe(frame.timestamp, frame.index, frame.gray, face.landmarks)
        face.ear = detector.ear
        face.eyes_closed = detector.closed
        face.blinks = detector.count
        if blink is None:
            return None
        return events.blink(face.track_id, start_frame=blink.start_frame,
                            duration=blink.duration, face_blinks=detector.count,
                            face_rate_per_min=detector.rate_per_minute(frame.timestamp),
                            detected_frame=frame.index, score=blink.score)

    def _update_emotion(self, state: FaceState, face: Face, probs: np.ndarray,
                        frame: Frame) -> Event | None:
        face.probabilities = state.smoother.update(probs, frame.timestamp)
        emotion = self.labels[int(np.argmax(face.probabilities))]
        face.emotion = emotion
        if emotion == state.emotion:
            return None
        previous, state.emotion = state.emotion, emotion
        return events.emotion(frame.index, face.track_id, emotion, previous, self.labels,
                              face.probabilities)
