"""`edge-run bench`: what the real loop costs on this device, stage by stage.

Every configuration (input size x interpreter threads) runs in a fresh process,
so peak memory (VmHWM) and time to first result are that configuration's own,
measured from the moment the process is spawned: interpreter start, imports,
model and landmark loading, first frame, first classified face.

The input clip is first re-encoded once at the target size (letterboxed, so a
face keeps its shape) as Motion-JPEG, which is what a USB webcam sends at 720p:
the `decode` stage is then the project's own FileSource decoding and converting
to gray a frame of that size. The timed loop is the product's own: `Runner.step()`
on parts from `edge.build`, with the JSONL event log as the only sink.

"One thread" means the process is pinned to one core with
os.sched_setaffinity (like `taskset -c CORE`) and the interpreter gets one
thread; "two threads" lets the process use every core it was given and the
interpreter two threads. dlib's HOG and the landmark model are single-threaded
either way. No TensorFlow here: the comparisons with other pipelines live in
bench/run_benchmarks.py (`python -m bench.run_benchmarks`).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from edge.measure import peak_rss_mb, summarize

if TYPE_CHECKING:
    from edge.runner import Runner

SCHEMA = "edge-emotion-bench/1"
# Per-frame stages, in loop order. detect includes tracking; sinks is the JSONL
# event log write plus the running statistics.
STAGES = ("decode", "detect", "landmarks", "crop", "classify", "blinks", "sinks")
DEFAULT_SIZES = ("640x480", "1280x720")
DEFAULT_THREADS = (1, 2)


@dataclass
class RunSpec:
    """One configuration, measured in its own process."""

    clip: str  # the prepared clip (already at width x height)
    source: str  # the original input, for the report
    width: int
    height: int
    threads: int
    frames: int = 300
    seconds: float = 20.0  # cap on the timed loop
    warmup: int = 10  # frames excluded from the stage statistics
    pin: int | None = 0  # core for one-thread runs; None: never pin
    model: str = ""
    landmarks: str = ""
    detect_every: int | None = None  # None: the config default
    detect_width: int | None = None


# --- small measurement helpers ------------------------------------------------------


def parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"{text!r} is not WIDTHxHEIGHT (e.g. 640x480)") from None
    if width < 16 or height < 16:
        raise click.BadParameter(f"{text!r} is too small")
    return width, height


def pin_to(cores: set[int] | None) -> list[int] | None:
    """Restrict this process to `cores` (Linux); returns the cores it may use."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    if cores:
        os.sched_setaffinity(0, cores)
    return sorted(os.sched_getaffinity(0))


def allowed_cores() -> set[int]:
    if hasattr(os, "sched_getaffinity"):
        return set(os.sched_getaffinity(0))
    return set(range(os.cpu_count() or 1))


# --- clip preparation ---------------------------------------------------------------


def prepare_clip(source: str | Path, width: int, height: int, out_dir: Path,
                 max_frames: int = 600) -> Path:
    """Re-encode `source` at width x height as MJPEG (a USB webcam's format)."""
    import cv2

    from edge.images import letterbox

    capture = cv2.VideoCapture(str(source))
    if not capture.isOpened():
        raise click.ClickException(f"{source}: not a readable video")
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    out = out_dir / f"{Path(source).stem}_{width}x{height}.avi"
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    written = 0
    try:
        while written < max_frames:
            ok, image = capture.read()
            if not ok:
                break
            writer.write(letterbox(image, width, height))
            written += 1
    finally:
        capture.release()
        writer.release()
    if written == 0:
        raise click.ClickException(f"{source}: no frames could be read")
    return out


# --- the measured loop (runs in the worker process) ---------------------------------


class TimedDetector:
    """Wraps the face detector to time each real detection call.

    The pipeline detects every N frames and tracks in between, so the per-frame
    `detect` stage mixes both; this keeps the cost of one detection apart.
    """

    def __init__(self, detector: Any) -> None:
        self.detector = detector
        self.calls: list[float] = []

    def detect(self, image: Any) -> Any:
        start = time.perf_counter()
        try:
            return self.detector.detect(image)
        finally:
            self.calls.append(time.perf_counter() - start)

    def __getattr__(self, name: str) -> Any:  # anything else the pipeline may call
        return getattr(self.detector, name)


