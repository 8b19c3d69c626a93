"""Soak: run the real loop over a looped clip and watch resident memory.

    python -m bench.soak --frames 100000 [--input CLIP] [--json out.json]

RSS is sampled every `--every` frames after a warm-up (allocators and caches
settle in the first frames); the figure that matters is growth from the end of
warm-up to the end. Target: under 10 MB over 100,000 frames.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from edge import config as edge_config
from edge.build import build
from edge.runner import Runner
from edge.types import FrameResult


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def soak(frames: int, every: int = 1000, warmup: int = 500, clip: str | None = None) -> dict:
    samples: list[tuple[int, float]] = []
    faces = 0

    def sample(result: FrameResult) -> None:
        nonlocal faces
        faces += len(result.faces)
        n = result.frame.index + 1
        if n in (warmup, frames) or (n > warmup and n % every == 0):
            samples.append((n, rss_mb()))

    with tempfile.TemporaryDirectory() as tmp:
        cfg = edge_config.load(overrides={
            "source": {"input": clip or "", "loop": True, "max_frames": frames},
            "log": {"path": str(Path(tmp) / "events.jsonl"), "max_bytes": 1_000_000}})
        started = time.monotonic()
        with build(cfg) as parts:
            Runner(parts, on_result=sample).run()
        seconds = time.monotonic() - started
    return {"frames": frames, "seconds": round(seconds, 1), "fps": round(frames / seconds, 1),
            "faces_per_frame": round(faces / frames, 3),
            "rss_after_warmup_mb": round(samples[0][1], 1),
            "rss_end_mb": round(samples[-1][1], 1),
            "rss_max_mb": round(max(mb for _, mb in samples), 1),
            "growth_mb": round(samples[-1][1] - samples[0][1], 2),
            "samples": [(n, round(mb, 1)) for n, mb in samples]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--every", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--input", default=None, help="clip (default: the embedded one)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    result = soak(args.frames, args.every, args.warmup, args.input)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
