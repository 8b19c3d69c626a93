"""sd_notify against real AF_UNIX datagram sockets (a path one and an abstract one)."""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.notify import SystemdNotifier, socket_address, watchdog_interval

Bound = tuple[socket.socket, str]  # a receiving socket and the NOTIFY_SOCKET value for it


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def receive_all(sock: socket.socket) -> list[str]:
    """Every datagram queued on `sock`, without waiting for more."""
    messages = []
    sock.setblocking(False)
    try:
        while True:
            messages.append(sock.recv(4096).decode())
    except BlockingIOError:
        pass
    finally:
        sock.setblocking(True)
    return messages


@pytest.fixture
def path_socket() -> Iterator[Bound]:
    # A short directory of our own: AF_UNIX paths are limited to 108 bytes, and
    # pytest's tmp_path can be longer than that.
    with tempfile.TemporaryDirectory(prefix="sdn") as tmp:
        path = str(Path(tmp) / "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        sock.settimeout(2.0)
        yield sock, path
        sock.close()


@pytest.fixture
def abstract_socket() -> Iterator[Bound]:
    name = f"edge-emotion-test-{os.getpid()}-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2.0)
    yield sock, "@" + name
    sock.close()


def test_ready_status_stopping_over_a_path_socket(path_socket: Bound) -> None:
    sock, path = path_socket
    with SystemdNotifier({"NOTIFY_SOCKET": path}) as notifier:
        assert notifier.enabled
        assert notifier.ready()
        assert sock.recv(4096) == b"READY=1"
        assert notifier.status("12.5 fps, 1 faces")
        assert sock.recv(4096) == b"STATUS=12.5 fps, 1 faces"
        assert notifier.stopping()
        assert sock.recv(4096) == b"STOPPING=1"


def test_ready_and_stopping_carry_an_optional_status(path_socket: Bound) -> None:
    sock, path = path_socket
    notifier = SystemdNotifier({"NOTIFY_SOCKET": path})
    notifier.ready("running")
    assert sock.recv(4096) == b"READY=1\nSTATUS=running"
    notifier.stopping("SIGTERM")
    assert sock.recv(4096) == b"STOPPING=1\nSTATUS=SIGTERM"
    notifier.close()


def test_status_cannot_smuggle_other_fields(path_socket: Bound) -> None:
    sock, path = path_socket
    notifier = SystemdNotifier({"NOTIFY_SOCKET": path})
    notifier.status("camera lost\nREADY=1")
    assert sock.recv(4096) == b"STATUS=camera lost READY=1"


def test_abstract_socket(abstract_socket: Bound) -> None:
    sock, name = abstract_socket
    notifier = SystemdNotifier({"NOTIFY_SOCKET": name})
    assert notifier.ready()
    assert sock.recv(4096) == b"READY=1"


def test_watchdog_cadence_is_half_the_interval(path_socket: Bound) -> None:
    sock, path = path_socket
    clock = FakeClock()
    notifier = SystemdNotifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"}, clock=clock)
    assert notifier.watchdog_interval == 2.0
    sent_at = []
    # The loop calls watchdog() every 0.1 s for 5 s; pings go out once per second.
    for step in range(51):
        clock.now = 100.0 + step / 10
        if notifier.watchdog():
            sent_at.append(round(clock.now - 100.0, 1))
    assert sent_at == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert receive_all(sock) == ["WATCHDOG=1"] * 6


def test_watchdog_pid_of_this_process_enables_it(path_socket: Bound) -> None:
    sock, path = path_socket
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}
    notifier = SystemdNotifier(env)
    assert notifier.watchdog_interval == 30.0
    assert notifier.watchdog()
    assert sock.recv(4096) == b"WATCHDOG=1"


def test_watchdog_pid_mismatch_disables_only_the_watchdog(path_socket: Bound) -> None:
    sock, path = path_socket
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}
    notifier = SystemdNotifier(env)
    assert notifier.watchdog_interval is None
    assert not notifier.watchdog()
    assert notifier.ready()  # the notify socket itself still works
    assert receive_all(sock) == ["READY=1"]


def test_disabled_without_environment() -> None:
    notifier = SystemdNotifier({})
    assert not notifier.enabled
    assert notifier.watchdog_interval is None
    assert not notifier.ready()
    assert not notifier.watchdog()
    assert not notifier.status("x")
    assert not notifier.stopping()
    notifier.close()


def test_watchdog_needs_a_socket() -> None:
    assert SystemdNotifier({"WATCHDOG_USEC": "1000000"}).watchdog_interval is None


def test_reads_the_process_environment(
    monkeypatch: pytest.MonkeyPatch, path_socket: Bound,
) -> None:
    sock, path = path_socket
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    assert SystemdNotifier().ready()
    assert sock.recv(4096) == b"READY=1"


def test_failed_sends_never_raise_and_log_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="edge.notify")
    notifier = SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "gone"),
                                "WATCHDOG_USEC": "1000000"})
    assert notifier.enabled
    assert not notifier.ready()
    assert not notifier.watchdog()
    assert not notifier.status("x")
    failures = [r for r in caplog.records if "sd_notify" in r.getMessage()]
    assert len(failures) == 1
    assert failures[0].levelno == logging.DEBUG


@pytest.mark.parametrize(("value", "expected"), [
    ("/run/systemd/notify", "/run/systemd/notify"),
    ("@abstract", "\0abstract"),
    ("", None),
    ("@", None),
    ("relative/path", None),
    ("vsock:2:1234", None),  # systemd >= 253 for VMs: not ours to speak
])
def test_socket_address(value: str, expected: str | None) -> None:
    assert socket_address(value) == expected


@pytest.mark.parametrize(("env", "expected"), [
    ({"WATCHDOG_USEC": "30000000"}, 30.0),
    ({"WATCHDOG_USEC": "0"}, None),
    ({"WATCHDOG_USEC": "abc"}, None),
    ({"WATCHDOG_USEC": "-5"}, None),
    ({}, None),
    ({"WATCHDOG_USEC": "500000", "WATCHDOG_PID": "42"}, 0.5),
    ({"WATCHDOG_USEC": "500000", "WATCHDOG_PID": "43"}, None),
    ({"WATCHDOG_USEC": "500000", "WATCHDOG_PID": "x"}, None),
])
def test_watchdog_interval(env: dict[str, str], expected: float | None) -> None:
    assert watchdog_interval(env, pid=42) == expected
