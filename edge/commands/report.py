"""`edge-run report LOG.jsonl`: emotions, blink rate and faces per hour or day.

Reads the `summary` lines of the log and its rotated copies (a torn last line is
skipped by `read_events`). Each summary covers one period; only the period fields are
used, never `total` (it restarts with every run, so it cannot be summed across runs).
A period is put in the bucket holding its midpoint.

Blink rate = blinks / minutes of video in the bucket's periods: `media_seconds` (source
time), which leaves out time with no frames (a camera gone) and is right for a file
decoded faster than real time; `seconds` (wall time) only where a line lacks it.

Times are UTC, like the log. matplotlib is needed for --plot only, and imported then.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import click

from edge.errors import CliError
from edge.model_contract import FER2013_LABELS
from edge.sinks.jsonl import log_files, read_events

TABLE_ROWS = 48  # the most recent buckets printed; the CSV has them all
DENSE_BUCKETS = 150  # past this many bars, no gaps, edges or markers: they would be all
# A colour per FER2013 emotion, chosen so the usual meanings read at a glance.
EMOTION_COLOURS = {
    "Angry": "#d62728", "Disgust": "#6b8e23", "Fear": "#8c564b", "Happy": "#f5b800",
    "Sad": "#1f77b4", "Surprise": "#ff7f0e", "Neutral": "#b0b0b0",
}
OTHER_COLOURS = ("#9467bd", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f", "#2ca02c")


@dataclass
class Bucket:
    """What the summary periods whose midpoint falls in [start, start + width) add up to."""

    start: datetime
    periods: int = 0
    wall_seconds: float = 0.0
    media_seconds: float = 0.0
    frames: int = 0
    blinks: int = 0
    faces_max: int = 0  # most distinct faces in one period: ids restart across periods
    counts: Counter[str] = field(default_factory=Counter)

    @property
    def minutes(self) -> float:
        return self.media_seconds / 60.0

    @property
    def blink_rate(self) -> float | None:
        """Blinks per minute of video; None where there was none (no frames)."""
        return self.blinks / self.minutes if self.minutes >= 1e-3 else None

    @property
    def observations(self) -> int:
        return sum(self.counts.values())

    def share(self, label: str) -> float:
        return 100.0 * self.counts[label] / self.observations if self.observations else 0.0


# ---------------------------------------------------------------------------- reading


def parse_ts(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:  # Python 3.10's fromisoformat does not take the trailing Z
        ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)


def load(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The summary lines, and the labels in model order (from `start`, else as seen)."""
    if path.is_dir():
        raise CliError(f"{path}: is a folder, not an event log")
    if not log_files(path):
        raise CliError(f"{path}: no such file")
    summaries: list[dict[str, Any]] = []
    labels: list[str] = []
    try:
        for event in read_events(path):
            if event["event"] == "start" and isinstance(event.get("labels"), list):
                labels = [str(x) for x in event["labels"]]
            elif event["event"] == "summary" and parse_ts(event.get("ts")):
                summaries.append(event)
    except OSError as exc:
        raise CliError(f"{exc.filename or path}: {exc.strerror or exc}") from None
    if not summaries:
        raise CliError(f"{path}: no summary events (is this an edge-emotion event log?)")
    return summaries, _all_labels(labels, summaries)


def _all_labels(labels: list[str], summaries: Iterable[dict[str, Any]]) -> list[str]:
    # Labels from the last `start` first (the model's order), then any others seen,
    # in FER2013 order where they are FER2013's.
    seen = dict.fromkeys(labels)
    for summary in summaries:
        seen.update(dict.fromkeys(summary.get("counts") or {}))
    order = {label: i for i, label in enumerate([*labels, *FER2013_LABELS])}
    return sorted(seen, key=lambda label: order.get(label, len(order)))


# ---------------------------------------------------------------------------- aggregating


def bucket_start(ts: datetime, by: str) -> datetime:
    ts = ts.astimezone(timezone.utc)
    if by == "day":
        return ts.replace(hour=0, minute=0, second=0, microsecond=0)
    return ts.replace(minute=0, second=0, microsecond=0)


def bucket_width(by: str) -> timedelta:
    return timedelta(days=1) if by == "day" else timedelta(hours=1)


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        else 0.0


def aggregate(summaries: Iterable[dict[str, Any]], by: str) -> list[Bucket]:
    buckets: dict[datetime, Bucket] = {}
    for summary in summaries:
        end = parse_ts(summary["ts"])
        assert end is not None  # load() kept only lines with a valid ts
        wall = _number(summary.get("seconds"))
        media = _number(summary.get("media_seconds")) if "media_seconds" in summary else wall
        start = bucket_start(end - timedelta(seconds=wall / 2), by)
        bucket = buckets.setdefault(start, Bucket(start))
        bucket.periods += 1
        bucket.wall_seconds += wall
        bucket.media_seconds += media
        bucket.frames += int(_number(summary.get("frames")))
        bucket.blinks += int(_number(summary.get("blinks")))
        bucket.faces_max = max(bucket.faces_max, int(_number(summary.get("faces"))))
        for label, count in (summary.get("counts") or {}).items():
            bucket.counts[label] += int(_number(count))
    return [buckets[key] for key in sorted(buckets)]


