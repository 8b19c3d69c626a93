"""One frame in, one FrameResult out: detect, track, landmarks, crop, classify, blinks.

Per-stage wall times go into `FrameResult.timings` so `edge-run bench` and the
status line measure the real loop, not a copy of it.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from edge import events
from edge.align import align_face
from edge.blinks import BlinkDetector
from edge.config import BlinkConfig, DetectConfig
from edge.motion import MotionGate
from edge.scan import BackgroundScan, ScanSchedule
from edge.smoothing import EmotionSmoother
from edge.tracking import FaceTracker, Track
from edge.types import Box, Detection, Event, Face, Frame, FrameResult

MAX_AGE = 1.0  # seconds a tracked face lives without being re-found (longer at low fps)


class Detector(Protocol):
    def detect(self, image: np.ndarray) -> list[Detection]: ...
    def detect_near(self, image: np.ndarray, box: Box) -> list[Detection]: ...
    def clone(self) -> Detector: ...  # its own state, for the scan thread


class ScanDetector(Protocol):
    """What the scan thread calls: a `Detector.clone()`, or edge.scan_worker's process."""

    def detect(self, image: np.ndarray) -> list[Detection]: ...


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
                 detect: DetectConfig, smoothing: float, blink: BlinkConfig,
                 live: bool = False, scan_detector: ScanDetector | None = None) -> None:
        self.detector = detector
        self.live = live
        self._loop_idles = False  # the loop calls `idle` between frames (Runner.run does)
        self.landmarks = landmarks
        self.classifier = classifier
        self.detect = detect
        self.smoothing = smoothing
        self.blink = blink
        self.tracker = FaceTracker(max_age=MAX_AGE)
        self._last_timestamp: float | None = None
        self.labels = classifier.labels
        self.framing = classifier.framing
        self.states: dict[int, FaceState] = {}
        self._frames_seen = 0
        # Re-finding tracked faces near their boxes (every `every` frames) is searched on
        # frame n's picture after frame n's events are out (`idle`), and its faces are
        # matched at frame n+1: a frame's result never waits for that HOG call.
        self._refind: tuple[np.ndarray, float] | None = None  # (picture, its time)
        self._refound: tuple[list[Detection], float] | None = None
        self._scan_job: tuple[np.ndarray, int] | None = None  # started in `idle` too
        # Motion gating and the scan beside the loop (edge/motion.py, edge/scan.py);
        # motion = false with scan_lag = 0: no gating, every scan on the loop's thread.
        self.gate = MotionGate(detect.motion_threshold, detect.motion_area) \
            if detect.motion else None
        self.schedule = ScanSchedule(detect.scan_every, detect.idle_scan, detect.motion,
                                     detect.still_scan)
        self.scanner: BackgroundScan | None = None
        self.scan_detector: ScanDetector | None = None
        if detect.scan_lag > 0:
            # Its own detector: a dlib detector must not run on two threads at once. Made
            # now: loading dlib's model holds the GIL for ~0.2 s, which on the scan
            # thread would stall the loop. edge.build gives the helper process instead.
            self.scan_detector = scan_detector or detector.clone()
            # From a camera (`live`) a late scan delays a new face, never a frame.
            self.scanner = BackgroundScan(self._scan, detect.scan_lag, wait=not live)

    def _scan(self, gray: np.ndarray) -> list[Detection]:
        """The full-frame scan, on the scan thread."""
        assert self.scan_detector is not None
        return self.scan_detector.detect(gray)[: self.detect.max_faces]

    def close(self) -> None:
        """Stop the scan thread, then its process (a daemon thread, a child that exits when
        its pipe closes: a run that ends without this loses nothing)."""
        self._resume_scan()  # held by a frame that had no idle after it: let it finish
        if self.scanner is not None:
            self.scanner.close()
        close = getattr(self.scan_detector, "close", None)
        if close is not None:
            close()

    def process(self, frame: Frame) -> FrameResult:
        # From a camera, in a loop that calls `idle` between frames, a scan process that
        # shares the loop's one core is stopped from here to that `idle`: it scans while
        # the loop waits for the camera (edge/scan_worker.py). Resuming it any earlier
        # lets the kernel hand it a 4 ms tick before this frame's events are out. Never
        # from a file: the loop may have to wait for that scan within a frame.
        if self.live and self._loop_idles and hasattr(self.scan_detector, "pause"):
            self.scan_detector.pause()
        timings: dict[str, float] = {}
        found: list[Event] = []
        clock = time.perf_counter

        start = clock()
        frame_number = self._frames_seen
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
        if tracks and frame_number % self.detect.every == 0:
            self._refind = (frame.gray, frame.timestamp)
        return FrameResult(frame=frame, faces=faces, events=found, timings=timings)

    def idle(self) -> None:
        """Work for the next frame, done while the loop waits for it: re-find the tracked
        faces near their boxes in the last frame's picture. `process` does it first if
        nobody called this, with the same result: only when it runs differs. A scan due
        to start beside the loop starts here too, so that on a shared core its thread
        begins in the loop's idle time instead of competing with the frame that asked;
        and a scan process held for the frame goes on (`process`)."""
        self._loop_idles = True
        try:
            self._between_frames()
        finally:
            self._resume_scan()

    def _resume_scan(self) -> None:
        """Let a scan process that `process` stopped go on (a scan thread has no pause)."""
        resume = getattr(self.scan_detector, "resume", None)
        if resume is not None:
            resume()

    def _between_frames(self) -> None:
        if self._refind is not None:  # the tracks are as that frame left them
            gray, timestamp = self._refind
            self._refind = None
            self._refound = ([found for track in self.tracker.tracks.values()
                              for found in self.detector.detect_near(gray, track.box)[:1]],
                             timestamp)
        if self._scan_job is not None and self.scanner is not None:
            gray, index = self._scan_job
            self._scan_job = None
            self.scanner.start(gray, index)  # collected at index + scan_lag, as ever

    def _detect_or_track(self, frame: Frame) -> list[Track]:
        """Tracked faces: re-found near their boxes every `every` frames (searched in
        `idle` after the frame, matched here), followed by their landmarks in between.
        New faces: from full-frame scans when ScanSchedule says so, on the loop's thread
        or beside it (`scan_lag`). A scan adds faces and never moves a tracked one, so
        whether and when it runs cannot change a tracked face's landmarks, blinks or
        emotions."""
        n, detect, tracker = self._frames_seen, self.detect, self.tracker
        if self._last_timestamp is not None and frame.timestamp > self._last_timestamp:
            # A track lives on its re-finds, one every `every` frames: at a low frame rate
            # (a slow device, `fps = 2`) they are further apart than MAX_AGE, and every
            # face would lose its id, blink count and smoothing between two of them.
            interval = frame.timestamp - self._last_timestamp
            tracker.max_age = max(MAX_AGE, (detect.every + 1) * interval)
        self._last_timestamp = frame.timestamp
        self._between_frames()  # if the loop did not call idle, before this frame
        if self._refound is not None:
            detections, searched_at = self._refound
            self._refound = None
            tracker.update(detections, searched_at)
        moving, changed = True, None
        if self.gate is not None and (not tracker.tracks or n % detect.scan_every == 0):
            # Asked every frame while nothing is tracked; with faces, only on the frames
            # where a scan may start (that also keeps the background current).
            self.gate.update(frame.gray, frame.timestamp)
            people = [track.box for track in tracker.tracks.values()]
            moving = self.gate.moving(people)
            changed = functools.partial(self.gate.changed_since_scan, people)
        scanner = self.scanner
        if scanner is not None and scanner.due(n):
            tracker.add_new(scanner.collect(), frame.timestamp)
        if not (scanner is not None and scanner.busy) and self.schedule.should_scan(
                n, frame.timestamp, bool(tracker.tracks), moving, changed):
            self.schedule.started(frame.timestamp)
            if self.gate is not None:
                self.gate.scanned()
            if scanner is None or n == 0:
                # On the loop's thread: as configured, or the very first frame
                # (nothing is on screen yet to stall, and a face there is found at once).
                tracker.add_new(self.detector.detect(frame.gray)[: detect.max_faces],
                                frame.timestamp)
            else:
                self._scan_job = (frame.gray, n)  # started in `idle`, after this frame
        return self._sync_states(tracker.expire(frame.timestamp))

    def _sync_states(self, tracks: list[Track]) -> list[Track]:
        """A state for each new track; a lost track's state goes with it (ids are not reused)."""
        live = {track.track_id for track in tracks}
        lost = [t for t in self.states if t not in live]
        for track_id in lost:
            del self.states[track_id]
        if lost and self.gate is not None:
            # The last scan saw a face that is gone now: if that person is still there,
            # sitting still, the next idle scan must not wait for the picture to change.
            self.gate.forget_scan()
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
