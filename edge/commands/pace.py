"""`edge-run bench --pace FPS`: the real loop at camera pace, scene by scene.

A camera delivers frames at its rate, not as fast as the loop can take them, so
what matters on a device that runs for months is the share of a core the loop
keeps busy, whether any frame stalls, and how soon a person who walks in is
classified. Each (scene, setting) runs in a fresh process pinned to one core
(like `taskset -c CORE`), with frames released on the camera's schedule:

* share of one core: process CPU time (every thread, and the scan's helper
  process) per second of video, which is CPU over wall time while the loop keeps pace;
* frame time: from reading a frame to its events written (decode, detection,
  landmarks, classification, log), median / p99 / max;
* first result: from the moment the first frame with the face was due to the
  moment its first classification was written.

Scenes, made in the harness as Motion-JPEG clips (a USB webcam's format):
`no face`, a face-free still with synthetic sensor noise (Gaussian, per pixel,
new each frame); `one face`, a real clip; `person enters`, LEAD_IN seconds of
the noisy still, then the clip. The still is the clip's first frame cut to its
left third (wall and furniture in the FOCUS clip) and stretched to size; the
harness checks HOG finds no face in it.

Settings: `before` is the loop as it was (no motion gating, the full-frame scan
on the loop's thread: `motion = false`, `scan_lag = 0`); `after` the defaults;
`after, scan on a thread` the defaults with `scan_process = false`; `after, 2 cores`
the defaults with a second core allowed, as on a Pi's four (the scan's helper process
can then run beside the loop instead of sharing its core).
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edge.measure import cpu_seconds

SCHEMA = "edge-emotion-paced/1"
NOISE_SIGMA = 6.0  # gray levels: a webcam in indoor light
LEAD_IN = 3.0  # seconds of empty room before the person
SETTINGS: dict[str, dict[str, Any]] = {
    "before": {"motion": False, "scan_lag": 0},
    "after": {},
    # The scan beside the loop on a thread, as before it had its own process: the
    # same-run baseline for what the helper process does to frame times on one core.
    "after, scan on a thread": {"scan_process": False},
    "after, 2 cores": {},
    "floor": {"scan_lag": 0},  # not the loop (_floor_loop); no scan, so no helper process
}
FLOOR = "floor"
FLOOR_SCENES = ("one face",)
THREAD = "after, scan on a thread"
TWO_CORES = "after, 2 cores"  # the one setting run on two cores (skipped where one is allowed)
SCENES = ("no face", "one face", "person enters")


@dataclass
class PacedSpec:
    scene: str
    setting: str
    clip: str
    fps: float
    frames: int
    face_from: int | None  # first frame with the face; None: no face in the scene
    detect: dict[str, Any] = field(default_factory=dict)
    pin: list[int] | None = field(default_factory=lambda: [0])  # cores; None: not pinned


# --- scenes -----------------------------------------------------------------------


def default_clip() -> Path:
    """The shared FOCUS clip (30 fps, 640x480, one person) if present, else the embedded one."""
    from edge.config import DEFAULT_CLIP, PACKAGE_DIR

    shared = Path(os.environ.get("EDGE_SHARED_DIR", PACKAGE_DIR.parent.parent / "shared"))
    focus = shared / "data" / "media" / "video" / "focus_blink_noncommercial" / "mahie_test_2.avi"
    return focus if focus.is_file() else DEFAULT_CLIP


def empty_still(clip: Path, width: int, height: int) -> Any:
    """A face-free picture of the clip's room: its first frame's left third, stretched."""
    import cv2

    capture = cv2.VideoCapture(str(clip))
    ok, image = capture.read()
    capture.release()
    if not ok:
        raise ValueError(f"{clip}: no frame could be read")
    third = image[:, : image.shape[1] // 3]
    return cv2.resize(third, (width, height), interpolation=cv2.INTER_LINEAR)


def clip_frames(clip: Path, width: int, height: int, count: int) -> list[Any]:
    """`count` frames of `clip` at width x height (letterboxed), looping if it is short."""
    import cv2

    from edge.images import letterbox

    capture = cv2.VideoCapture(str(clip))
    frames: list[Any] = []
    try:
        while len(frames) < count:
            ok, image = capture.read()
            if not ok:
                if not frames:
                    raise ValueError(f"{clip}: no frame could be read")
                capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                continue
            frames.append(letterbox(image, width, height))
    finally:
        capture.release()
    return frames


def write_mjpeg(frames: list[Any], path: Path, fps: float) -> Path:
    import cv2

    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    try:
        for frame in frames:
            writer.write(frame)
    finally:
        writer.release()
    return path


def make_scenes(clip: Path, out_dir: Path, fps: float, seconds: float, width: int = 640,
                height: int = 480, seed: int = 0) -> dict[str, tuple[Path, int | None]]:
    """The three scene clips: name -> (path, first frame with the face or None)."""
    import numpy as np

    from edge.faces import FaceDetector

    rng = np.random.default_rng(seed)
    total = max(1, round(seconds * fps))
    lead = min(total // 2, round(LEAD_IN * fps))  # short runs: half empty, half person
    still = empty_still(clip, width, height).astype(np.float32)
    if FaceDetector().detect(still.astype(np.uint8)):
        raise ValueError(f"{clip}: the left third of its first frame has a face; "
                         "the empty scene needs a clip whose face is not at the left")

    def noisy() -> Any:
        return np.clip(still + rng.normal(0, NOISE_SIGMA, still.shape), 0, 255).astype(np.uint8)

    person = clip_frames(clip, width, height, total)
    scenes = {
        "no face": ([noisy() for _ in range(total)], None),
        "one face": (person, 0),
        "person enters": ([noisy() for _ in range(lead)] + person[: total - lead], lead),
    }
    made = {}
    for name, (frames, face_from) in scenes.items():
        path = out_dir / (name.replace(" ", "_") + ".avi")
        made[name] = (write_mjpeg(frames, path, fps), face_from)
    return made


# --- the paced loop (runs in the worker process) ----------------------------------


def measure(spec: PacedSpec) -> dict[str, Any]:
    from edge.commands.bench import pin_to

    cores = pin_to(set(spec.pin) if spec.pin is not None else None)
    from edge import config as config_module
    from edge.build import build
    from edge.runner import Runner
    from edge.sinks.jsonl import JsonlLog

    config = config_module.load(None, {
        "detect": dict(spec.detect), "model": {"threads": 1},
        "source": {"input": spec.clip, "width": 640, "height": 480},
        "log": {"path": ""}})  # the log below, in a temporary folder
    with tempfile.TemporaryDirectory(prefix="edge-paced-") as tmp:
        # live: the harness plays a camera, so a late scan delays a face, not a frame.
        runner = Runner(build(config, [JsonlLog(Path(tmp) / "events.jsonl").open()],
                              live=True))
        with runner.parts:
            loop = _floor_loop if spec.setting == FLOOR else _paced_loop
            result = loop(spec, runner)
    return {"scene": spec.scene, "setting": spec.setting, "fps_target": spec.fps,
            "cores": cores, "detect": {key: getattr(config.detect, key) for key in
                                       ("motion", "scan_lag", "idle_scan", "still_scan",
                                        "scan_every", "scan_process")},
            **result}


def _paced_loop(spec: PacedSpec, runner: Any) -> dict[str, Any]:
    """The real loop (`Runner.step`), each frame released when a camera would deliver it."""
    clock = time.perf_counter
    pipeline = runner.parts.pipeline
    period = 1.0 / spec.fps
    frame_times: list[float] = []
    frame_cpu: list[float] = []  # the loop thread's own CPU time: what a frame costs it,
    late = 0                     # whatever else shares the core
    first_result_at: float | None = None
    first_result_frame: int | None = None
    stages: dict[str, float] = {}  # the pipeline's own stage times (wall), summed
    # The scan's helper process (edge/scan_worker.py) works for this loop: its CPU
    # time counts in the scene's share of a core. Its start-up does not.
    helper = pipeline.scan_detector if hasattr(pipeline.scan_detector, "pid") else None
    if helper is not None:
        helper.ready()
    helper_pid = helper.pid if helper is not None else None
    helper_start = cpu_seconds(helper_pid) if helper_pid is not None else None
    start = clock()
    cpu_start = time.process_time()
    for index in range(spec.frames):
        due = start + index * period  # when the camera delivers this frame
        wait = due - clock()
        if wait > 0:
            time.sleep(wait)
        else:
            late += wait < -period  # a whole frame behind: a camera would have dropped one
        t0, c0 = clock(), time.thread_time()
        result = runner.step()  # read, detect/track, landmarks, classify, events, stats
        t1 = clock()
        if result is None:
            break
        frame_times.append(t1 - t0)
        frame_cpu.append(time.thread_time() - c0)
        for stage, seconds in result.timings.items():
            stages[stage] = stages.get(stage, 0.0) + seconds
        t2 = clock()
        runner.idle()  # as Runner.run: work for the next frame, after this one's events
        stages["idle"] = stages.get("idle", 0.0) + clock() - t2
        if (first_result_at is None and spec.face_from is not None
                and result.frame.index >= spec.face_from
                and any(face.probabilities is not None for face in result.faces)):
            first_result_at = t1 - (start + spec.face_from * period)
            first_result_frame = result.frame.index
    wall = clock() - start
    cpu = time.process_time() - cpu_start
    helper_cpu = None
    if helper_pid is not None and helper_start is not None:
        helper_end = cpu_seconds(helper_pid)
        helper_cpu = None if helper_end is None else helper_end - helper_start
        cpu += helper_cpu or 0.0
    scanner = pipeline.scanner
    return {
        "frames": len(frame_times), "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
        # of which the scan's helper process (None: the scan ran on a thread, or not at all)
        "scan_process_cpu_s": None if helper_cpu is None else round(helper_cpu, 3),
        "scan_process_nice": None if helper is None else helper.nice,
        # CPU time per second of video: the share of a core this scene needs to keep pace
        # (CPU over wall time, core_share_wall, is the same while the loop keeps up, and
        # understates it when the loop falls behind and the wall time stretches).
        "core_share": round(cpu * spec.fps / len(frame_times), 4) if frame_times else None,
        "core_share_wall": round(cpu / wall, 4) if wall > 0 else None,
        "frame_ms": _stats(sorted(frame_times)), "frame_cpu_ms": _stats(sorted(frame_cpu)),
        "scans": pipeline.schedule.count,
        "scan_waits": None if scanner is None else scanner.waits,
        "scan_wait_max_ms": None if scanner is None else round(scanner.wait_max * 1e3, 2),
        "frames_late": late,
        "stage_ms": {stage: round(total / len(frame_times) * 1e3, 3)
                     for stage, total in stages.items()} if frame_times else {},
        "face_from": spec.face_from,
        "first_result_s": None if first_result_at is None else round(first_result_at, 3),
        "first_result_frame": first_result_frame,
        "faces_seen": runner.stats.total.faces,
    }


def _floor_loop(spec: PacedSpec, runner: Any) -> dict[str, Any]:
    """What a tracked face's every frame cannot do without: the source's read (decode)
    and the 68-point landmarks (blinks need them each frame), at the same pace. The box
    is the first frame's face, kept: no detection, crop, classification, blinks or log."""
    source, pipeline = runner.parts.source, runner.parts.pipeline
    clock = time.perf_counter
    period = 1.0 / spec.fps
    first = clip_frames(Path(spec.clip), 640, 480, 1)[0]  # the box: the clip's first face
    faces = pipeline.detector.detect(first)
    if not faces:
        raise ValueError(f"{spec.clip}: no face in its first frame for the floor")
    box = faces[0].box
    frame_times: list[float] = []
    decode = landmarks = 0.0
    start = clock()
    cpu_start = time.process_time()
    for index in range(spec.frames):
        wait = start + index * period - clock()
        if wait > 0:
            time.sleep(wait)
        t0 = clock()
        frame = source.read(timeout=5.0)
        t1 = clock()
        if frame is None:
            break
        pipeline.landmarks.predict(frame.gray, box)
        t2 = clock()
        frame_times.append(t2 - t0)
        decode += t1 - t0
        landmarks += t2 - t1
    cpu = time.process_time() - cpu_start
    count = len(frame_times)
    return {
        "frames": count, "wall_s": round(clock() - start, 3), "cpu_s": round(cpu, 3),
        "core_share": round(cpu * spec.fps / count, 4) if count else None,
        "frame_ms": _stats(sorted(frame_times)), "frame_cpu_ms": None,
        "scans": 0, "scan_waits": None, "frames_late": 0, "face_from": None,
        "first_result_s": None, "first_result_frame": None,
        "stage_ms": {"decode": round(decode / max(count, 1) * 1e3, 3),
                     "landmarks": round(landmarks / max(count, 1) * 1e3, 3)},
    }


