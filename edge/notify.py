"""sd_notify: tell systemd we are ready, alive, busy with what, and stopping.

The protocol is one datagram of `KEY=VALUE` lines sent to the AF_UNIX socket named
in $NOTIFY_SOCKET (a path, or an abstract name written with a leading '@'). It is a
best-effort side channel: with no socket (run by hand, in tests, in a container) every
call is a cheap no-op, and a failed send is logged once at debug level, never raised,
so a hiccup of the service manager can never stop the camera loop.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)

# A send must never stall the frame loop for long, even if systemd's queue is full.
SEND_TIMEOUT_S = 1.0


def socket_address(value: str) -> str | None:
    """$NOTIFY_SOCKET as an AF_UNIX address: '@name' is the abstract socket '\\0name'."""
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None  # unset, empty, or a transport we do not speak (e.g. vsock:)


def watchdog_interval(env: Mapping[str, str], pid: int) -> float | None:
    """Seconds from $WATCHDOG_USEC; None when unset, invalid, or meant for another pid."""
    owner = env.get("WATCHDOG_PID", "")
    # systemd sets WATCHDOG_PID so that a child which inherited the environment does not
    # believe the watchdog is its job.
    if owner and (not owner.isdigit() or int(owner) != pid):
        return None
    usec = env.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    return int(usec) / 1_000_000


class SystemdNotifier:
    """READY / WATCHDOG / STATUS / STOPPING for a `Type=notify` service.

    `watchdog()` is meant to be called on every loop iteration: it sends at most once per
    half watchdog interval, as sd_watchdog_enabled(3) recommends.
    """

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        env = os.environ if env is None else env
        self._address = socket_address(env.get("NOTIFY_SOCKET", ""))
        interval = watchdog_interval(env, os.getpid())
        self._watchdog_interval = interval if self._address is not None else None
        self._clock = clock
        self._sock: socket.socket | None = None
        self._last_ping = -math.inf
        self._failure_logged = False

    @property
    def enabled(self) -> bool:
        """True when systemd gave us a notification socket."""
        return self._address is not None

    @property
    def watchdog_interval(self) -> float | None:
        """The service's WatchdogSec= in seconds, or None when no watchdog applies to us."""
        return self._watchdog_interval

    def ready(self, status: str | None = None) -> bool:
        """Start-up is complete: systemd moves the unit to 'active' and arms the watchdog."""
        return self.notify("READY=1", *self._status_field(status))

    def watchdog(self) -> bool:
        """Keep-alive; rate-limited so that calling it every frame costs one clock read."""
        if self._watchdog_interval is None:
            return False
        now = self._clock()
        if now - self._last_ping < self._watchdog_interval / 2:
            return False
        self._last_ping = now
        return self.notify("WATCHDOG=1")

    def status(self, text: str) -> bool:
        """Free-form one-liner shown by `systemctl status` (e.g. fps and faces)."""
        return self.notify(*self._status_field(text))

    def stopping(self, status: str | None = None) -> bool:
        """Shutdown has begun (on SIGTERM): systemd stops expecting watchdog pings."""
        return self.notify("STOPPING=1", *self._status_field(status))

    def notify(self, *fields: str) -> bool:
        """Send `KEY=VALUE` fields as one datagram; True if it was sent."""
        if self._address is None or not fields:
            return False
        try:
            self._socket().sendto("\n".join(fields).encode(), self._address)
        except OSError as exc:
            self._log_failure(exc)
            return False
        return True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> SystemdNotifier:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _socket(self) -> socket.socket:
        # One socket for the life of the process: the watchdog sends every few seconds
        # for months, so do not open a new one each time.
        if self._sock is None:
            # Python sockets are close-on-exec already (PEP 446): children do not inherit it.
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.settimeout(SEND_TIMEOUT_S)
            self._sock = sock
        return self._sock

    def _log_failure(self, exc: OSError) -> None:
        if not self._failure_logged:
            self._failure_logged = True
            log.debug("sd_notify to %r failed (%s); further failures are not logged",
                      self._address, exc)

    @staticmethod
    def _status_field(text: str | None) -> tuple[str, ...]:
        if text is None:
            return ()
        # A newline would start a new KEY=VALUE line and could smuggle in e.g. READY=1.
        return ("STATUS=" + " ".join(text.splitlines()),)
