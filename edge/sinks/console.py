"""The terminal as an event sink: a line per summary, and every event with -v."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from edge.types import Event


class ConsoleSink:
    name = "console"

    def __init__(self, echo: Callable[[str], None] = print, quiet: bool = False,
                 verbose: bool = False) -> None:
        self.echo = echo
        self.quiet, self.verbose = quiet, verbose

    def write(self, event: Event) -> None:
        if self.verbose:  # the log's own line format, so it can be piped into jq
            self.echo(json.dumps(event.to_dict(), separators=(",", ":")))
        if event.kind == "summary" and not self.quiet:
            self.echo(format_summary(event.data))

    def sync(self) -> None:
        pass

    def close(self) -> None:
        pass


def format_summary(data: dict[str, Any]) -> str:
    total = data["total"]
    observed = sum(total["counts"].values()) or 1
    top = sorted(total["counts"].items(), key=lambda kv: -kv[1])[:3]
    mix = ", ".join(f"{k} {100 * v / observed:.0f}%" for k, v in top if v)
    # The final line's rate is the whole run's; a periodic one's is the last period's.
    rate = (f"{total['fps']:.1f} fps" if data.get("final")
            else f"{data['fps']:.1f} fps now")
    head = "final" if data.get("final") else "summary"
    return (f"{head}: {total['frames']} frames in {total['seconds']:.1f}s "
            f"({rate}), faces {total['faces']}, blinks {total['blinks']} "
            f"({total['blink_rate_per_min']:.1f}/min){', ' + mix if mix else ''}")