def build_runner(spec: RunSpec, log_path: Path) -> Runner:
    from edge import config as config_module
    from edge.build import build
    from edge.runner import Runner
    from edge.sinks.jsonl import JsonlLog

    overrides: dict[str, dict[str, Any]] = {
        "model": {"threads": spec.threads},
        "source": {"input": spec.clip, "width": spec.width, "height": spec.height,
                   "loop": True},
        "log": {"path": ""},  # the log below, in the temporary folder
    }
    if spec.model:
        overrides["model"]["path"] = spec.model
    if spec.landmarks:
        overrides["model"]["landmarks"] = spec.landmarks
    if spec.detect_every:
        overrides["detect"] = {"every": spec.detect_every}
    if spec.detect_width:
        overrides.setdefault("detect", {})["width"] = spec.detect_width
    config = config_module.load(None, overrides)
    parts = build(config, [JsonlLog(log_path).open()])
    pipeline = parts.pipeline
    pipeline.detector = TimedDetector(pipeline.detector)
    if pipeline.scan_detector is not None:  # the scan thread's own: timed into the same list
        pipeline.scan_detector = TimedDetector(pipeline.scan_detector)
        pipeline.scan_detector.calls = pipeline.detector.calls
    return Runner(parts)


def measure(spec: RunSpec, spawned_at: float) -> dict[str, Any]:
    """Run the loop for `spec`; `spawned_at` is time.time() when the parent spawned us."""
    cores = pin_to({spec.pin} if spec.threads == 1 and spec.pin is not None else None)
    entered = time.time()
    with tempfile.TemporaryDirectory(prefix="edge-bench-") as tmp:
        runner = build_runner(spec, Path(tmp) / "events.jsonl")
        # The scan's helper process loads dlib beside the model loading: start-up, which
        # on a pinned core must not spill into the timed frames.
        getattr(runner.parts.pipeline.scan_detector, "ready", lambda: None)()
        built = time.time()
        with runner.parts:
            samples, totals, first_result, faces, wall = timed_loop(spec, runner, spawned_at)
            helper = getattr(runner.parts.pipeline.scan_detector, "pid", None)
            helper_rss = peak_rss_mb(helper) if helper is not None else None
    timed = len(totals)
    config, pipeline = runner.config, runner.parts.pipeline
    model_path = config.model_path()
    return {
        "label": "edge int8", "source": spec.source, "width": spec.width,
        "height": spec.height, "threads": spec.threads, "cores": cores,
        "pinned": spec.threads == 1 and spec.pin is not None,
        "frames": timed, "warmup": spec.warmup,
        "fps": round(timed / wall, 2) if wall > 0 else None,
        "faces_per_frame": round(faces / max(1, timed), 3),
        "stages": {stage: summarize(samples[stage]) for stage in STAGES},
        "frame": summarize(totals),
        "detector_call": summarize(pipeline.detector.calls[1:]),  # first call: cold caches
        "detect_every": config.detect.every, "detect_width": config.detect.width,
        "upsample": config.detect.upsample, "threshold": config.detect.threshold,
        "first_result_s": None if first_result is None else round(first_result, 3),
        # Where start-up goes: interpreter + `edge` import, then imports and loading
        # of the model, landmark file and source.
        "startup_s": {"python": round(entered - spawned_at, 3),
                      "load": round(built - entered, 3)},
        "peak_rss_mb": peak_rss_mb(),
        "scan_process_peak_rss_mb": helper_rss,  # its own process, beside peak_rss_mb
        "model": str(model_path), "model_size_bytes": model_path.stat().st_size,
        "runtime": pipeline.classifier.runtime,
    }


def timed_loop(spec: RunSpec, runner: Runner, spawned_at: float
          ) -> tuple[dict[str, list[float]], list[float], float | None, int, float]:
    clock = time.perf_counter
    samples: dict[str, list[float]] = {stage: [] for stage in STAGES}
    totals: list[float] = []
    first_result: float | None = None
    faces = 0
    processed = 0
    loop_start = deadline = None
    while processed < spec.warmup + spec.frames:
        if processed == spec.warmup:  # the timed part starts after warm-up
            loop_start = clock()
            deadline = loop_start + spec.seconds
        t0 = clock()
        result = runner.step()
        t1 = clock()
        if result is None:
            break  # a looping file always has a next frame: this is a failure
        processed += 1
        if first_result is None and any(f.probabilities is not None for f in result.faces):
            first_result = time.time() - spawned_at
        if loop_start is None:
            continue
        for stage in STAGES:
            samples[stage].append(result.timings.get(stage, 0.0))
        totals.append(t1 - t0)
        faces += len(result.faces)
        if t1 >= deadline:
            break
    wall = clock() - loop_start if loop_start is not None else 0.0
    return samples, totals, first_result, faces, wall


def _worker_main(argv: list[str]) -> int:
    """`python -m edge.commands.bench --worker SPEC_JSON SPAWNED_AT`: one JSON result line."""
    spec = RunSpec(**json.loads(argv[1]))
    result = measure(spec, float(argv[2]))
    print(json.dumps(result), flush=True)
    return 0


