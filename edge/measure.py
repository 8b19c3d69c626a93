"""Timing and memory figures, standard library only.

Shared by `edge-run bench` and the baseline workers in bench/baselines, which
run in a virtual environment of their own: nothing here may import more than
the standard library.
"""

from __future__ import annotations

import sys
from pathlib import Path


def summarize(seconds: list[float]) -> dict[str, float | int | None]:
    """Median, p95 and mean in milliseconds (None when there are no samples)."""
    if not seconds:
        return {"median_ms": None, "p95_ms": None, "mean_ms": None, "n": 0}
    ordered = sorted(seconds)

    def quantile(q: float) -> float:
        # Linear interpolation between order statistics, like numpy's default.
        position = q * (len(ordered) - 1)
        low = int(position)
        high = min(low + 1, len(ordered) - 1)
        return ordered[low] + (ordered[high] - ordered[low]) * (position - low)

    return {"median_ms": round(quantile(0.5) * 1e3, 3), "p95_ms": round(quantile(0.95) * 1e3, 3),
            "mean_ms": round(sum(ordered) / len(ordered) * 1e3, 3), "n": len(ordered)}


def peak_rss_mb(pid: int | None = None) -> float | None:
    """Peak resident set size of this process (or of `pid`, None when it cannot be read):
    VmHWM, else, for this process, getrusage's ru_maxrss."""
    status = Path(f"/proc/{pid if pid is not None else 'self'}/status")
    try:
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    if pid is not None:
        return None
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of another live process (Linux /proc), None if unreadable.

    Resolution is the clock tick (10 ms): fine over seconds, not per frame.
    """
    import os

    try:
        # Fields after the command name (which may hold spaces) start at field 3.
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None
