"""The run loop: source -> pipeline -> events, summaries, display, systemd notify.

Owns everything with a lifetime: the source, the event log, the display and
the signal handlers. SIGTERM/SIGINT end the loop at the next frame; the final
summary and the `stop` line are written and synced before the process exits.
"""

from __future__ import annotations

import functools
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import asdict
from types import FrameType
from typing import Any

from edge import __version__
from edge.blinks import BlinkDetector
from edge.classify import EmotionClassifier, sha256_of
from edge.config import DEFAULT_CLIP, Config
from edge.displays import open_display
from edge.draw import annotate
from edge.eventlog import JsonlLog
from edge.faces import FaceDetector, LandmarkPredictor, find_landmark_model
from edge.mqtt import MqttSink
from edge.notify import SystemdNotifier
from edge.pipeline import Pipeline, PipelineOptions
from edge.snapshots import SnapshotWriter
from edge.sources import Source, open_source
from edge.stats import RunStats
from edge.types import Event, FrameResult

log = logging.getLogger("edge.run")
STATUS_EVERY = 5.0  # seconds between systemd STATUS= updates
ERROR_EVENT_EVERY = 10.0  # at most one `error` line per kind of failure per this many s


def build_pipeline(config: Config) -> Pipeline:
    """Model, landmarks and detector from the config: the slow, fallible part of start-up."""
    classifier = EmotionClassifier(config.model_path(), threads=config.model.threads,
                                   mirror_average=config.mirror_average())
    landmarks = LandmarkPredictor(find_landmark_model(config.model.landmarks or None))
    d = config.detect
    detector = FaceDetector(detect_width=d.width, upsample=d.upsample, threshold=d.threshold,
                            min_face=d.min_face)
    options = PipelineOptions(detect_every=d.every, scan_every=d.scan_every,
                              max_faces=d.max_faces,
                              smoothing=config.model.smoothing, blinks=config.blink.enabled)
    b = config.blink
    return Pipeline(detector, landmarks, classifier, options, blink_factory=functools.partial(
        BlinkDetector, close_ratio=b.close_ratio, open_ratio=b.open_ratio,
        close_sigma=b.close_sigma, open_sigma=b.open_sigma, appearance=b.appearance,
        min_duration=b.min_duration, max_duration=b.max_duration))


def build_source(config: Config) -> Source:
    s = config.source
    return open_source(s.input or str(DEFAULT_CLIP), width=s.width, height=s.height, fps=s.fps,
                       keep_color=config.display.mode != "none" or bool(config.snapshots.dir),
                       loop=s.loop, realtime=s.realtime, retry_initial=s.retry_initial,
                       retry_max=s.retry_max)


