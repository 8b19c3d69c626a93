"""A shortened soak: memory must not grow with frames (the full run is `python -m bench.soak`)."""

from __future__ import annotations

from bench.soak import soak


def test_rss_does_not_grow_over_a_looped_clip() -> None:
    result = soak(frames=1500, every=250, warmup=300)
    assert result["faces_per_frame"] > 0.9  # the loop really did the work
    # Per-frame leaks show at this length: 1 KB a frame would be 1.2 MB here.
    assert result["growth_mb"] < 3.0, result["samples"]