# ---------------------------------------------------------------------------- output


def csv_rows(buckets: list[Bucket], labels: list[str]) -> list[list[Any]]:
    header = ["bucket_start_utc", "periods", "minutes", "wall_minutes", "frames", "blinks",
              "blink_rate_per_min", "faces_max", "observations", *labels]
    rows: list[list[Any]] = [header]
    for b in buckets:
        rate = b.blink_rate
        rows.append([b.start.strftime("%Y-%m-%dT%H:%M:%SZ"), b.periods, round(b.minutes, 3),
                     round(b.wall_seconds / 60.0, 3), b.frames, b.blinks,
                     "" if rate is None else round(rate, 2), b.faces_max, b.observations,
                     *(b.counts[label] for label in labels)])
    return rows


def write_csv(path: Path, buckets: list[Bucket], labels: list[str]) -> None:
    try:
        with open(path, "w", newline="") as f:
            csv.writer(f).writerows(csv_rows(buckets, labels))
    except OSError as exc:
        raise CliError(f"{path}: {exc.strerror or exc}") from None


def format_table(buckets: list[Bucket], labels: list[str], by: str) -> str:
    fmt = "%Y-%m-%d" if by == "day" else "%Y-%m-%d %H:%M"
    lines = [f"{by + ' (UTC)':<17} {'minutes':>8} {'blinks/min':>10} {'faces':>5}  emotions"]
    shown = buckets[-TABLE_ROWS:]
    if len(buckets) > len(shown):
        lines.append(f"... {len(buckets) - len(shown)} earlier {by}s: see --csv")
    rows = [(b.start.strftime(fmt), b) for b in shown] + [("total", _total(buckets))]
    for name, b in rows:
        rate = "-" if b.blink_rate is None else f"{b.blink_rate:.1f}"
        lines.append(f"{name:<17} {b.minutes:>8.1f} {rate:>10} {b.faces_max:>5}  "
                     f"{_mix(b, labels)}")
    return "\n".join(lines)


def _total(buckets: list[Bucket]) -> Bucket:
    total = Bucket(datetime.min.replace(tzinfo=timezone.utc))
    for b in buckets:
        total.periods += b.periods
        total.media_seconds += b.media_seconds
        total.wall_seconds += b.wall_seconds
        total.blinks += b.blinks
        total.faces_max = max(total.faces_max, b.faces_max)
        total.counts.update(b.counts)
    return total


def _mix(bucket: Bucket, labels: list[str], top: int = 3) -> str:
    ranked = sorted((label for label in labels if bucket.counts[label]),
                    key=lambda label: -bucket.counts[label])[:top]
    return ", ".join(f"{label} {bucket.share(label):.0f}%" for label in ranked) or "no faces"


# ---------------------------------------------------------------------------- the plot