# --- the parent: spawn workers, collect, report -------------------------------------


def run_worker(spec: RunSpec, timeout: float | None = None) -> dict[str, Any]:
    """Measure `spec` in a fresh process; a failure becomes {"error": ...}, not an exception."""
    result = spawn_worker([sys.executable, "-m", "edge.commands.bench", "--worker"],
                          asdict(spec), timeout)
    return {"label": "edge int8", **result}


def spawn_worker(argv: list[str], payload: dict[str, Any],
                 timeout: float | None = None) -> dict[str, Any]:
    """`argv PAYLOAD_JSON SPAWNED_AT` in a fresh process with this checkout importable;
    its last JSON line, or {"error": ...}."""
    package_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    spawned_at = time.time()
    try:
        done = subprocess.run([*argv, json.dumps(payload), repr(spawned_at)],
                              capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f}s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"exit {done.returncode}: {tail}"}
    return json.loads(lines[-1])


def library_versions() -> dict[str, str | None]:
    from importlib import metadata

    names = ("numpy", "opencv-python-headless", "opencv-python", "dlib-bin", "dlib",
             "ai-edge-litert", "tflite-runtime", "click", "tensorflow-cpu", "tensorflow")
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def cpu_model() -> str:
    """'model name' on x86, 'Model' (the board) on a Raspberry Pi, else the machine type."""
    try:
        fields = dict(line.split(":", 1) for line in
                      Path("/proc/cpuinfo").read_text().splitlines() if ":" in line)
    except OSError:
        fields = {}
    fields = {key.strip().lower(): value.strip() for key, value in fields.items()}
    for key in ("model name", "model", "hardware", "cpu model"):
        if fields.get(key) and not fields[key].isdigit():
            return fields[key]
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    from edge import __version__

    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {
        "cpu": cpu_model(), "machine": platform.machine(), "cores": os.cpu_count(),
        "cores_allowed": sorted(allowed_cores()), "system": platform.platform(),
        "python": platform.python_version(), "edge_emotion": __version__,
        "libraries": library_versions(), "load_average_at_start": load,
    }