class Runner:
    def __init__(self, config: Config, echo: Callable[[str], None] = print,
                 quiet: bool = False, verbose: bool = False,
                 on_result: Callable[[FrameResult], None] | None = None) -> None:
        self.config = config
        self.on_result = on_result  # benchmarks and soak tests watch the real loop here
        self.echo = echo
        self.quiet, self.verbose = quiet, verbose
        self.stop_reason: str | None = None
        self.notifier = SystemdNotifier()
        self._last_error_event: dict[str, float] = {}
        self.log: JsonlLog | None = None
        self.mqtt: MqttSink | None = None

    # -- signals -----------------------------------------------------------
    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.stop_reason = signal.Signals(signum).name
        self.notifier.stopping()

    def _install_signal_handlers(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)

    # -- events ------------------------------------------------------------
    def _emit(self, event: Event) -> None:
        if self.log is not None:
            self.log.write(event)
        if self.mqtt is not None:
            self.mqtt.write(event)  # queues only: never waits for the network
        if self.verbose:
            self.echo(f"{event.kind} frame={event.frame} face={event.face} {event.data}")

    def _error(self, kind: str, message: str, frame: int | None = None) -> None:
        log.error("%s", message)
        now = time.monotonic()
        if now - self._last_error_event.get(kind, -1e9) >= ERROR_EVENT_EVERY:
            self._last_error_event[kind] = now
            self._emit(Event("error", frame=frame, data={"kind": kind, "message": message}))

    def _summary(self, stats: RunStats, final: bool = False) -> None:
        data = stats.summary()
        data["final"] = final
        self._emit(Event("summary", data=data))
        if self.log is not None:
            self.log.sync()
        if self.mqtt is not None:
            self.mqtt.sync()
        if not self.quiet:
            self.echo(format_summary(data))

    # -- the loop ----------------------------------------------------------
    def run(self) -> int:
        started = time.monotonic()
        config = self.config
        pipeline = build_pipeline(config)
        source = build_source(config)
        source.open()
        display = snapshots = None
        try:
            self.log = JsonlLog(config.log.path, config.log.max_bytes, config.log.backups
                                ).open() if config.log.path else None
            if config.mqtt.enabled:  # paho is imported (and needed) only then
                self.mqtt = MqttSink(config.mqtt).open()
            display = open_display(config.display.mode, config.display.framebuffer)
            snapshots = SnapshotWriter(config.snapshots.dir, config.snapshots.every
                                       ) if config.snapshots.dir else None
            self._install_signal_handlers()
            self._emit(Event("start", data={
                "version": __version__, "source": source.description,
                "model": str(config.model_path()),
                "model_sha256": sha256_of(config.model_path()),
                "runtime": pipeline.classifier.runtime, "labels": list(pipeline.labels),
                "config": asdict(config)}))
            self._loop(source, pipeline, display, snapshots, started)
        finally:
            source.close()
            if display is not None:
                display.close()
            if self.mqtt is not None:
                self.mqtt.close()  # at most ~2 s draining; the rest stays queued on disk
            if self.log is not None:
                self.log.close()
        return 0

    def _loop(self, source: Source, pipeline: Pipeline, display: Any,
              snapshots: SnapshotWriter | None, started: float) -> None:
        stats = RunStats(pipeline.labels)
        max_frames = self.config.source.max_frames
        first_result: float | None = None
        last_status = 0.0
        frames = 0
        while self.stop_reason is None:
            for problem in source.drain_problems():
                self._error("source", problem)
            frame = source.read(timeout=0.5)
            if frame is None:
                if source.finished:
                    self.stop_reason = "end of input"
                continue  # no frame: no watchdog ping, so systemd sees a stalled camera
            try:
                result = pipeline.process(frame)
            except Exception as exc:  # one odd frame must not end a months-long run
                self._error("frame", f"frame {frame.index} skipped: {exc!r}", frame.index)
                continue
            frames += 1
            if first_result is None:
                first_result = time.monotonic() - started
                self.notifier.ready()
            stats.add(result)
            if self.on_result is not None:
                self.on_result(result)
            for event in result.events:
                self._emit(event)
            self._show(result, stats, display, snapshots)
            self.notifier.watchdog()
            now = time.monotonic()
            if now - last_status >= STATUS_EVERY:
                last_status = now
                self.notifier.status(f"{stats.total.fps(now):.1f} fps, "
                                     f"{len(result.faces)} faces")
            if stats.period_age() >= self.config.log.summary_every:
                self._summary(stats)
            if max_frames and frames >= max_frames:
                self.stop_reason = "max frames"
        self._summary(stats, final=True)
        self._emit(Event("stop", data={
            "reason": self.stop_reason, "frames": frames,
            "seconds": round(time.monotonic() - started, 3),
            "first_result_s": None if first_result is None else round(first_result, 3)}))

    def _show(self, result: FrameResult, stats: RunStats, display: Any,
              snapshots: SnapshotWriter | None) -> None:
        if display is None and snapshots is None:
            return
        picture = annotate(result, stats.labels, stats.total.blinks, stats.total.fps())
        if display is not None and not display.show(picture):
            self.stop_reason = "display closed"
        if snapshots is not None:
            try:
                snapshots.maybe_write(picture, result)
            except OSError as exc:
                self._error("snapshot", f"snapshot not written: {exc.strerror or exc}")


def format_summary(data: dict[str, Any]) -> str:
    total = data["total"]
    observed = sum(total["counts"].values()) or 1
    top = sorted(total["counts"].items(), key=lambda kv: -kv[1])[:3]
    mix = ", ".join(f"{k} {100 * v / observed:.0f}%" for k, v in top if v)
    head = "final" if data.get("final") else "summary"
    return (f"{head}: {total['frames']} frames in {total['seconds']:.1f}s "
            f"({data['fps']:.1f} fps now), faces {total['faces']}, blinks {total['blinks']} "
            f"({total['blink_rate_per_min']:.1f}/min){', ' + mix if mix else ''}")

