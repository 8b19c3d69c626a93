"""The loop and the sink seam: any object with write/sync/close gets every event,
frame sinks get every picture, and everything opened is closed, on the embedded clip."""

from __future__ import annotations

import numpy as np
import pytest

from edge import config
from edge.build import build
from edge.runner import Runner
from edge.types import Event, FrameResult


class Recorder:
    """An event sink that keeps what it was given."""

    name = "recorder"

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.syncs = 0
        self.closed = False

    def write(self, event: Event) -> None:
        self.events.append(event)

    def sync(self) -> None:
        self.syncs += 1

    def close(self) -> None:
        self.closed = True


class FailingFrameSink:
    name = "webhook"

    def __init__(self) -> None:
        self.pictures = 0
        self.closed = False

    def show(self, result: FrameResult, picture: np.ndarray) -> bool:
        self.pictures += 1
        assert picture.shape == (*result.frame.gray.shape, 3)
        raise OSError(5, "Input/output error")

    def close(self) -> None:
        self.closed = True


def embedded_config(**source: object) -> config.Config:
    return config.load(None, {"log": {"path": ""}, "source": source})


def test_a_new_event_sink_gets_the_whole_run_and_is_closed() -> None:
    recorder = Recorder()
    with build(embedded_config(), [recorder]) as parts:
        assert Runner(parts).run() == 0
    kinds = [e.kind for e in recorder.events]
    assert kinds[0] == "start" and kinds[-2:] == ["summary", "stop"]
    assert "emotion" in kinds and kinds.count("blink") == 1  # the clip's one blink
    assert recorder.events[-1].data["reason"] == "end of input"
    assert recorder.events[-1].data["frames"] == 72
    assert recorder.syncs >= 2  # at the final summary and after stop
    assert recorder.closed


def test_step_runs_one_frame_and_times_every_stage() -> None:
    with build(embedded_config(max_frames=2), sinks=False) as parts:
        runner = Runner(parts)
        result = runner.step()
        assert result is not None and result.frame.index == 0
        assert {"decode", "detect", "landmarks", "crop", "classify", "blinks", "sinks"} <= (
            result.timings.keys())
        assert runner.step() is not None
        assert runner.stop_reason == "max frames"


def test_a_failing_frame_sink_is_reported_and_the_run_goes_on() -> None:
    recorder, failing = Recorder(), FailingFrameSink()
    with build(embedded_config(max_frames=5), [recorder]) as parts:
        parts.frames.append(failing)
        parts.stack.callback(failing.close)
        Runner(parts).run()
    errors = [e for e in recorder.events if e.kind == "error"]
    assert failing.pictures == 5 and failing.closed
    assert len(errors) == 1  # rate-limited: one line per kind every few seconds
    assert errors[0].data == {"kind": "webhook",
                              "message": "webhook not written: Input/output error"}
    assert recorder.events[-1].data["frames"] == 5


def test_a_sink_that_fails_to_open_closes_the_source(monkeypatch: pytest.MonkeyPatch) -> None:
    from edge import build as build_module
    from edge.sources import FileSource

    closed: list[bool] = []
    monkeypatch.setattr(FileSource, "close", lambda self: closed.append(True))

    def broken(*_args: object) -> list:
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(build_module, "open_event_sinks", broken)
    with pytest.raises(OSError, match="Read-only"):
        build(embedded_config())
    assert closed == [True]


def test_a_failing_search_between_frames_is_reported_and_the_run_goes_on() -> None:
    """Pipeline.idle runs outside a frame (after its events): a failure there must not
    end a months-long run either."""
    recorder = Recorder()
    with build(embedded_config(max_frames=12), [recorder]) as parts:
        def broken(*_args: object) -> list:
            raise RuntimeError("dlib says no")

        parts.pipeline.detector.detect_near = broken
        assert Runner(parts).run() == 0
    errors = [e for e in recorder.events if e.kind == "error"]
    stop = recorder.events[-1]
    assert errors and "search near tracked faces failed" in errors[0].data["message"]
    assert stop.kind == "stop" and stop.data["frames"] == 12
