"""What may this process do? Run by .ci/systemd-check inside a systemd sandbox.

One line per question, `NAME ALLOWED` or `NAME denied ERRNO`, so the check can tell a
refusal by the sandbox (EPERM: device cgroup, BPF firewall, MemoryDenyWriteExecute;
EAFNOSUPPORT: RestrictAddressFamilies) from an unrelated failure (ECONNREFUSED, EACCES).
Arguments: `tcp:HOST:PORT` (connect) or `udp:HOST:PORT` (send one datagram): a BPF
firewall refuses a datagram with EPERM at once, while a refused TCP handshake may only
time out. Uses only the standard library.
"""

from __future__ import annotations

import errno
import mmap
import os
import socket
import sys
from collections.abc import Callable

# A character device made world-readable by the check (10:200, /dev/net/tun's numbers):
# only the device cgroup (DevicePolicy=closed) can refuse to open it.
DEVICE = "/dev/edge-ci-tun"


def attempt(name: str, action: Callable[[], object]) -> None:
    try:
        action()
    except OSError as exc:
        code = errno.errorcode.get(exc.errno, "TIMEOUT") if exc.errno else "TIMEOUT"
        print(f"{name} denied {code}")
    else:
        print(f"{name} ALLOWED")


def open_device() -> None:
    os.close(os.open(DEVICE, os.O_RDWR))


def map_wx() -> None:
    # PROT_READ | PROT_WRITE | PROT_EXEC: what MemoryDenyWriteExecute= forbids.
    mmap.mmap(-1, 4096, prot=7).close()


def reach(target: str) -> None:
    kind, host, port = target.split(":")
    if kind == "tcp":
        with socket.create_connection((host, int(port)), timeout=3):
            pass
    else:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.sendto(b"edge-ci", (host, int(port)))


def main() -> None:
    with open("/proc/self/status") as lines:
        status = dict(line.split(":", 1) for line in lines if ":" in line)
    print("uid", os.getuid())
    print("caps", status["CapEff"].strip(), status["CapBnd"].strip())
    print("seccomp", status["Seccomp"].strip())
    print("nonewprivs", status["NoNewPrivs"].strip())
    attempt("device", open_device)
    attempt("wx", map_wx)
    for target in sys.argv[1:]:
        attempt(target, lambda target=target: reach(target))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
