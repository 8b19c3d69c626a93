"""Why a network stream did not open: OpenCV only says that it failed.

Asked only after OpenCV gave up, so a working stream costs nothing. HTTP(S) URLs get
one direct request (the status line says 404, 401, ...); other schemes (rtsp, rtmp,
...) a TCP connection to the port, which tells a refused connection, a timeout and an
unknown host apart.
"""

from __future__ import annotations

import base64
import socket
import urllib.error
import urllib.parse
import urllib.request

DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322, "rtmp": 1935, "http": 80, "https": 443}


def stream_failure_reason(url: str, timeout: float = 3.0) -> str:
    """A short reason, e.g. 'connection refused', 'HTTP 404 Not Found', 'timed out after 3 s'."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as exc:  # an unclosed [IPv6 address
        return f"not a valid URL ({exc})"
    scheme = parts.scheme.lower()
    try:
        host, port = parts.hostname, parts.port or DEFAULT_PORTS.get(scheme)
    except ValueError:  # a port that is not a number
        return "invalid port in the URL"
    if not host:
        return "no host in the URL"
    if scheme in ("http", "https"):
        return _http_reason(parts, timeout)
    if port is None:
        return f"unknown scheme {scheme!r} and no port in the URL"
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        return _network_reason(exc, timeout)
    return (f"port {port} accepts connections, but no stream opened there "
            "(wrong path, credentials or format?)")


def _http_reason(parts: urllib.parse.SplitResult, timeout: float) -> str:
    # Credentials in the URL go into a header: urllib does not take them from the URL.
    netloc = parts.hostname or ""
    if ":" in netloc:
        netloc = f"[{netloc}]"
    if parts.port:
        netloc += f":{parts.port}"
    request = urllib.request.Request(urllib.parse.urlunsplit(parts._replace(netloc=netloc)))
    if parts.username is not None:
        user = urllib.parse.unquote(parts.username)
        password = urllib.parse.unquote(parts.password or "")
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # as a camera: direct
    try:
        with opener.open(request, timeout=timeout) as response:
            kind = response.headers.get("Content-Type", "unknown content")
            return f"the server answered HTTP {response.status} ({kind}), but no video in it"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code} {exc.reason}"
    except urllib.error.URLError as exc:
        reason = exc.reason
        return _network_reason(reason, timeout) if isinstance(reason, OSError) else str(reason)
    except OSError as exc:  # a timeout while reading the answer
        return _network_reason(exc, timeout)


def _network_reason(exc: OSError, timeout: float) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):  # socket.timeout is TimeoutError since Python 3.10
        return f"timed out after {timeout:g} s"
    if isinstance(exc, socket.gaierror):
        return "host not found"
    return (exc.strerror or str(exc)).lower()
