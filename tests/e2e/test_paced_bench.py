"""`edge-run bench --pace`: three scenes before and after gating, a JSON report, its section.

No timing is asserted: only that every scene ran, the figures are there and
consistent, and the person in the scenes with one was found.
"""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from bench import paced_report
from edge.commands.bench import allowed_cores, bench
from edge.commands.pace import FLOOR, FLOOR_SCENES, SCENES, SETTINGS, THREAD, TWO_CORES
from edge.config import DEFAULT_CLIP
from edge.scan_worker import SCAN_NICE


def test_paced_bench_runs_every_scene_and_its_report_renders(tmp_path: Path) -> None:
    out = tmp_path / "paced.json"
    result = CliRunner().invoke(bench, ["--pace", "30", "--seconds", "2", "--input",
                                        str(DEFAULT_CLIP), "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["schema"] == "edge-emotion-paced/1" and report["fps"] == 30
    assert report["gil"]["calls"] >= 2
    runs = report["runs"]
    settings = set(SETTINGS) if len(allowed_cores()) > 1 else set(SETTINGS) - {TWO_CORES}
    assert {(r["scene"], r["setting"]) for r in runs} == {
        (scene, setting) for scene in SCENES for setting in settings
        if setting != FLOOR or scene in FLOOR_SCENES}
    for run in runs:
        assert "error" not in run, run
        assert run["frames"] == 60 and run["cpu_s"] > 0 and run["core_share"] > 0
        frame = run["frame_ms"]
        assert frame["median"] <= frame["p99"] <= frame["max"]
        if run["setting"] == FLOOR:  # only decode and landmarks: a part of the loop's work
            loop = next(r for r in runs if (r["scene"], r["setting"]) == (run["scene"], "after"))
            assert run["stage_ms"].keys() == {"decode", "landmarks"}
            assert run["stage_ms"]["landmarks"] > 0 and run["scans"] == 0
            assert 0 < run["stage_ms"]["landmarks"] < 2 * loop["stage_ms"]["landmarks"]
            continue
        assert run["scans"] >= 1  # at least the first frame is scanned
        if run["face_from"] is None:
            assert run["first_result_s"] is None and run["faces_seen"] == 0
        else:
            assert run["first_result_frame"] >= run["face_from"] and run["faces_seen"] >= 1
        # `before` scans on the loop's thread; the defaults beside it (scan_lag 2).
        assert (run["scan_waits"] is None) == (run["setting"] == "before")
        # ... in its helper process at a lower priority, whose CPU time counts in cpu_s
        # (`scan_process = false`: on a thread).
        if run["setting"] in ("before", THREAD):
            assert run["scan_process_nice"] is None and run["scan_process_cpu_s"] is None
        else:
            assert run["scan_process_nice"] == SCAN_NICE
            assert 0 <= run["scan_process_cpu_s"] <= run["cpu_s"]
            if run["scans"] > 1:  # scans after the first frame's ran in the helper
                assert run["scan_process_cpu_s"] > 0
        assert run["stage_ms"].keys() >= {"detect", "landmarks", "classify"}
    # Two seconds of an empty room: gated, only its first frame is scanned.
    assert next(r for r in runs if (r["scene"], r["setting"]) == ("no face", "after")
                )["scans"] == 1
    assert next(r for r in runs if (r["scene"], r["setting"]) == ("no face", "before")
                )["scans"] == 60

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "BENCHMARKS.md").write_text("# Benchmarks\n\nthe rest\n")
    assert paced_report.main(["--paced", str(out), "--docs", str(docs),
                              "--equivalence", str(tmp_path / "none.json")]) == 0
    text = (docs / "BENCHMARKS.md").read_text()
    assert text.startswith("# Benchmarks\n\nthe rest\n")
    assert text.count(paced_report.PACED_BEGIN) == 1 and "| no face | after |" in text
    assert "| one face | floor |" in text and "The floor (`floor`, one face)" in text
    # Rendering again replaces the section instead of adding a second one.
    assert paced_report.main(["--paced", str(out), "--docs", str(docs),
                              "--equivalence", str(tmp_path / "none.json")]) == 0
    assert (docs / "BENCHMARKS.md").read_text() == text
    assert paced_report.current_section(docs).startswith(paced_report.PACED_BEGIN)
