"""Our own loop as a harness worker: `python -m bench.edge_worker PAYLOAD_JSON SPAWNED_AT`.

The payload is a RunSpec plus the harness's label, extra fields and profile prefix;
the measurement is the product's (`edge.commands.bench.measure`), optionally with
its two phases (build, loop) under cProfile.
"""

from __future__ import annotations

import cProfile
import json
import sys
from collections.abc import Callable
from typing import Any

from edge.commands import bench


def profiled(function: Callable[..., Any], path: str) -> Callable[..., Any]:
    def run(*args: Any) -> Any:
        profiler = cProfile.Profile()
        try:
            return profiler.runcall(function, *args)
        finally:
            profiler.dump_stats(path)
    return run


def main(argv: list[str]) -> int:
    payload, spawned_at = json.loads(argv[1]), float(argv[2])
    label, extra, profile = payload.pop("label"), payload.pop("extra"), payload.pop("profile")
    if profile:  # measure() looks both phases up at call time
        bench.build_runner = profiled(bench.build_runner, f"{profile}.build")
        bench.timed_loop = profiled(bench.timed_loop, f"{profile}.loop")
    result = bench.measure(bench.RunSpec(**payload), spawned_at)
    print(json.dumps({**result, "label": label, **extra}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
