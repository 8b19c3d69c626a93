"""Why a stream did not open: refused, 404, timed out, unknown host; and it is a "stream".

The camera is a real MJPEG-over-HTTP server on loopback (tests/helpers/mjpeg_server.py).
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from edge.cli import main as edge_main
from edge.errors import SourceError
from edge.sources import open_source, public_name
from edge.stream_probe import stream_failure_reason
from tests.helpers.mjpeg_server import MjpegCamera, unplug


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_refused_stream_says_stream_and_why() -> None:
    url = f"http://127.0.0.1:{free_port()}/stream.mjpg"
    with pytest.raises(SourceError) as info:
        open_source(url).open()
    message = str(info.value)
    assert message.startswith(f"stream {url} could not be opened: connection refused")
    assert "camera" not in message


def test_wrong_path_says_404() -> None:
    camera = MjpegCamera().start()
    try:
        url = camera.url.replace("stream.mjpg", "nothing.mjpg")
        with pytest.raises(SourceError, match="HTTP 404"):
            open_source(url).open()
    finally:
        camera.stop()


def test_silent_server_says_timed_out() -> None:
    with socket.socket() as server:  # accepts into the backlog, never answers
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        url = f"http://127.0.0.1:{server.getsockname()[1]}/stream.mjpg"
        assert stream_failure_reason(url, timeout=0.5) == "timed out after 0.5 s"
        assert stream_failure_reason(url.replace("http", "rtsp", 1), timeout=0.5).startswith(
            "port ")  # TCP accepts: the reason is further up


def test_unknown_host() -> None:
    assert stream_failure_reason("rtsp://no-such-host.invalid/x", timeout=2) == "host not found"


def test_public_name_hides_a_stream_urls_secrets() -> None:
    assert public_name("rtsp://admin:hunter2@10.0.0.5:554/Streaming/101") == \
        "rtsp://admin:***@10.0.0.5:554/Streaming/101"
    assert public_name("http://cam/video.cgi?user=admin&pwd=hunter2&resolution=640") == \
        "http://cam/video.cgi?user=admin&pwd=***&resolution=640"
    assert public_name("http://viewer@cam/x?Token=abc") == "http://viewer@cam/x?Token=***"
    assert public_name("rtsp://u:p%40ss@[fe80::1]:554/x") == "rtsp://u:***@[fe80::1]:554/x"
    for plain in ("0", "/dev/video0", "clip.mp4", "http://cam:8080/stream.mjpg?fps=15"):
        assert public_name(plain) == plain
    assert public_name("rtsp://u:pw@[fe80::1/x") == "rtsp://***"  # not a URL urllib reads


def test_an_unreadable_url_is_one_line_not_a_traceback() -> None:
    url = "rtsp://u:pw@[fe80::1/x"
    assert stream_failure_reason(url) == "not a valid URL (Invalid IPv6 URL)"
    with pytest.raises(SourceError) as info:
        open_source(url).open()
    assert str(info.value) == ("stream rtsp://*** could not be opened: "
                               "not a valid URL (Invalid IPv6 URL)")
    # From the command line it is a config error (exit 2: no retry), without the password.
    result = CliRunner().invoke(edge_main, ["--input", url, "--log", ""])
    assert result.exit_code == 2
    assert result.output.strip().endswith("source.input: not a valid URL (Invalid IPv6 URL)")
    assert "pw" not in result.output


def test_a_run_from_a_stream_with_credentials_logs_none_of_them(tmp_path: Path) -> None:
    """A real MJPEG camera on loopback, its URL with a password and a token: the events,
    the log lines and a later outage name the stream without them."""
    camera = MjpegCamera().start()
    url = camera.url.replace("http://", "http://admin:hunter2@", 1) + "?token=s3cr3t"
    log = tmp_path / "events.jsonl"
    try:
        result = CliRunner().invoke(edge_main, ["--input", url, "--max-frames", "5",
                                                "--log", str(log)])
        source = open_source(url, retry_initial=0.1, retry_max=0.2)
        source.open()
        try:
            assert source.read(timeout=5.0) is not None
            unplug(camera, source)
            problems = source.drain_problems()
        finally:
            source.close()
    finally:
        camera.stop()
    assert result.exit_code == 0, result.output
    text = log.read_text() + result.output + "\n".join(problems) + source.description
    assert "admin:***@127.0.0.1" in log.read_text() and problems
    assert "hunter2" not in text and "s3cr3t" not in text
