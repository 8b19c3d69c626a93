"""`edge-run check`: every part of start-up, one line each, no pipeline run."""

from __future__ import annotations

from collections.abc import Iterator

from edge.config import Config
from edge.errors import SourceError


def run_checks(config: Config, open_camera: bool = True) -> Iterator[str]:
    """Yields 'ok: ...' lines; raises EdgeError with a one-line reason at the first problem."""
    from edge.build import build_source
    from edge.classify import EmotionClassifier
    from edge.faces import LandmarkPredictor, find_landmark_model

    yield "ok: config"
    classifier = EmotionClassifier(config.model_path(), threads=config.model.threads,
                                   mirror_average=config.mirror_average())
    yield (f"ok: model {config.model_path()} ({classifier.runtime}, "
           f"labels {', '.join(classifier.labels)})")
    yield f"ok: kernels {classifier.kernels}, {classifier.self_test}"
    landmark_path = find_landmark_model(config.model.landmarks or None)
    LandmarkPredictor(landmark_path)
    yield f"ok: landmarks {landmark_path}"
    if config.mqtt.enabled:
        from edge.sinks.mqtt import check_broker

        yield check_broker(config.mqtt)
    yield from _outputs(config)
    if not open_camera:
        return
    source = build_source(config)
    source.open()
    try:
        frame = source.read(timeout=5.0)
        if frame is None and source.finished:
            raise SourceError(f"{source.description}: no usable frame in the file")
        if frame is None:
            raise SourceError(f"{source.description}: opened but gave no frame in 5 s")
        width, height = frame.size
        yield f"ok: source {source.description} ({width}x{height})"
    finally:
        source.close()


def _outputs(config: Config) -> Iterator[str]:
    """Open each output the way `run` opens it, so a failure reads the same."""
    import contextlib

    from edge.build import open_frame_sinks
    from edge.sinks.jsonl import JsonlLog

    if config.log.path:
        JsonlLog(config.log.path).probe()  # opened and closed; a file made here is removed
        yield f"ok: event log {config.log.path}"
    else:
        yield "ok: no event log"
    with contextlib.ExitStack() as stack:
        open_frame_sinks(config, stack)  # the display and the snapshot folder, then closed
    if config.display.mode != "none":
        yield f"ok: display {config.display.mode}"
    if config.snapshots.dir:
        yield f"ok: snapshots {config.snapshots.dir}"
