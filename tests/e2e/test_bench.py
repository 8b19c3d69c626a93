"""`edge-run bench` and the benchmark report writer: they run and write valid output.

No timing is asserted anywhere: these machines are shared and the numbers are
only meaningful in docs/BENCHMARKS.md, next to their baselines.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edge.commands.bench import STAGES, bench, summarize
from edge.images import letterbox


def load_harness():
    """The harness, bench.run_benchmarks (imported here: it needs the repository root)."""
    from bench import run_benchmarks

    return run_benchmarks


def test_bench_runs_a_few_frames_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    result = CliRunner().invoke(bench, ["--frames", "20", "--warmup", "2", "--size", "640x480",
                                        "--threads", "1", "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["schema"] == "edge-emotion-bench/1"
    assert report["machine"]["cores"] >= 1 and report["machine"]["libraries"]
    (run,) = report["runs"]
    assert "error" not in run, run
    assert (run["width"], run["height"], run["threads"]) == (640, 480, 1)
    assert 1 <= run["frames"] <= 20 and run["fps"] > 0
    assert set(run["stages"]) == set(STAGES)
    for stats in run["stages"].values():
        assert stats["n"] == run["frames"] and stats["median_ms"] <= stats["p95_ms"]
    assert run["peak_rss_mb"] > 0 and run["model_size_bytes"] > 0
    assert run["first_result_s"] is not None  # the embedded clip shows a face at once
    assert run["faces_per_frame"] > 0
    assert "| edge int8 |" in result.output  # the Markdown table on stdout


def test_bench_rejects_a_bad_size() -> None:
    result = CliRunner().invoke(bench, ["--size", "640by480", "--frames", "1"])
    assert result.exit_code == 2
    assert "WIDTHxHEIGHT" in result.output


def test_summarize_and_letterbox() -> None:
    stats = summarize([0.001, 0.002, 0.003, 0.004])
    assert stats == {"median_ms": 2.5, "p95_ms": 3.85, "mean_ms": 2.5, "n": 4}
    assert summarize([])["median_ms"] is None
    frame = np.full((360, 640, 3), 200, np.uint8)
    boxed = letterbox(frame, 640, 480)
    assert boxed.shape == (480, 640, 3)
    assert boxed[:60].max() == 0 and boxed[60:420].min() == 200 and boxed[420:].max() == 0


def fake_run(pipeline: str, fps: float, stage_ms: float, threads: int = 1) -> dict:
    stats = {"median_ms": stage_ms, "p95_ms": stage_ms * 2, "mean_ms": stage_ms, "n": 50}
    return {"pipeline": pipeline, "label": pipeline, "source": "/clips/face.mp4", "width": 640,
            "height": 480, "threads": threads, "fps": fps, "frames": 50,
            "stages": {stage: stats for stage in STAGES[:3]}, "frame": stats,
            "peak_rss_mb": 150.0, "first_result_s": 1.2, "model_size_bytes": 1000}


def fake_results(harness) -> dict:
    runs = [fake_run(harness.EDGE, 60.0, 2.0), fake_run(harness.ORIGINAL, 10.0, 30.0),
            fake_run(harness.FER_TF, 25.0, 12.0), fake_run(harness.EDGE, 70.0, 1.5, threads=2),
            {"pipeline": harness.EDGE_FLOAT, "label": harness.EDGE_FLOAT,
             "source": "/clips/face.mp4", "width": 640, "height": 480, "threads": 1,
             "error": "exit 1: boom"}]
    rows = harness.ratios(runs)
    checks = harness.targets(rows)
    return {
        "schema": harness.SCHEMA, "created": "2026-01-01T00:00:00Z", "command": "x",
        "elapsed_s": 10.0, "seconds_per_run": 2.0,
        "machine": {"cpu": "test cpu", "cores": 2, "libraries": {"numpy": "2.0"}},
        "runs": runs, "ratios": rows, "targets": checks,
        "targets_met": all(c["status"] == "met" for c in checks),
        "classification": [{"threads": 1, "models": {
            "edge int8 TFLite (LiteRT)": {"median_ms": 0.1, "p95_ms": 0.2}}}],
        "models": {"int8": {"bytes": 1000}},
        "baselines": {"fer": {"available": False, "reason": "no network"}},
        "profile": {"frames": 50, "fps_under_profiler": 40.0, "loop": {"total_s": 1.0,
                    "functions": [{"function": "`run`", "calls": 10, "tottime_s": 0.5,
                                   "per_call_ms": 50.0, "share": 0.5}]}},
        "probes": {"hog_shipped_ms": 13.0, "decode": {"640x480": {"read_bgr_to_gray_ms": 0.5}}},
    }


def table_rows_consistent(markdown: str) -> None:
    """Every row of a Markdown table has as many cells as its header."""
    width = None
    for line in markdown.splitlines():
        if not line.startswith("|"):
            width = None
            continue
        cells = line.count("|")
        width = width or cells
        assert cells == width, line


def test_report_writer_makes_valid_markdown_json_and_chart(tmp_path: Path) -> None:
    harness = load_harness()
    results = fake_results(harness)
    assert results["ratios"][0]["vs_original"] == 6.0 and results["ratios"][0]["vs_fer"] == 2.4
    assert {c["status"] for c in results["targets"]} == {"met"}
    paths = harness.write_report(results, tmp_path)
    assert json.loads(paths["json"].read_text()) == results
    text = paths["markdown"].read_text()
    assert text.startswith("# Benchmarks")
    for heading in ("## Targets", "## End to end", "## Per stage", "## Classification alone",
                    "## Where the time goes", "## The fer baseline", "## Method"):
        assert heading in text
    assert "**all met**" in text and "error: exit 1: boom" in text
    assert "Unavailable in this run**: no network" in text
    table_rows_consistent(text)
    if "png" in paths:
        assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert re.search(r"!\[.*\]\(benchmarks\.png\)", text)


def test_targets_not_met_and_not_measured() -> None:
    harness = load_harness()
    rows = harness.ratios([fake_run(harness.EDGE, 20.0, 2.0),
                           fake_run(harness.ORIGINAL, 10.0, 30.0)])
    status = {c["target"]: c["status"] for c in harness.targets(rows)}
    assert status["end-to-end fps, 640x480, one core"] == "not met"
    assert status["speed-up over the original project's way"] == "not met"
    assert status["speed-up over the fer pipeline"] == "not measured"


@pytest.mark.parametrize("argv", [["--budget", "5", "--skip-fer"]])
def test_harness_arguments_parse(argv: list[str]) -> None:
    args = load_harness().parse_args(argv)
    assert args.budget == 5 and args.skip_fer and not args.skip_original
