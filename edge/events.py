"""The event schema (README "Event log format"), in one place.

Every line the JSONL log and MQTT carry is built here; the pipeline, the runner
and the sinks never assemble event payloads of their own. Field names are
stable: add fields, never rename them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from edge.types import Event

KINDS = ("start", "emotion", "blink", "summary", "error", "stop")


def start(*, version: str, source: str, model: str, model_sha256: str, runtime: str,
          labels: Sequence[str], config: dict[str, Any], kernels: str = "",
          self_test: str = "") -> Event:
    """`kernels`: XNNPACK or builtin; `self_test`: the model's start-up self-test result."""
    return Event("start", data={
        "version": version, "source": source, "model": model, "model_sha256": model_sha256,
        "runtime": runtime, "kernels": kernels, "self_test": self_test,
        "labels": list(labels), "config": config})


def emotion(frame: int, face: int, label: str, previous: str | None,
            labels: Sequence[str], probabilities: np.ndarray) -> Event:
    """A face's smoothed emotion changed (or was seen for the first time)."""
    scores = {name: round(float(p), 3) for name, p in zip(labels, probabilities)}
    return Event("emotion", frame=frame, face=face,
                 data={"emotion": label, "previous": previous, "scores": scores})


def blink(face: int, *, start_frame: int, duration: float, face_blinks: int,
          face_rate_per_min: float, detected_frame: int, score: float | None = None) -> Event:
    """A completed blink; `frame` is where the eyes closed, found at `detected_frame`.

    `score`: how deep the closure was, in robust sigmas of this face's open eyes."""
    data = {"duration_s": round(duration, 3), "face_blinks": face_blinks,
            "face_rate_per_min": round(face_rate_per_min, 1), "detected_frame": detected_frame}
    if score is not None:
        data["score"] = round(float(score), 1)
    return Event("blink", frame=start_frame, face=face, data=data)


def summary(data: dict[str, Any], final: bool) -> Event:
    """Counts since the last summary, with the run's totals under "total"."""
    return Event("summary", data={**data, "final": final})


def error(kind: str, message: str, frame: int | None = None) -> Event:
    return Event("error", frame=frame, data={"kind": kind, "message": message})


def stop(reason: str | None, frames: int, seconds: float, first_result_s: float | None) -> Event:
    return Event("stop", data={
        "reason": reason, "frames": frames, "seconds": round(seconds, 3),
        "first_result_s": None if first_result_s is None else round(first_result_s, 3)})
