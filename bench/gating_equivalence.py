"""Does motion gating change what `edge-run` reports? Event logs before and after.

    python -m bench.gating_equivalence [--out docs/gating_equivalence.json]

Runs `edge-run run` on the embedded clip and the shared FOCUS clips: `before`
(`motion = false`, `scan_lag = 0`: no gating, scans on the loop's thread) and
`after` (the defaults), then compares the two JSONL logs, `ts` ignored:

* events: emotion changes matched on (face, emotion, previous) and blinks on the
  face, with frames at most TOLERANCE apart; what is left over on either side;
* blinks against the FOCUS authors' per-frame ground truth (a detected blink, from
  the frame the eyes closed to the frame it was reported, matches a closed run
  within 2 frames): true / false positives, misses;
* the same comparisons for `control`: ungated with scan_every 16 instead of 15;
* with `--reference DIR` (a checkout of an earlier commit, e.g. `git worktree add
  /tmp/ref e4fa3b4`, the loop before scans stopped moving tracked boxes): that
  tree's `before` run as `reference`, and `after` compared with it;
* emotions per frame (the last emotion event at or before it): agreement, and the
  share of face observations per emotion from the final summary.

Media come from <repo>/../shared/data/media (EDGE_SHARED_DIR overrides); the FOCUS
clips are non-commercial and are read there, never copied.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from edge.config import DEFAULT_CLIP
from edge.sinks.jsonl import read_events

REPO = Path(__file__).resolve().parents[1]

SHARED = Path(os.environ.get("EDGE_SHARED_DIR", REPO.parent / "shared"))
FOCUS = SHARED / "data" / "media" / "video" / "focus_blink_noncommercial"
CLIPS = ("mahie_test_4_low_fps", "mahie_test_2", "mahie_test_5_low_fps", "soniya_test_6_low_fps")
# control: ungated, with the full-frame scan every 16 frames instead of 15. Before scans
# stopped moving tracked boxes (e4fa3b4) this alone moved a third of the events; now it
# must change nothing, like gating.
SETTINGS = {"before": "motion = false\nscan_lag = 0\n", "after": "",
            "control": "motion = false\nscan_lag = 0\nscan_every = 16\n"}
TOLERANCE = 1  # frames
BLINK_TOLERANCE = 2  # frames, as research/blink_eval.py


def run(clip: Path, setting: str, work: Path, tree: Path = REPO) -> list[dict[str, Any]]:
    config = work / f"{setting}.toml"
    config.write_text("[detect]\n" + SETTINGS.get(setting, SETTINGS["before"]))
    log = work / f"{clip.stem}-{setting}.jsonl"
    # `-m edge.cli` from `tree`: that checkout's edge package, not the installed one.
    done = subprocess.run([sys.executable, "-m", "edge.cli", "run", "-q", "--config",
                           str(config), "--input", str(clip), "--log", str(log)],
                          capture_output=True, text=True, cwd=tree)
    if done.returncode != 0:
        raise SystemExit(f"{clip.name} ({setting}): {done.stderr.strip()[-300:]}")
    return list(read_events(log))


def _key(event: dict[str, Any]) -> tuple:
    if event["event"] == "emotion":
        return ("emotion", event["face"], event["emotion"], event["previous"])
    return ("blink", event["face"])  # not the running count: one extra shifts all later


def compare_events(before: list[dict], after: list[dict]) -> dict[str, Any]:
    a = [e for e in before if e["event"] in ("emotion", "blink")]
    b = [e for e in after if e["event"] in ("emotion", "blink")]
    left = list(a)
    only_after, shifted = [], 0
    for event in b:
        match = next((x for x in left if _key(x) == _key(event)
                      and abs(x["frame"] - event["frame"]) <= TOLERANCE), None)
        if match is None:
            only_after.append(event)
            continue
        left.remove(match)
        shifted += match["frame"] != event["frame"]

    def strip(e: dict) -> dict:
        return {k: v for k, v in e.items() if k != "ts"}

    return {"before": len(a), "after": len(b),
            "identical": [strip(e) for e in a] == [strip(e) for e in b],
            "same_frame": len(b) - len(only_after) - shifted,
            "shifted_within_tolerance": shifted, "only_before": len(left),
            "only_after": len(only_after),
            "only_before_kinds": _kinds(left), "only_after_kinds": _kinds(only_after)}


def _kinds(events: list[dict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for event in events:
        out[event["event"]] = out.get(event["event"], 0) + 1
    return out


def ground_truth(name: str) -> list[tuple[int, int]]:
    text = (FOCUS / f"{name}_ideal.csv").read_text(encoding="utf-8-sig")
    closed = [int(x) for x in text.split()] + [0]
    runs, start = [], None
    for index, value in enumerate(closed):
        if value and start is None:
            start = index
        elif not value and start is not None:
            runs.append((start, index - 1))
            start = None
    return runs


def blink_scores(events: list[dict], truth: list[tuple[int, int]]) -> dict[str, int]:
    found = [(e["frame"], e["detected_frame"]) for e in events if e["event"] == "blink"]
    used: set[int] = set()
    for start, end in found:
        match = next((i for i, (a, b) in enumerate(truth) if i not in used
                      and start <= b + BLINK_TOLERANCE and end >= a - BLINK_TOLERANCE), None)
        if match is not None:
            used.add(match)
    return {"true": len(used), "false": len(found) - len(used), "missed": len(truth) - len(used)}


def per_frame_emotions(events: list[dict], frames: int) -> list[str | None]:
    changes = sorted((e["frame"], e["emotion"]) for e in events if e["event"] == "emotion")
    labels, current, k = [], None, 0
    for frame in range(frames):
        while k < len(changes) and changes[k][0] <= frame:
            current = changes[k][1]
            k += 1
        labels.append(current)
    return labels


def shares(events: list[dict]) -> dict[str, float]:
    final = [e for e in events if e["event"] == "summary" and e.get("final")][-1]
    counts = final["total"]["counts"]
    total = sum(counts.values()) or 1
    return {label: round(100 * n / total, 1) for label, n in counts.items() if n}


def compare_clip(clip: Path, work: Path, truth: list[tuple[int, int]] | None,
                 reference: Path | None = None) -> dict[str, Any]:
    logs = {setting: run(clip, setting, work) for setting in SETTINGS}
    if reference is not None:
        logs["reference"] = run(clip, "reference", work, reference)
    before = logs["before"]
    frames = next(e["frames"] for e in before if e["event"] == "stop")
    result: dict[str, Any] = {"clip": clip.name, "frames": frames}
    pairs = [("after", "before", "after"), ("control", "before", "control")]
    if reference is not None:  # the old loop against the new defaults
        pairs.append(("reference", "reference", "after"))
    for name, base, other in pairs:
        labels = per_frame_emotions(logs[base], frames)
        theirs = per_frame_emotions(logs[other], frames)
        result[name] = {
            "events": compare_events(logs[base], logs[other]),
            "emotion_agreement": round(sum(x == y for x, y in zip(labels, theirs)) / frames, 4)}
    result["shares"] = {setting: shares(events) for setting, events in logs.items()}
    if truth is not None:
        result["blinks"] = {"truth": len(truth), **{
            setting: blink_scores(events, truth) for setting, events in logs.items()}}
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "gating_equivalence.json")
    parser.add_argument("--reference", type=Path, default=None,
                        help="a checkout of an earlier commit: its loop, ungated, against "
                             "this tree's defaults")
    parser.add_argument("--reference-name", default=None,
                        help="what to call the reference in the report (e.g. its commit)")
    args = parser.parse_args(argv)
    if args.reference is not None and not (args.reference / "edge" / "cli.py").is_file():
        parser.error(f"--reference {args.reference}: not an edge-emotion checkout")
    clips: list[tuple[Path, list | None]] = [(DEFAULT_CLIP, None)]
    for name in CLIPS:
        path = FOCUS / f"{name}.avi"
        if path.is_file():
            clips.append((path, ground_truth(name)))
        else:
            print(f"skipped {name}: {path} is absent", file=sys.stderr)
    results = []
    with tempfile.TemporaryDirectory(prefix="edge-gating-") as tmp:
        for clip, truth in clips:
            results.append(compare_clip(clip, Path(tmp), truth, args.reference))
            print(json.dumps(results[-1]), file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    reference = None if args.reference is None else (
        args.reference_name or args.reference.name)
    args.out.write_text(json.dumps({"tolerance_frames": TOLERANCE, "settings": SETTINGS,
                                    "reference": reference,
                                    "clips": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
