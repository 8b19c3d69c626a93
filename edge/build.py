"""Config -> the running parts: source, pipeline and sinks. The one assembler.

`edge-run run`, `check`, `bench` and the soak test all build through here, so
what they exercise is what the service runs. Everything opened is owned by the
returned `Parts`: closing it (or leaving its `with`) closes the sinks, the pipeline's
scan helper and then the source, and a failure half-way closes whatever was already
open. The source opens first: a missing camera costs no model load.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from edge.classify import EmotionClassifier
from edge.config import DEFAULT_CLIP, Config
from edge.errors import ModelError
from edge.faces import FaceDetector, LandmarkPredictor, find_landmark_model
from edge.pipeline import Pipeline
from edge.scan_worker import ScanWorker
from edge.sinks import EventSink, FrameSink
from edge.sources import Source, open_source


def build_pipeline(config: Config, live: bool = False) -> Pipeline:
    """Model, landmarks and detector: the slow, fallible part of start-up.

    `live`: frames come from a camera, so a late background scan must not hold one up.
    """
    classifier = EmotionClassifier(config.model_path(), threads=config.model.threads,
                                   mirror_average=config.mirror_average())
    landmarks = LandmarkPredictor(find_landmark_model(config.model.landmarks or None))
    # The scan beside the loop runs in a helper process at a lower priority
    # (edge/scan_worker.py); started now, it loads dlib while the models load here.
    scan_detector = ScanWorker(config.detect) \
        if config.detect.scan_lag > 0 and config.detect.scan_process else None
    return Pipeline(FaceDetector(config.detect), landmarks, classifier, config.detect,
                    smoothing=config.model.smoothing, blink=config.blink, live=live,
                    scan_detector=scan_detector)


def require_model_files(config: Config) -> None:
    """Both model files are there (loading them is build_pipeline's, after the source)."""
    model = config.model_path()
    if not model.exists():
        raise ModelError(f"{model}: model file not found")  # as EmotionClassifier says
    find_landmark_model(config.model.landmarks or None)


def build_source(config: Config) -> Source:
    """The source, not yet opened."""
    s = config.source
    return open_source(s.input or str(DEFAULT_CLIP), width=s.width, height=s.height, fps=s.fps,
                       keep_color=config.display.mode != "none" or bool(config.snapshots.dir),
                       loop=s.loop, realtime=s.realtime, retry_initial=s.retry_initial,
                       retry_max=s.retry_max)


def open_event_sinks(config: Config, stack: contextlib.ExitStack) -> list[EventSink]:
    """The configured event outputs, opened; `stack` closes them."""
    sinks: list[EventSink] = []
    if config.log.path:
        from edge.sinks.jsonl import JsonlLog

        log = JsonlLog(config.log.path, config.log.max_bytes, config.log.backups)
        sinks.append(stack.enter_context(log))
    if config.mqtt.enabled:  # paho is imported (and needed) only then
        from edge.sinks.mqtt import MqttSink

        sinks.append(stack.enter_context(MqttSink(config.mqtt)))
    return sinks


def open_frame_sinks(config: Config, stack: contextlib.ExitStack) -> list[FrameSink]:
    """The configured picture outputs, opened; `stack` closes them."""
    sinks: list[FrameSink] = []
    from edge.sinks.display import open_display

    display = open_display(config.display.mode, config.display.framebuffer)
    if display is not None:
        stack.callback(display.close)
        sinks.append(display)
    if config.snapshots.dir:
        from edge.sinks.snapshots import SnapshotWriter

        sinks.append(SnapshotWriter(config.snapshots.dir, config.snapshots.every))
    return sinks


@dataclass
class Parts:
    """Everything a run needs, opened; a context manager that closes it all."""

    config: Config
    source: Source
    pipeline: Pipeline
    events: list[EventSink] = field(default_factory=list)
    frames: list[FrameSink] = field(default_factory=list)
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def __enter__(self) -> Parts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.stack.close()


def build(config: Config, extra_events: Iterable[EventSink] = (), sinks: bool = True,
          live: bool | None = None) -> Parts:
    """Open the pipeline, the source and (with `sinks`) every configured output.

    `extra_events` are sinks the caller made (the console); they are closed too.
    `live` (default: whether the source is a camera) is build_pipeline's.
    """
    source = build_source(config)
    require_model_files(config)  # a wrong path needs a person, not a restart: say it first
    with contextlib.ExitStack() as stack:
        # The source opens before the models load: a camera that is not there fails in
        # milliseconds, not after a second of loading (several on a Pi), and a service
        # restarted every RestartSec while it stays unplugged loads nothing.
        source.open()
        stack.callback(source.close)  # closed last: sinks may still report on it
        pipeline = build_pipeline(config, source.live if live is None else live)
        stack.callback(pipeline.close)  # its scan thread and helper process
        events = open_event_sinks(config, stack) if sinks else []
        for sink in extra_events:
            stack.callback(sink.close)
            events.append(sink)
        frames = open_frame_sinks(config, stack) if sinks else []
        return Parts(config, source, pipeline, events, frames, stack.pop_all())
