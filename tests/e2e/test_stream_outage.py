"""A network stream that goes away and comes back, as the journal and the event log see it.

The camera is a real MJPEG-over-HTTP server on loopback (tests/helpers/mjpeg_server.py).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from edge.sinks.jsonl import read_events
from tests.helpers.mjpeg_server import MjpegCamera

REPO = Path(__file__).resolve().parents[2]


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def wait_for(log: Path, test, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and any(test(e) for e in read_events(log)):
            return
        time.sleep(0.2)
    raise AssertionError(f"nothing matched in {log} within {timeout}s")


def test_outage_keeps_summaries_logs_retries_and_reports_the_reconnect(tmp_path: Path) -> None:
    camera = MjpegCamera().start()
    restarted = MjpegCamera(port=0)
    log = tmp_path / "events.jsonl"
    config = tmp_path / "config.toml"
    config.write_text(f'[source]\ninput = "{camera.url}"\nretry_initial = 0.2\n'
                      f'retry_max = 1.0\n[log]\npath = "{log}"\nsummary_every = 1.0\n')
    process = subprocess.Popen([sys.executable, "-m", "edge.cli", "--config", str(config)],
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        wait_for(log, lambda e: e["event"] == "summary" and e["frames"] > 0, 60)
        camera.stop()
        down = datetime.now(timezone.utc)
        time.sleep(5.0)
        up = datetime.now(timezone.utc)
        restarted = MjpegCamera(port=camera.port).start()
        wait_for(log, lambda e: "reconnected" in e.get("message", ""), 30)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
    finally:
        process.kill()
        camera.stop()
        restarted.stop()
    events = list(read_events(log))
    during = [e for e in events if e["event"] == "summary" and down < utc(e["ts"]) < up]
    assert len(during) >= 3, json.dumps(events, indent=1)  # no 5 s of silence
    errors = [e["message"] for e in events if e["event"] == "error"]
    assert any("reconnect failed" in m and "connection refused" in m for m in errors), errors
    assert any("reconnected after" in m for m in errors)
    assert not any("camera" in m for m in errors)  # a stream is a stream
    journal = stderr.splitlines()
    back = [line for line in journal if "reconnected after" in line]
    assert back and all(line.startswith("WARNING ") for line in back), journal
    assert any(line.startswith("ERROR ") and "connection refused" in line for line in journal)
