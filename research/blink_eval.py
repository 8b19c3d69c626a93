"""Blink precision / recall / F1 of the real `edge-run` on every annotated clip.

    python -m research.blink_eval               # table; writes docs/BLINKS.md + plot
    python -m research.blink_eval --no-write    # table only
    python -m research.blink_eval --ear-only    # also score `[blink] appearance = false`

Clips: every `NAME.avi` with a `NAME_ideal.csv` in
<shared>/data/media/video/focus_blink_noncommercial (see its README; the clips are
non-commercial and never copied into the project; $EDGE_SHARED_DIR overrides
<repo>/../shared). Each runs through `edge-run run --input NAME.avi` as a
subprocess with the default configuration, and its `blink` events are read back
from the JSONL log.

Matching: a `blink` event's `frame` counts when it lies within an annotated closed
run widened by WIDEN frames on each side, one event per run; other events are
false positives, runs without an event are misses. The classic rule beside ours:
EAR < 0.3 for at least 3 frames, on the clip's own `_ears.csv` (the authors' dlib
EAR), one event at the first frame of each such run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EDGE_SHARED_DIR", REPO.parent / "shared"))
CLIPS = SHARED / "data" / "media" / "video" / "focus_blink_noncommercial"
WIDEN = 3  # frames on each side of an annotated run
CLASSIC_EAR, CLASSIC_FRAMES = 0.3, 3
PLOT_CLIP = "soniya_test_6_low_fps"  # the hardest clip: the one people ask about


@dataclass(frozen=True)
class Clip:
    name: str
    video: Path
    closed: np.ndarray  # per frame: 1 = eyes closed (the authors' ground truth)
    ears: np.ndarray | None  # the authors' per-frame EAR, where given
    fps: float  # from the capture timestamps (the AVI header's is nominal)


@dataclass(frozen=True)
class Score:
    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def _numbers(path: Path) -> np.ndarray:
    # utf-8-sig: one of the files starts with a byte-order mark.
    return np.array([float(x) for x in path.read_text(encoding="utf-8-sig").split()])


def annotated_clips(folder: Path = CLIPS) -> list[Clip]:
    """Every clip in `folder` with per-frame ground truth, by name."""
    clips = []
    for ideal in sorted(folder.glob("*_ideal.csv")):
        name = ideal.name[: -len("_ideal.csv")]
        video = folder / f"{name}.avi"
        if not video.is_file():
            continue
        ears_file = folder / f"{name}_ears.csv"
        stamps_file = folder / f"{name}_timestamps.txt"
        fps = float("nan")
        if stamps_file.is_file():
            from datetime import datetime

            stamps = [datetime.fromisoformat(s).timestamp()
                      for s in json.loads(stamps_file.read_text())]
            fps = (len(stamps) - 1) / (stamps[-1] - stamps[0])
        clips.append(Clip(name, video, _numbers(ideal).astype(int),
                          _numbers(ears_file) if ears_file.is_file() else None, fps))
    return clips


def closed_runs(labels: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) frame of each run of 1s in a per-frame 0/1 annotation."""
    padded = np.concatenate([[0], (np.asarray(labels) > 0).astype(int), [0]])
    edges = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def score_events(frames: list[int], runs: list[tuple[int, int]], widen: int = WIDEN) -> Score:
    """Events (by frame) against annotated runs: one event per run, in event order."""
    unmatched = list(runs)
    tp = 0
    for frame in frames:
        hit = next((run for run in unmatched
                    if run[0] - widen <= frame <= run[1] + widen), None)
        if hit is not None:
            unmatched.remove(hit)
            tp += 1
    return Score(tp, len(frames) - tp, len(unmatched))


def classic_events(ears: np.ndarray, threshold: float = CLASSIC_EAR,
                   frames: int = CLASSIC_FRAMES) -> list[int]:
    """The textbook rule: a blink at the first frame of each run of EAR < threshold
    at least `frames` long."""
    return [a for a, b in closed_runs(ears < threshold) if b - a + 1 >= frames]


def edge_run_blinks(video: Path, config: Path | None = None, timeout: float = 900
                    ) -> list[int]:
    """The `frame` of every blink event `edge-run run` logs for `video`."""
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "events.jsonl"
        command = [sys.executable, "-m", "edge.cli", "run", "--quiet", "--input", str(video),
                   "--log", str(log)]
        if config is not None:
            command += ["--config", str(config)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                                cwd=REPO)
        if result.returncode != 0:
            raise RuntimeError(f"edge-run failed on {video.name}: {result.stderr.strip()}")
        events = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return [e["frame"] for e in events if e["event"] == "blink"]


