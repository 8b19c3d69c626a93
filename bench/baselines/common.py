"""Measurement helpers the baseline workers share (stdlib, numpy and OpenCV only).

The fer worker runs in its own virtual environment without this project
installed: the figures come from edge/measure.py (standard library only), found
through the repository on PYTHONPATH (edge.commands.bench.spawn_worker puts it there),
and nothing else of `edge` is imported. The numbers mean what `edge-run bench`'s mean:
per-frame seconds summarised as median/p95/mean in ms, peak RSS from VmHWM, time
to first result from the parent's spawn time.

A worker is called as `python -m bench.baselines.WORKER SPEC_JSON SPAWNED_AT`
(SPEC_JSON: the fields of edge.commands.bench.RunSpec plus the harness's label, extra
and profile, see bench/harness.py) and prints one JSON line.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from edge.measure import peak_rss_mb, summarize  # noqa: F401 (re-exported to workers)


def pin_for(spec: dict[str, Any]) -> list[int] | None:
    """Pin one-thread runs to spec['pin'] (before heavy imports, so they run there too)."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    if spec["threads"] == 1 and spec.get("pin") is not None:
        os.sched_setaffinity(0, {int(spec["pin"])})
    return sorted(os.sched_getaffinity(0))


class LoopingClip:
    """Frames of the prepared clip in order, starting again at the end (like FileSource)."""

    def __init__(self, path: str) -> None:
        import cv2

        self._cv2 = cv2
        self.capture = cv2.VideoCapture(path)
        if not self.capture.isOpened():
            raise SystemExit(f"{path}: cannot open")

    def read(self) -> Any:
        ok, image = self.capture.read()
        if not ok:
            self.capture.set(self._cv2.CAP_PROP_POS_FRAMES, 0)
            ok, image = self.capture.read()
        return image if ok else None

    def close(self) -> None:
        self.capture.release()


class StageClock:
    """Collects per-frame seconds per stage, timed part only (after warm-up)."""

    def __init__(self, stages: tuple[str, ...]) -> None:
        self.samples: dict[str, list[float]] = {stage: [] for stage in stages}
        self.totals: list[float] = []

    def add(self, timings: dict[str, float], total: float) -> None:
        for stage, values in self.samples.items():
            values.append(timings.get(stage, 0.0))
        self.totals.append(total)


def run_loop(spec: dict[str, Any], step: Callable[[], tuple[dict[str, float], int]],
             clock: StageClock, spawned_at: float) -> dict[str, Any]:
    """Call `step` (one frame: (timings, faces)) for warm-up + frames or until the cap."""
    first_result = None
    faces_total = 0
    processed = 0
    start = deadline = None
    while processed < spec["warmup"] + spec["frames"]:
        if processed == spec["warmup"]:
            start = time.perf_counter()
            deadline = start + spec["seconds"]
        t0 = time.perf_counter()
        timings, faces = step()
        total = time.perf_counter() - t0
        processed += 1
        if first_result is None and faces:
            first_result = time.time() - spawned_at
        if start is None:
            continue
        clock.add(timings, total)
        faces_total += faces
        if time.perf_counter() >= deadline:
            break
    wall = time.perf_counter() - start if start is not None else 0.0
    timed = len(clock.totals)
    return {
        "frames": timed, "warmup": spec["warmup"],
        "fps": round(timed / wall, 2) if wall > 0 else None,
        "faces_per_frame": round(faces_total / max(1, timed), 3),
        "stages": {stage: summarize(values) for stage, values in clock.samples.items()},
        "frame": summarize(clock.totals),
        "first_result_s": None if first_result is None else round(first_result, 3),
    }


def describe(spec: dict[str, Any], cores: list[int] | None) -> dict[str, Any]:
    return {"label": spec["label"], "source": spec["source"], "width": spec["width"],
            "height": spec["height"], "threads": spec["threads"], "cores": cores,
            "pinned": spec["threads"] == 1 and spec.get("pin") is not None}


def worker_args(argv: list[str]) -> tuple[dict[str, Any], float]:
    if len(argv) != 3:
        raise SystemExit(f"usage: {argv[0]} SPEC_JSON SPAWNED_AT")
    return json.loads(argv[1]), float(argv[2])


def emit(result: dict[str, Any]) -> None:
    print(json.dumps(result), flush=True)
    sys.stdout.flush()
