"""A shortened soak: memory must not grow with frames (the full run is bench/soak.py)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from soak import soak


def test_rss_does_not_grow_over_a_looped_clip() -> None:
    result = soak(frames=1500, every=250, warmup=300)
    assert result["faces_per_frame"] > 0.9  # the loop really did the work
    # Per-frame leaks show at this length: 1 KB a frame would be 1.2 MB here.
    assert result["growth_mb"] < 3.0, result["samples"]