def trace(video: Path) -> dict[str, np.ndarray]:
    """Per frame, through the same pipeline in-process: the blink detector's score,
    whether it judged the eyes closed, and the mean EAR (NaN without a face)."""
    from edge import config as edge_config
    from edge.build import build_pipeline, build_source

    config = edge_config.load(overrides={"source": {"input": str(video)}, "log": {"path": ""}})
    pipeline, source = build_pipeline(config), build_source(config)
    source.open()
    rows = []
    try:
        while (frame := source.read()) is not None:
            result = pipeline.process(frame)
            face = result.faces[0] if result.faces else None
            state = pipeline.states.get(face.track_id) if face is not None else None
            detector = state.blinks if state is not None else None
            if detector is None:
                rows.append((frame.timestamp, np.nan, 0.0, np.nan))
            else:
                rows.append((frame.timestamp, detector.score, float(detector.closed),
                             face.ear if face.ear is not None else np.nan))
    finally:
        source.close()
    t, s, c, e = (np.array(col) for col in zip(*rows, strict=True))
    return {"t": t, "score": s, "closed": c, "ear": e, "close_sigma": config.blink.close_sigma,
            "open_sigma": config.blink.open_sigma}


def plot(clip: Clip, signal: dict, events: list[int], path: Path) -> None:
    """The detector's score with its thresholds, the annotated runs and the events."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frames = np.arange(len(signal["score"]))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 5.5), sharex=True,
                                      gridspec_kw={"height_ratios": [2, 1]})
    for a, b in closed_runs(clip.closed):
        for axis in (top, bottom):
            axis.axvspan(a - 0.5, b + 0.5, color="tab:orange", alpha=0.25, lw=0)
    top.plot(frames, signal["score"], color="tab:blue", lw=1, label="closure score (sigmas)")
    top.axhline(signal["close_sigma"], color="tab:red", ls="--", lw=1,
                label=f"close_sigma {signal['close_sigma']:g}")
    top.axhline(signal["open_sigma"], color="tab:green", ls=":", lw=1,
                label=f"open_sigma {signal['open_sigma']:g}")
    top.plot(events, [signal["close_sigma"]] * len(events), "v", color="k", ms=6,
             label="blink event (frame)")
    top.set_ylabel("sigmas of open-eye noise")
    top.set_ylim(-5, max(12.0, float(np.nanpercentile(signal["score"], 99.5)) + 2))
    top.legend(loc="upper right", fontsize=8, ncol=2)
    top.set_title(f"{clip.name} ({clip.fps:.1f} fps): orange = annotated closed frames")
    bottom.plot(frames, signal["ear"], color="tab:purple", lw=1, label="mean EAR (ours)")
    if clip.ears is not None:
        bottom.plot(frames, clip.ears[: len(frames)], color="tab:gray", lw=0.8,
                    label="EAR (authors)")
    bottom.axhline(CLASSIC_EAR, color="tab:gray", ls="--", lw=0.8, label="classic 0.3")
    bottom.set_ylabel("EAR")
    bottom.set_xlabel("frame")
    bottom.legend(loc="lower right", fontsize=8, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def evaluate(clips: list[Clip], config: Path | None = None) -> list[tuple[Clip, Score, list[int]]]:
    rows = []
    for clip in clips:
        events = edge_run_blinks(clip.video, config)
        rows.append((clip, score_events(events, closed_runs(clip.closed)), events))
    return rows


def table(rows: list[tuple[Clip, Score, list[int]]],
          ear_only: dict[str, Score] | None = None) -> str:
    head = ("| clip | fps | annotated | found | precision | recall | F1 | classic-rule F1 |"
            + (" EAR-only F1 |" if ear_only else ""))
    lines = [head, "|---" * (head.count("|") - 1) + "|"]
    for clip, s, events in rows:
        runs = closed_runs(clip.closed)
        classic = (f"{score_events(classic_events(clip.ears), runs).f1:.2f}"
                   if clip.ears is not None else "n/a")
        line = (f"| {clip.name} | {clip.fps:.1f} | {len(runs)} | {len(events)} "
                f"| {s.precision:.2f} | {s.recall:.2f} | **{s.f1:.2f}** | {classic} |")
        if ear_only:
            line += f" {ear_only[clip.name].f1:.2f} |"
        lines.append(line)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    parser.add_argument("--ear-only", action="store_true",
                        help="also score [blink] appearance = false")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "BLINKS.md")
    args = parser.parse_args()
    clips = annotated_clips()
    if not clips:
        sys.exit(f"blink_eval: no annotated clips in {CLIPS}")
    rows = evaluate(clips)
    ear_only = None
    if args.ear_only:
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "ear_only.toml"
            config.write_text("[blink]\nappearance = false\n")
            ear_only = {clip.name: s for clip, s, _ in evaluate(clips, config)}
    text = table(rows, ear_only)
    print(text)
    if args.no_write:
        return
    picture = args.out.with_suffix(".png")
    chosen = next((r for r in rows if r[0].name == PLOT_CLIP), rows[0])
    plot(chosen[0], trace(chosen[0].video), chosen[2], picture)
    update_doc(args.out, text, picture.name)
    print(f"wrote {args.out} and {picture}")


def update_doc(path: Path, text: str, picture: str) -> None:
    """Replace the generated table between the markers, keep the prose around it."""
    begin, end = "<!-- blink_eval table -->", "<!-- /blink_eval table -->"
    block = f"{begin}\n{text}\n{end}"
    if path.is_file() and begin in path.read_text():
        old = path.read_text()
        start, stop = old.index(begin), old.index(end) + len(end)
        path.write_text(old[:start] + block + old[stop:])
    else:
        path.write_text(f"# Blinks\n\n{block}\n\n![signal]({picture})\n")


if __name__ == "__main__":
    main()