def colours(labels: list[str]) -> dict[str, str]:
    others = iter(OTHER_COLOURS * (1 + len(labels) // len(OTHER_COLOURS)))
    return {label: EMOTION_COLOURS.get(label) or next(others) for label in labels}


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise CliError("--plot needs matplotlib: pip install 'edge-emotion[report]'"
                          ) from None
    matplotlib.use("Agg")  # no display on a headless device or CI
    import matplotlib.pyplot as plt

    return plt


def plot(path: Path, buckets: list[Bucket], labels: list[str], by: str, title: str) -> None:
    plt = _pyplot()
    fig, (ax_mix, ax_blink, ax_faces) = plt.subplots(
        3, 1, figsize=(12.8, 7.2), dpi=150, sharex=True,
        gridspec_kw={"height_ratios": [3, 1.3, 1], "hspace": 0.12})
    # Bars fill 90% of their bucket, centred on its middle (where the day ticks sit);
    # months of hours would be all gap and edge, so then they touch.
    dense = len(buckets) > DENSE_BUCKETS
    fill = 1.0 if dense else 0.9
    x = [b.start + bucket_width(by) * (1 - fill) / 2 for b in buckets]
    width = bucket_width(by) * fill
    _plot_mix(ax_mix, x, width, buckets, labels, dense)
    _plot_blinks(ax_blink, buckets, by, dense)
    ax_faces.bar(x, [b.faces_max for b in buckets], width=width, align="edge",
                 color="#6c8ebf", linewidth=0)
    ax_faces.set_ylabel("faces\n(most at once)")
    # Never below 0, and 0..1 when no face was seen (matplotlib centres all-zero on 0).
    ax_faces.set_ylim(0, max(1, max(b.faces_max for b in buckets)) * 1.1)
    ax_faces.yaxis.get_major_locator().set_params(integer=True)
    _date_axis(ax_faces, buckets, by)
    for ax in (ax_mix, ax_blink, ax_faces):
        ax.grid(axis="y", alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
        ax.set_xlim(buckets[0].start - bucket_width(by) * 0.1,
                    buckets[-1].start + bucket_width(by) * 1.1)
    fig.suptitle(title, x=0.07, ha="left", fontsize=15, fontweight="bold")
    fig.text(0.07, 0.915, _subtitle(buckets, by), ha="left", fontsize=10, color="#555555")
    fig.subplots_adjust(left=0.07, right=0.86, top=0.88, bottom=0.08)
    fig.align_ylabels([ax_mix, ax_blink, ax_faces])  # one column, none clipped
    try:
        fig.savefig(path)
    except OSError as exc:
        raise CliError(f"{path}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)


def _date_axis(ax: Any, buckets: list[Bucket], by: str) -> None:
    import matplotlib.dates as mdates

    days = (buckets[-1].start - buckets[0].start).days + 1
    if by == "day" and days <= 120:
        # One label per day (or every n-th), under the middle of its bar.
        step = max(1, days // 12)
        ax.xaxis.set_major_locator(mdates.RRuleLocator(
            mdates.rrulewrapper(mdates.DAILY, interval=step, byhour=12, byminute=0,
                                bysecond=0)))  # else the minutes of the view's start
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%b %d"))
    else:
        locator = mdates.AutoDateLocator(minticks=4, maxticks=12)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_xlabel("time (UTC)")


def _plot_mix(ax: Any, x: list[datetime], width: timedelta, buckets: list[Bucket],
              labels: list[str], dense: bool) -> None:
    bottom = [0.0] * len(buckets)
    palette = colours(labels)
    for label in labels:
        share = [b.share(label) for b in buckets]
        if not any(share):
            continue  # an emotion never seen would only clutter the legend
        ax.bar(x, share, width=width, bottom=bottom, align="edge", label=label,
               color=palette[label], edgecolor="white", linewidth=0 if dense else 0.3)
        bottom = [a + s for a, s in zip(bottom, share)]
    ax.set_ylim(0, 100)
    ax.set_ylabel("share of face\nobservations (%)")
    handles, names = ax.get_legend_handles_labels()
    if not handles:  # an empty legend box would only say "emotion"
        ax.text(0.5, 0.5, "no faces seen", transform=ax.transAxes, ha="center", va="center",
                fontsize=12, color="#777777")
        return
    # Reversed, so the legend reads top to bottom like the stack.
    ax.legend(handles[::-1], names[::-1], title="emotion", loc="upper left",
              bbox_to_anchor=(1.01, 1.0), frameon=False)


def _plot_blinks(ax: Any, buckets: list[Bucket], by: str, dense: bool) -> None:
    mid: list[datetime] = []
    rate: list[float] = []
    for i, b in enumerate(buckets):
        if i and b.start - buckets[i - 1].start > bucket_width(by):
            mid.append(b.start)  # a NaN breaks the line: no data is not a trend
            rate.append(float("nan"))
        mid.append(b.start + bucket_width(by) / 2)
        rate.append(float("nan") if b.blink_rate is None else b.blink_rate)
    ax.plot(mid, rate, color="#2a9d8f", linewidth=1.0 if dense else 1.8,
            marker=None if dense else "o", markersize=3.5)
    ax.set_ylabel("blinks / min")
    seen = [r for r in rate if r == r and r > 0]  # NaN != NaN
    ax.set_ylim(0, None if seen else 1)  # no 0.00..0.05 axis for a blinkless log


def _subtitle(buckets: list[Bucket], by: str) -> str:
    total = _total(buckets)
    first = buckets[0].start.strftime("%Y-%m-%d %H:%M")
    last = (buckets[-1].start + bucket_width(by)).strftime("%Y-%m-%d %H:%M")
    rate = "no video" if total.blink_rate is None else f"{total.blink_rate:.1f} blinks/min"
    return (f"{first} to {last} UTC, per {by}  ·  {total.minutes / 60:.1f} h of video  ·  "
            f"{total.observations:,} face observations  ·  {rate}")


# ---------------------------------------------------------------------------- the command


@click.command()
@click.argument("log", type=click.Path(path_type=Path))
@click.option("--plot", "plot_path", type=click.Path(path_type=Path),
              help="Write a PNG chart here (needs matplotlib).")
@click.option("--csv", "csv_path", type=click.Path(path_type=Path),
              help="Write one row per hour or day here.")
@click.option("--by", type=click.Choice(["hour", "day"]), default="hour", show_default=True,
              help="Bucket size.")
def report(log: Path, plot_path: Path | None, csv_path: Path | None, by: str) -> None:
    """Emotions, blink rate and faces per hour or day from an event log (and its rotated
    copies): a table here, optionally a CSV and a PNG chart."""
    summaries, labels = load(log)
    buckets = aggregate(summaries, by)
    if csv_path is not None:
        write_csv(csv_path, buckets, labels)
    if plot_path is not None:
        plot(plot_path, buckets, labels, by, f"Emotions, blinks and faces: {log.name}")
    click.echo(format_table(buckets, labels, by))
    for what, path in (("csv", csv_path), ("plot", plot_path)):
        if path is not None:
            click.echo(f"{what}: {path}", err=True)
