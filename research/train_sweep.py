"""Train several `edge-convert train` configurations side by side within a time budget.

Made for a borrowed GPU machine with a hard time limit: every run is a real
`edge-convert train` process (Keras on whatever `KERAS_BACKEND` says), all run at
once, and the cosine schedule of each is sized so it ends inside the budget:

1. probe: each configuration trains for `--probe-epochs` epochs, all in parallel.
   Only epochs that began after every probe had finished its first (compiling)
   epoch count, so the speed is measured under the contention of the real runs
   (epochs timed while others still compile look about twice as fast);
2. main: each configuration trains for as many epochs as the remaining budget
   allows at its measured speed;
3. each run folder (best checkpoint, history, run record, log) is packed into
   OUT/NAME.tar and a summary written to OUT/sweep.json.

    KERAS_BACKEND=jax python -m research.train_sweep --data train.npz --out runs/sweep \\
        --budget 480

Each run selects on its own validation split carved from --data (`train`'s default) and
scores publictest.npz beside it as the test figure; --val selects on given data instead.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMMON = ["--schedule", "cosine", "--patience", "1000", "--label-smoothing", "0.1",
          "--workers", "3"]
STRONG_AUG = ["--shift", "0.15", "--rotation", "15", "--zoom", "0.15", "--erase", "0.4"]
# name -> extra `edge-convert train` arguments. w40 (0.22 ms/face int8, 856 kB) is the
# largest width under the 1 MB and 0.3 ms limits; w24 (0.14 ms) is the one that stays
# under 0.3 ms with mirror averaging. w40_base is the augmentation ablation of w40.
RUNS: dict[str, list[str]] = {
    "w40": ["--width", "40", "--dropout", "0.4", *STRONG_AUG],
    "w40_base": ["--width", "40", "--dropout", "0.4"],
    "w32": ["--width", "32", "--dropout", "0.4", *STRONG_AUG],
    "w32_mid4": ["--width", "32", "--middle", "4", "--dropout", "0.4", *STRONG_AUG],
    "w24": ["--width", "24", "--dropout", "0.3", *STRONG_AUG],
}
PACKED = ("best.keras", "history.csv", "run.json", "state.json", "train.log")


def launch(name: str, extra: list[str], args: argparse.Namespace, folder: Path,
           epochs: int) -> subprocess.Popen:
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "convert.cli", "train", "--data", args.data,
               *(["--val", args.val] if args.val else []),
               "--out", str(folder), "--epochs", str(epochs), *COMMON, *extra]
    log = (folder / "train.log").open("w")
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1"}
    print(f"[{name}] {' '.join(command[3:])}", flush=True)
    return subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env)


def wait_all(processes: dict[str, subprocess.Popen], deadline: float) -> dict[str, int]:
    codes = {}
    for name, process in processes.items():
        try:
            codes[name] = process.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.terminate()
            codes[name] = process.wait()
        print(f"[{name}] exit {codes[name]}", flush=True)
    return codes


def history_rows(folder: Path) -> int:
    if not (folder / "history.csv").exists():
        return 0
    with (folder / "history.csv").open() as f:
        return sum(1 for _ in csv.DictReader(f))


def watch_probes(processes: dict[str, subprocess.Popen], folders: dict[str, Path],
                 deadline: float) -> dict[str, list[tuple[float, float]]]:
    """Wait for the probes, noting when each epoch ended: name -> [(start, end)]."""
    ends: dict[str, list[float]] = {name: [] for name in processes}
    while any(p.poll() is None for p in processes.values()) and time.monotonic() < deadline:
        now = time.monotonic()
        for name, folder in folders.items():
            ends[name] += [now] * (history_rows(folder) - len(ends[name]))
        time.sleep(0.2)
    wait_all(processes, deadline)
    return {name: list(itertools.pairwise(times)) for name, times in ends.items()}


def steady_seconds(epochs: list[tuple[float, float]], everyone_compiled: float) -> float | None:
    """Mean length of the epochs that began once every probe was past compiling."""
    steady = [end - start for start, end in epochs if start >= everyone_compiled]
    if steady:
        return sum(steady) / len(steady)
    # None began late enough: the last one, doubled, errs on the safe side.
    return 2 * (epochs[-1][1] - epochs[-1][0]) if epochs else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--val", help="Select on this data (default: a split carved from "
                        "--data by `edge-convert train`).")
    parser.add_argument("--out", required=True, type=Path, help="Run folders go here.")
    parser.add_argument("--pack", type=Path, help="Where the NAME.tar files go (default --out).")
    parser.add_argument("--budget", type=float, required=True, help="Seconds for everything.")
    parser.add_argument("--probe-epochs", type=int, default=5)
    parser.add_argument("--max-epochs", type=int, default=300)
    parser.add_argument("--only", nargs="*", help="Run only these configurations.")
    args = parser.parse_args()
    started = time.monotonic()
    deadline = started + args.budget
    runs = {k: v for k, v in RUNS.items() if not args.only or k in args.only}

    folders = {name: args.out / f"probe_{name}" for name in runs}
    probes = {name: launch(name, extra, args, folders[name], args.probe_epochs)
              for name, extra in runs.items()}
    epochs_seen = watch_probes(probes, folders, deadline)
    probe_wall = time.monotonic() - started
    # The first epoch ends after compiling; the last first-epoch end is when all compiled.
    firsts = [e[0][0] for e in epochs_seen.values() if e]
    everyone_compiled = max(firsts) if firsts else started
    speeds = {name: (round(v, 2) if (v := steady_seconds(e, everyone_compiled)) else None)
              for name, e in epochs_seen.items()}
    print(f"probe took {probe_wall:.0f} s; steady seconds per epoch {speeds}", flush=True)

    # Leave room for start-up (imports, compilation: about the probe's overhead) and packing.
    overhead = max(probe_wall - args.probe_epochs * max(s or 0 for s in speeds.values()), 10)
    available = deadline - time.monotonic() - overhead - 20
    plan = {name: min(args.max_epochs, math.floor(available / (speed * 1.05)))
            for name, speed in speeds.items() if speed}
    plan = {name: epochs for name, epochs in plan.items() if epochs >= 1}
    print(f"plan (epochs): {plan}", flush=True)
    mains = {name: launch(name, runs[name], args, args.out / name, epochs)
             for name, epochs in plan.items()}
    codes = wait_all(mains, deadline - 10)

    pack = args.pack or args.out
    pack.mkdir(parents=True, exist_ok=True)
    summary = {"budget_s": args.budget, "probe_s": round(probe_wall, 1),
               "seconds_per_epoch": speeds, "plan": plan, "runs": {}}
    for name in plan:
        folder = args.out / name
        state = json.loads((folder / "state.json").read_text()) if (
            folder / "state.json").exists() else {}
        summary["runs"][name] = {"exit": codes[name], "args": runs[name], **state}
        with tarfile.open(pack / f"{name}.tar", "w") as tar:
            for member in PACKED:
                if (folder / member).exists():
                    tar.add(folder / member, arcname=f"{name}/{member}")
    summary["wall_s"] = round(time.monotonic() - started, 1)
    (pack / "sweep.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary["runs"], indent=1), flush=True)


if __name__ == "__main__":
    main()