def _stats(ordered: list[float]) -> dict[str, float] | None:
    if not ordered:
        return None
    return {"median": round(statistics.median(ordered) * 1e3, 2),
            "p99": round(_quantile(ordered, 0.99) * 1e3, 2), "max": round(ordered[-1] * 1e3, 2)}


def _quantile(ordered: list[float], q: float) -> float:
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def worker_main(argv: list[str]) -> int:
    """`python -m edge.commands.pace SPEC_JSON SPAWNED_AT`: print one JSON result line."""
    spec = PacedSpec(**json.loads(argv[0]))
    print(json.dumps(measure(spec)), flush=True)
    return 0


# --- the parent -------------------------------------------------------------------


def run_paced(clip: Path, fps: float, seconds: float, pin: int | None,
              settings: list[str], work_dir: Path, echo: Any = None,
              repeat: int = 1) -> list[dict[str, Any]]:
    """Make the scenes, then measure each (scene, setting) in a fresh process, `repeat`
    times round robin, keeping the least disturbed run (lowest CPU time: on a shared
    machine other programs only ever add to it); every run's figures are in `samples`."""
    import sys

    from edge.commands.bench import allowed_cores, spawn_worker

    cores: dict[str, list[int] | None] = {setting: None if pin is None else [pin]
                                          for setting in settings}
    others = sorted(allowed_cores() - {pin})
    if TWO_CORES in cores:
        if pin is not None and others:
            cores[TWO_CORES] = [pin, others[0]]
        else:  # unpinned, or one core allowed: the same as `after`
            del cores[TWO_CORES]
    scenes = make_scenes(clip, work_dir, fps, seconds)
    samples: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for _ in range(repeat):
        for scene, (path, face_from) in scenes.items():
            for setting in cores:
                if setting == FLOOR and scene not in FLOOR_SCENES:
                    continue
                spec = PacedSpec(scene=scene, setting=setting, clip=str(path), fps=fps,
                                 frames=max(1, round(seconds * fps)), face_from=face_from,
                                 detect=SETTINGS[setting], pin=cores[setting])
                result = spawn_worker([sys.executable, "-m", "edge.commands.pace"],
                                      asdict(spec), timeout=seconds * 4 + 120)
                if "error" in result:
                    result = {"scene": scene, "setting": setting, "error": result["error"]}
                samples.setdefault((scene, setting), []).append(result)
                if echo is not None:
                    echo(progress_line(result))
    runs = []
    for tries in samples.values():
        good = [run for run in tries if "error" not in run]
        if not good:
            runs.append(tries[-1])
            continue
        best = dict(min(good, key=lambda run: run["cpu_s"]))
        best["samples"] = [{key: run.get(key) for key in
                            ("core_share", "frame_ms", "frame_cpu_ms", "first_result_s")}
                           for run in good]
        runs.append(best)
    return runs


