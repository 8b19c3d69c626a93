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
from edge.motion import MotionGate
from edge.scan import BackgroundScan, ScanSchedule
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
    # Motion gating and the scan beside the loop (edge/motion.py, edge/scan.py).
    # motion=False and scan_lag=0 is the loop as it was before them.
    motion: bool = True
    motion_threshold: float = 12.0  # thumbnail gray levels
    motion_area: float = 0.003  # share of the frame
    idle_scan: float = 2.0  # seconds: scan at least this often, moving or not
    scan_lag: int = 2  # frames from starting a scan to using it; 0: on the loop's thread


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
        self.gate = MotionGate(options.motion_threshold, options.motion_area) \
            if options.motion else None
        self.schedule = ScanSchedule(options.scan_every, options.idle_scan, options.motion)
        self.scanner: BackgroundScan | None = None
        if options.scan_lag > 0:
            # Its own detector: a dlib detector must not run on two threads at once.
            scan_detector = detector.clone()
            self.scanner = BackgroundScan(
                lambda gray: scan_detector.detect(gray)[: options.max_faces], options.scan_lag)

    def close(self) -> None:
        """Stop the scan thread (a daemon: a run that ends without this loses nothing)."""
        if self.scanner is not None:
            self.scanner.close()

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
                blink = track.blink.update(frame.timestamp, face.ear, frame.index)
                face.eyes_closed = track.blink.closed
                face.blinks = track.blink.count
                if blink is not None:
                    events.append(Event("blink", frame=blink.start_frame, face=track.track_id,
                                        data={"duration_s": round(blink.duration, 3),
                                              "face_blinks": track.blink.count,
                                              "face_rate_per_min": round(
                                                  track.blink.rate_per_minute(frame.timestamp), 1),
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

    def _scan(self, gray: np.ndarray) -> list[Face]:
        return self.detector.detect(gray)[: self.options.max_faces]

    def _detect_or_track(self, frame: Frame) -> list[Track]:
        """New faces from full-frame scans (see ScanSchedule for when); tracked faces
        re-found near their boxes every `detect_every` frames, followed by their
        landmarks in between."""
        n, options, tracker = self._frames_seen, self.options, self.tracker
        tracked = bool(tracker.tracks)
        moving = True
        if self.gate is not None:
            self.gate.update(frame.gray, frame.timestamp)
            moving = self.gate.moving(t.box for t in tracker.tracks.values())
        scanner = self.scanner
        if scanner is not None and scanner.due(n):
            tracker.add_new(scanner.collect(), frame.timestamp)
            tracked = bool(tracker.tracks)
        if not (scanner is not None and scanner.busy) and self.schedule.should_scan(
                n, frame.timestamp, tracked, moving):
            self.schedule.started(frame.timestamp)
            if scanner is None or n == 0:
                # On the loop's thread: as configured, or the very first frame
                # (nothing is on screen yet to stall, and a face there is found at once).
                return tracker.update(self._scan(frame.gray), frame.timestamp)
            scanner.start(frame.gray, n)
        if tracker.tracks and n % options.detect_every == 0:
            detections = [face for track in list(tracker.tracks.values())
                          for face in self.detector.detect_near(frame.gray, track.box)[:1]]
            return tracker.update(detections, frame.timestamp)
        return tracker.expire(frame.timestamp)

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
