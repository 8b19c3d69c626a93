"""The run loop: frames from the source through the pipeline to the sinks.

The runner owns the loop and what lives for its length: signal handlers, the
systemd notifier, the running statistics and the rate limit on error lines. The
parts themselves (source, pipeline, sinks) come opened from `edge.build`.
SIGTERM/SIGINT end the loop at the next frame; the final summary and the `stop`
line are written and synced before the process exits.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from dataclasses import asdict
from types import FrameType

from edge import __version__, events
from edge.build import Parts
from edge.classify import sha256_of
from edge.errors import SourceError
from edge.notify import SystemdNotifier
from edge.sinks.annotate import annotate
from edge.sources import public_name
from edge.stats import RunStats
from edge.types import Event, FrameResult

log = logging.getLogger("edge.run")
STATUS_EVERY = 5.0  # seconds between systemd STATUS= updates
ERROR_EVENT_EVERY = 10.0  # at most one `error` line per kind of failure per this many s
READ_TIMEOUT = 0.5  # seconds step() waits for a frame


class Runner:
    def __init__(self, parts: Parts, notifier: SystemdNotifier | None = None,
                 on_result: Callable[[FrameResult], None] | None = None,
                 started: float | None = None) -> None:
        self.parts = parts
        self.config = parts.config
        self.notifier = notifier or SystemdNotifier()
        self.on_result = on_result  # the soak test watches the real loop here
        self.stats = RunStats(parts.pipeline.labels)
        self.stop_reason: str | None = None
        self.frames = 0
        # time.monotonic() when start-up began (before loading the model), so that
        # `first_result_s` in the stop line is what a user waits for.
        self.started = time.monotonic() if started is None else started
        self.first_result: float | None = None
        self._last_status = 0.0
        self._last_error_event: dict[str, float] = {}

    # -- signals -----------------------------------------------------------
    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.stop_reason = signal.Signals(signum).name
        self.notifier.stopping()

    def _install_signal_handlers(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)

    # -- events ------------------------------------------------------------
    def emit(self, event: Event) -> None:
        for sink in self.parts.events:
            sink.write(event)

    def _error(self, kind: str, message: str, frame: int | None = None,
               level: int = logging.ERROR, key: str = "") -> None:
        log.log(level, "%s", message)
        # Rate-limited per kind and key: failed retries still reach the log while the
        # outage lasts, and a reconnect is never swallowed by the failures before it.
        now = time.monotonic()
        if now - self._last_error_event.get(f"{kind}/{key}", -1e9) >= ERROR_EVENT_EVERY:
            self._last_error_event[f"{kind}/{key}"] = now
            self.emit(events.error(kind, message, frame))

    def _summary(self, final: bool = False) -> None:
        self.emit(events.summary(self.stats.summary(), final))
        for sink in self.parts.events:
            sink.sync()

    # -- the loop ----------------------------------------------------------
    def run(self) -> int:
        """Loop until a signal, the end of the input or max_frames; then the final lines."""
        parts = self.parts
        self._install_signal_handlers()
        config = asdict(self.config)  # as run, but a stream URL's secrets stay out of logs
        config["source"]["input"] = public_name(config["source"]["input"])
        self.emit(events.start(
            version=__version__, source=parts.source.description,
            model=str(self.config.model_path()), model_sha256=sha256_of(self.config.model_path()),
            runtime=parts.pipeline.classifier.runtime, labels=parts.pipeline.labels,
            kernels=parts.pipeline.classifier.kernels,
            self_test=parts.pipeline.classifier.self_test, config=config))
        while self.stop_reason is None:
            self.step()
            self.idle()
        self.finish()
        if self.frames == 0 and parts.source.finished:  # logged (start, summary, stop)
            raise SourceError(f"{parts.source.description}: no usable frame in the file")
        return 0

    def step(self) -> FrameResult | None:
        """One frame through the pipeline and the sinks; None when no frame came.

        `result.timings` gets `decode` (waiting for and converting the frame) and
        `sinks` (events, statistics and pictures) beside the pipeline's stages.
        """
        clock = time.perf_counter
        source = self.parts.source
        for problem in source.drain_problems():
            self._error("source", str(problem), level=getattr(problem, "level", logging.ERROR),
                        key=getattr(problem, "key", ""))
        t0 = clock()
        frame = source.read(timeout=READ_TIMEOUT)
        t1 = clock()
        if frame is None:
            if source.finished:
                self.stop_reason = "end of input"
            elif self.stats.period_age() >= self.config.log.summary_every:
                self._summary()  # an outage still reports, with 0 frames
            return None  # no frame: no watchdog ping, so systemd sees a stalled camera
        try:
            result = self.parts.pipeline.process(frame)
        except Exception as exc:  # one odd frame must not end a months-long run
            self._error("frame", f"frame {frame.index} skipped: {exc!r}", frame.index)
            return None
        t2 = clock()
        self.frames += 1
        if self.first_result is None:
            self.first_result = time.monotonic() - self.started
            self.notifier.ready()
        self.stats.add(result)
        if self.on_result is not None:
            self.on_result(result)
        for event in result.events:
            self.emit(event)
        self._show(result)
        self.notifier.watchdog()
        now = time.monotonic()
        if now - self._last_status >= STATUS_EVERY:
            self._last_status = now
            self.notifier.status(f"{self.stats.total.fps(now):.1f} fps, "
                                 f"{len(result.faces)} faces")
        if self.stats.period_age() >= self.config.log.summary_every:
            self._summary()
        max_frames = self.config.source.max_frames
        if max_frames and self.frames >= max_frames:
            self.stop_reason = "max frames"
        result.timings["decode"] = t1 - t0
        result.timings["sinks"] = clock() - t2
        return result

    def idle(self) -> None:
        """Work for the next frame, after this one's events are out (Pipeline.idle)."""
        try:
            self.parts.pipeline.idle()
        except Exception as exc:  # as a frame's: reported, and the run goes on
            self._error("frame", f"search near tracked faces failed: {exc!r}")

    def finish(self) -> None:
        """The final summary and the `stop` line, synced."""
        self._summary(final=True)
        self.emit(events.stop(self.stop_reason, self.frames, time.monotonic() - self.started,
                              self.first_result))
        for sink in self.parts.events:
            sink.sync()

    def _show(self, result: FrameResult) -> None:
        if not self.parts.frames:
            return
        total = self.stats.total
        picture = annotate(result, self.stats.labels, total.blinks, total.fps())
        for sink in self.parts.frames:
            try:
                if not sink.show(result, picture):
                    self.stop_reason = f"{sink.name} closed"
            except OSError as exc:
                self._error(sink.name, f"{sink.name} not written: {exc.strerror or exc}")