def progress_line(run: dict[str, Any]) -> str:
    if "error" in run:
        return f"{run['scene']} ({run['setting']}): error: {run['error']}"
    frame = run["frame_ms"] or {}
    return (f"{run['scene']} ({run['setting']}): {100 * run['core_share']:.1f}% of a core, "
            f"frame ms median {frame.get('median')} p99 {frame.get('p99')} max "
            f"{frame.get('max')}, first result {run['first_result_s']} s")


def format_table(runs: list[dict[str, Any]]) -> str:
    head = ["scene", "setting", "share of one core", "frame ms median / p99 / max",
            "frames a period late", "first result s (frame)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for run in runs:
        if "error" in run:
            lines.append(f"| {run['scene']} | {run['setting']} | error: {run['error']} | | | |")
            continue
        frame = run["frame_ms"] or {}
        first = "—" if run["face_from"] is None else (
            "not found" if run["first_result_s"] is None else
            f"{run['first_result_s']:.3f} (+{run['first_result_frame'] - run['face_from']})")
        lines.append(f"| {run['scene']} | {run['setting']} | {100 * run['core_share']:.1f}% | "
                     f"{frame.get('median')} / {frame.get('p99')} / {frame.get('max')} | "
                     f"{run['frames_late']} | {first} |")
    return "\n".join(lines)


def gil_probe(calls: int = 4) -> dict[str, Any]:
    """Does dlib's HOG detector release the GIL? Watch a Python loop while it runs.

    A thread runs the detector `calls` times on a 640x480 frame while this thread
    spins; if the detector held the GIL, this thread could not run for a whole call
    (its longest gap would be a call's length). Also: `calls` detections on one
    thread, then split over two threads (a speed-up needs a free second core).
    """
    import threading

    import numpy as np

    from edge.faces import FaceDetector

    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (480, 640), dtype=np.uint8)
    detectors = [FaceDetector(), FaceDetector()]
    durations: list[float] = []

    def work(detector: Any, count: int) -> None:
        for _ in range(count):
            t = time.perf_counter()
            detector.detect(gray)
            durations.append(time.perf_counter() - t)

    thread = threading.Thread(target=work, args=(detectors[0], calls))
    thread.start()
    longest, last = 0.0, time.perf_counter()
    while thread.is_alive():
        now = time.perf_counter()
        longest, last = max(longest, now - last), now
    thread.join()
    shortest = min(durations)  # of the calls made while this thread was spinning
    t = time.perf_counter()
    work(detectors[0], calls)
    serial = time.perf_counter() - t
    t = time.perf_counter()
    pair = [threading.Thread(target=work, args=(d, calls // 2)) for d in detectors]
    for th in pair:
        th.start()
    for th in pair:
        th.join()
    parallel = time.perf_counter() - t
    return {"calls": calls, "detector_call_ms": round(serial / calls * 1e3, 1),
            "shortest_call_beside_python_ms": round(shortest * 1e3, 1),
            "longest_python_gap_ms": round(longest * 1e3, 1),
            "releases_gil": longest < 0.5 * shortest,
            "serial_s": round(serial, 3), "two_threads_s": round(parallel, 3),
            "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None}


def report(runs: list[dict[str, Any]], clip: Path, fps: float, seconds: float,
           repeat: int = 1) -> dict[str, Any]:
    from edge.commands.bench import machine_info

    return {"schema": SCHEMA, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": machine_info(), "clip": clip.name, "fps": fps, "seconds": seconds,
            "repeat": repeat, "load_average_at_end": list(os.getloadavg()),
            "noise_sigma": NOISE_SIGMA, "settings": SETTINGS,
            "lead_in_s": min(LEAD_IN, round(seconds * fps) // 2 / fps),
            "gil": gil_probe(), "runs": runs}


if __name__ == "__main__":
    import sys

    sys.exit(worker_main(sys.argv[1:]))