def format_table(runs: list[dict[str, Any]]) -> str:
    """Markdown table: one row per run, stage medians/p95 in ms."""
    head = ["pipeline", "input", "size", "thr", "fps", "frame ms (med/p95)",
            *(f"{s} ms" for s in STAGES), "HOG call ms", "RSS MB", "first result s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for run in runs:
        if "error" in run:
            lines.append(f"| {run.get('label', '?')} | " + f"error: {run['error']} |"
                         + " |" * (len(head) - 2))
            continue
        cells = [run["label"], Path(run["source"]).name, f"{run['width']}x{run['height']}",
                 str(run["threads"]), _num(run.get("fps")), _pair(run.get("frame"))]
        cells += [_pair(run.get("stages", {}).get(stage)) for stage in STAGES]
        cells += [_pair(run.get("detector_call")), _num(run.get("peak_rss_mb")),
                  _num(run.get("first_result_s"), 2)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _num(value: Any, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _pair(stat: dict[str, Any] | None) -> str:
    """'median / p95' with precision that keeps sub-millisecond stages readable."""
    if not stat or stat.get("median_ms") is None:
        return "—"
    median, p95 = stat["median_ms"], stat["p95_ms"]
    digits = 2 if p95 < 10 else 1
    return f"{median:.{digits}f} / {p95:.{digits}f}"


def run_matrix(inputs: list[str], sizes: list[tuple[int, int]], threads: list[int],
               base: dict[str, Any], work_dir: Path,
               echo: Any = None) -> list[dict[str, Any]]:
    """Prepare each input at each size, then measure every size x threads in turn."""
    runs = []
    for source in inputs:
        for width, height in sizes:
            clip = prepare_clip(source, width, height, work_dir)
            for count in threads:
                spec = RunSpec(clip=str(clip), source=str(source), width=width,
                               height=height, threads=count, **base)
                result = run_worker(spec, timeout=spec.seconds * 3 + 120)
                runs.append(result)
                if echo is not None:
                    echo(_progress_line(result))
    return runs


def _progress_line(run: dict[str, Any]) -> str:
    if "error" in run:
        return f"{run.get('label')}: error: {run['error']}"
    return (f"{Path(run['source']).name} {run['width']}x{run['height']} {run['threads']} thr: "
            f"{run['fps']} fps, frame median {run['frame']['median_ms']} ms, "
            f"RSS {run['peak_rss_mb']} MB{_helper_rss(run)}, first result "
            f"{run['first_result_s']} s")


def _helper_rss(run: dict[str, Any]) -> str:
    rss = run.get("scan_process_peak_rss_mb")
    return "" if rss is None else f" (+{rss} MB the scan's helper process)"


@click.command("bench")
@click.option("--input", "-i", "inputs", multiple=True,
              help="Video file (repeatable; default: the embedded sample clip).")
@click.option("--size", "sizes", multiple=True, help="WIDTHxHEIGHT to resize frames to "
              f"(repeatable; default: {', '.join(DEFAULT_SIZES)}).")
@click.option("--threads", "threads", multiple=True, type=click.IntRange(1, 64),
              help="Interpreter threads (repeatable; default: 1 and 2).")
@click.option("--frames", type=click.IntRange(1), default=300, show_default=True,
              help="Timed frames per configuration.")
@click.option("--seconds", type=click.FloatRange(0.1), default=20.0, show_default=True,
              help="Time cap per configuration (the loop stops at frames or seconds).")
@click.option("--warmup", type=click.IntRange(0), default=10, show_default=True,
              help="Frames run before timing starts.")
@click.option("--core", type=click.IntRange(0), default=None,
              help="Core to pin one-thread runs to (default: the first allowed).")
@click.option("--no-pin", is_flag=True, help="Never pin to one core.")
@click.option("--model", default="", help="Model .tflite (default: the shipped model).")
@click.option("--landmarks", default="", help="68-point landmark .dat file.")
@click.option("--detect-every", type=click.IntRange(1, 100), default=None,
              help="Detect every N frames (default: the config's).")
@click.option("--detect-width", type=click.IntRange(80, 4096), default=None,
              help="Width the detector sees (default: the config's).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the results here as JSON.")
@click.option("--pace", type=click.FloatRange(1, 240), default=None,
              help="Camera pace instead: frames released at this rate, three scenes (no "
              "face, one face, a person entering), before and after motion gating; "
              "reports share of one core, frame time and time to first result. --input: "
              "the face clip (default: the shared FOCUS clip, else the embedded one); "
              "--seconds: length of each scene.")
@click.option("--repeat", type=click.IntRange(1, 20), default=1, show_default=True,
              help="With --pace: measure each scene and setting this many times, round "
              "robin, and keep the least disturbed (lowest CPU time); all are in the JSON.")
def bench(inputs: tuple[str, ...], sizes: tuple[str, ...], threads: tuple[int, ...],
          frames: int, seconds: float, warmup: int, core: int | None, no_pin: bool,
          model: str, landmarks: str, detect_every: int | None, detect_width: int | None,
          json_path: Path | None, pace: float | None, repeat: int) -> None:
    """Per-stage latency, fps, peak memory and start-up time of the real loop."""
    from edge.config import DEFAULT_CLIP

    parsed = [parse_size(text) for text in sizes or DEFAULT_SIZES]
    pin = None if no_pin else (core if core is not None else min(allowed_cores()))
    if pace is not None:
        _paced(inputs, pace, seconds, pin, json_path, repeat)
        return
    base = {"frames": frames, "seconds": seconds, "warmup": warmup, "pin": pin,
            "model": model, "landmarks": landmarks, "detect_every": detect_every,
            "detect_width": detect_width}
    with tempfile.TemporaryDirectory(prefix="edge-bench-clips-") as tmp:
        runs = run_matrix(list(inputs) or [str(DEFAULT_CLIP)], parsed,
                          list(threads) or list(DEFAULT_THREADS), base, Path(tmp),
                          echo=lambda line: click.echo(line, err=True))
    report = {"schema": SCHEMA, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "machine": machine_info(), "runs": runs}
    click.echo(format_table(runs))
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report, indent=2) + "\n")
    if any("error" in run for run in runs):
        raise click.ClickException("some configurations failed (see the table)")


def _paced(inputs: tuple[str, ...], fps: float, seconds: float, pin: int | None,
           json_path: Path | None, repeat: int = 1) -> None:
    from edge.commands import pace

    clip = Path(inputs[0]) if inputs else pace.default_clip()
    if not clip.is_file():
        raise click.ClickException(f"{clip}: no such file")
    load_at_start = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    with tempfile.TemporaryDirectory(prefix="edge-paced-") as tmp:
        try:
            runs = pace.run_paced(clip, fps, seconds, pin, list(pace.SETTINGS), Path(tmp),
                                  echo=lambda line: click.echo(line, err=True), repeat=repeat)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(pace.format_table(runs))
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        report = pace.report(runs, clip, fps, seconds, repeat)
        report["machine"]["load_average_at_start"] = load_at_start
        json_path.write_text(json.dumps(report, indent=2) + "\n")
    if any("error" in run for run in runs):
        raise click.ClickException("some scenes failed (see the table)")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        sys.exit(_worker_main(sys.argv[1:]))
    bench()
