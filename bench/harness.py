"""The harness's side of a measured run: labels, baseline workers and profiling.

`edge-run bench` (edge/commands/bench.py) measures our own loop; the harness runs
the same measurement beside other pipelines. A `Job` is a RunSpec plus what only
the harness needs: the row's label, extra fields for a baseline worker, a cProfile
prefix, and the worker command (None: ours, through bench.edge_worker). Every
worker speaks the product's protocol: PAYLOAD_JSON SPAWNED_AT in, one JSON line out.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field
from typing import Any

from edge.commands.bench import RunSpec, spawn_worker

OUR_WORKER = (sys.executable, "-m", "bench.edge_worker")


@dataclass(frozen=True)
class Job:
    spec: RunSpec
    label: str
    extra: dict[str, Any] = field(default_factory=dict)
    profile: str = ""  # write cProfile stats of start-up and loop to PROFILE.{build,loop}
    command: tuple[str, ...] | None = None  # None: our own loop


def run_job(job: Job, timeout: float | None = None) -> dict[str, Any]:
    """The job's measurement as a dict; a failure is {"error": ...}, never an exception."""
    payload = {**asdict(job.spec), "label": job.label, "extra": job.extra,
               "profile": job.profile}
    result = spawn_worker(list(job.command or OUR_WORKER), payload, timeout)
    return {"label": job.label, **result}
