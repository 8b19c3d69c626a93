"""Why a stream did not open: refused, 404, timed out, unknown host; and it is a "stream".

The camera is a real MJPEG-over-HTTP server on loopback (tests/helpers/mjpeg_server.py).
"""

from __future__ import annotations

import socket

import pytest

from edge.errors import SourceError
from edge.sources import open_source
from edge.stream_probe import stream_failure_reason
from tests.helpers.mjpeg_server import MjpegCamera


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
