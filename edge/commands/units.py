"""The systemd units and the service's first config, rendered as text.

This module is the single source of truth for the unit files: systemd/*.service and
systemd/config.toml in the repository are its output for the default install
(tests keep them equal), so a non-editable install needs no package data.
`edge-run service install` (edge/commands/service.py) writes what this renders.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from edge.config import Config, MqttConfig, to_toml
from edge.errors import CliError

HEADLESS_UNIT = "edge-emotion.service"
KIOSK_UNIT = "edge-emotion-kiosk.service"
DEFAULT_EXEC = "/usr/local/bin/edge-run"
DEFAULT_CONFIG_DIR = Path("/etc/edge-emotion")
DEFAULT_UNIT_DIR = Path("/etc/systemd/system")
CONFIG_NAME = "config.toml"
# Writable under ProtectSystem=strict: StateDirectory= and LogsDirectory=.
STATE_DIR = "/var/lib/edge-emotion"
LOG_DIR = "/var/log/edge-emotion"
# ProtectHome= hides these; code installed under them must be bound back in read-only.
HOME_ROOTS = (Path("/home"), Path("/root"), Path("/run/user"))
# Network for the MQTT sink, only while the config enables it (edge/mqtt.py renders it).
MQTT_DROPIN = "50-mqtt.conf"
SAFE_PATH = re.compile(r"[A-Za-z0-9/._+@,=~-]+")


@dataclass(frozen=True)
class UnitOptions:
    kiosk: bool = False
    user: str | None = None  # None: DynamicUser=yes
    exec_path: str = DEFAULT_EXEC
    config_path: str = str(DEFAULT_CONFIG_DIR / CONFIG_NAME)
    # Code (venv, editable checkout) under /home or /root, bound read-only into the sandbox.
    code_paths: tuple[str, ...] = ()

    @property
    def unit_name(self) -> str:
        return KIOSK_UNIT if self.kiosk else HEADLESS_UNIT


# ---------------------------------------------------------------------------- rendering

_HEADER = """\
# {title}
# Rendered by edge/service.py for `edge-run service install{flags}`; a reinstall
# replaces this file, so do not edit it.
# Override with a drop-in instead: `systemctl edit {unit}`. No network: with
# mqtt.enabled in the config, `service install` adds {unit}.d/50-mqtt.conf,
# which opens it for the broker only (docs/MQTT.md).
"""

_KIOSK_NOTE = """\
#
# Kiosk: the headless service plus drawing to the Linux framebuffer (console, no desktop).
# Display scheme: a system service gets `--display framebuffer` (this unit). On a machine
# with a desktop session use `--display fullscreen` from that session instead (desktop
# autostart, or a `systemctl --user` unit After=graphical-session.target): the window
# needs the user's X11/Wayland socket and credentials, which a hardened system service
# must not be given. Only one of edge-emotion / edge-emotion-kiosk runs (Conflicts=):
# both would open the same camera.
# Exposure vs the headless unit: the only extra access is the framebuffer device
# (DeviceAllow=char-fb), which `systemd-analyze security` scores like the camera
# allowlist both units already have, so both rate the same: 0.7 of 10 with systemd 252
# (0.6 before setpriority came back for the face scan's process, below).
"""

_UNIT_SECTION = """\
[Unit]
Description={description}
After=local-fs.target
Conflicts={other_unit}
# Never give up on a camera: one plugged in after boot (edge-run exits 3 while it is
# missing) must still be picked up months later. RestartSec=15 allows at most 4 restarts
# a minute, under this limit, so it only stops something else restarting us in a tight
# loop (then: `systemctl reset-failed {unit}`).
StartLimitIntervalSec=60
StartLimitBurst=5
"""

_PROCESS = """\
[Service]
Type=notify
# Only the Python process itself may send READY/WATCHDOG/STATUS (edge/notify.py).
NotifyAccess=main
ExecStart={exec_start}
WorkingDirectory={state_dir}
Environment=PYTHONUNBUFFERED=1
SyslogIdentifier={ident}
# READY=1 follows model loading and the first frame: generous for a Pi Zero's SD card.
TimeoutStartSec=120
# Armed once READY=1 is sent; the loop pings every iteration (sent every 15 s at most).
# A hung camera read or a deadlock stops the pings and systemd restarts the service.
WatchdogSec=30
Restart=on-failure
RestartSec=15
# Exit 2 is bad config or a bad model: restarting cannot fix it, so stop and say so
# in the journal. Exit 3 (camera missing) and crashes are retried.
RestartPreventExitStatus=2
# SIGTERM: the loop sends STOPPING=1, closes the log and camera, exits 0.
KillSignal=SIGTERM
TimeoutStopSec=15
"""

_IDENTITY_DYNAMIC = """\
# Identity: a throwaway uid, allocated at start; group video opens cameras{fb}.
DynamicUser=yes
SupplementaryGroups=video
"""

_IDENTITY_USER = """\
# Identity: an existing account (--user); group video opens cameras{fb}.
User={user}
SupplementaryGroups=video
"""

_DIRECTORIES = """\
# The only writable places: {state_dir} (working directory, snapshots)
# and {log_dir} (the JSONL event log). Private to the service (0750 dirs,
# 0600 files): emotion records are personal data.
StateDirectory=edge-emotion
StateDirectoryMode=0750
LogsDirectory=edge-emotion
LogsDirectoryMode=0750
UMask=0077
"""

_DEVICES = """\
# Devices: nothing but the camera stack{fb_note}.
# video4linux covers /dev/video* and /dev/v4l-subdev* (USB/V4L2 and the Pi's ISP nodes);
# media and dma_heap are what libcamera/picamera2 open (media controller, frame buffers).
# /dev/vchiq is not listed: libcamera reaches the firmware ISP through V4L2, not VCHIQ.
# PrivateDevices=yes would hide the camera too; DevicePolicy=closed is its equivalent here.
DevicePolicy=closed
DeviceAllow=char-video4linux rw
DeviceAllow=char-media rw
DeviceAllow=char-dma_heap rw
"""

_HARDENING = """\
# No network at all: the service only reads a camera and writes local files. AF_UNIX
# stays for sd_notify and the journal. libudev's netlink monitor is not needed:
# libcamera falls back to enumerating cameras through sysfs.
PrivateNetwork=yes
IPAddressDeny=any
RestrictAddressFamilies=AF_UNIX
# Privileges
NoNewPrivileges=yes
CapabilityBoundingSet=
AmbientCapabilities=
RestrictSUIDSGID=yes
# File system
ProtectSystem=strict
ProtectHome={protect_home}
{bind_paths}PrivateTmp=yes
PrivateMounts=yes
RemoveIPC=yes
PrivateIPC=yes
# Kernel and host
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
# Other processes stay invisible. ProcSubset=pid is NOT set: it hides /proc/cpuinfo, which
# XNNPACK's cpuinfo library parses on ARM Linux; without it XNNPACK does not initialise
# and LiteRT falls back to its much slower built-in int8 kernels.
ProtectProc=invisible
RestrictNamespaces=yes
RestrictRealtime=yes
LockPersonality=yes
# Safe: nothing here needs W+X memory. Python, numpy, OpenCV and dlib do not JIT and
# LiteRT's XNNPACK has no JIT; their aarch64 and x86_64 wheels have no executable stack
# or text relocations, and HOG plus a LiteRT+XNNPACK inference run under PR_SET_MDWE.
MemoryDenyWriteExecute=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
# Back from @resources: setpriority alone, for the face scan's helper process to lower
# its own priority (nice +10, edge/scan_worker.py). Without CAP_SYS_NICE a process can
# only ever lower a priority, never raise one.
SystemCallFilter=setpriority
# A refused call fails with EPERM (a Python OSError in the journal) instead of SIGSYS.
SystemCallErrorNumber=EPERM
"""

_INSTALL = """\
[Install]
WantedBy=multi-user.target
"""


def render_unit(opts: UnitOptions) -> str:
    """The unit file text for `opts`."""
    kiosk = opts.kiosk
    parts = [
        _HEADER.format(title=_title(opts), flags=_install_flags(opts), unit=opts.unit_name),
        _KIOSK_NOTE if kiosk else "",
        "\n",
        _UNIT_SECTION.format(
            description=_title(opts),
            other_unit=HEADLESS_UNIT if kiosk else KIOSK_UNIT,
            unit=opts.unit_name,
        ),
        "\n",
        _PROCESS.format(
            exec_start=exec_start(opts),
            state_dir=STATE_DIR,
            ident="edge-emotion-kiosk" if kiosk else "edge-emotion",
        ),
        _identity(opts),
        _configuration_directory(opts),
        _DIRECTORIES.format(state_dir=STATE_DIR, log_dir=LOG_DIR),
        _DEVICES.format(fb_note=", plus the framebuffer" if kiosk else ""),
        "DeviceAllow=char-fb rw\n" if kiosk else "",
        _HARDENING.format(protect_home=_protect_home(opts), bind_paths=_bind_paths(opts)),
        "\n",
        _INSTALL,
    ]
    return "".join(parts)


def exec_start(opts: UnitOptions) -> str:
    args = [_unit_path(opts.exec_path), "run", "--config", _unit_path(opts.config_path)]
    if opts.kiosk:
        args += ["--display", "framebuffer"]
    return " ".join(args)


def _title(opts: UnitOptions) -> str:
    mode = "kiosk, framebuffer display" if opts.kiosk else "headless"
    return f"edge-emotion facial emotion recognition ({mode})"


def _install_flags(opts: UnitOptions) -> str:
    flags = " --kiosk" if opts.kiosk else ""
    return flags + (f" --user {opts.user}" if opts.user else "")


def _identity(opts: UnitOptions) -> str:
    fb = " and framebuffers" if opts.kiosk else ""
    if opts.user:
        return _IDENTITY_USER.format(user=opts.user, fb=fb)
    return _IDENTITY_DYNAMIC.format(fb=fb)


def _configuration_directory(opts: UnitOptions) -> str:
    # ConfigurationDirectory= only names directories below /etc.
    config_dir = Path(opts.config_path).parent
    if config_dir.parent != Path("/etc"):
        return ""
    return f"ConfigurationDirectory={config_dir.name}\n"


def _protect_home(opts: UnitOptions) -> str:
    # tmpfs: an empty /home into which code_paths are bound; the rest stays hidden.
    return "tmpfs" if opts.code_paths else "yes"


def _bind_paths(opts: UnitOptions) -> str:
    if not opts.code_paths:
        return ""
    paths = " ".join(_unit_path(path) for path in opts.code_paths)
    return ("# edge-run is installed under a home directory: expose just that, read-only.\n"
            f"BindReadOnlyPaths={paths}\n")


def _unit_path(path: str) -> str:
    # Paths go into the unit verbatim: refuse what systemd would expand or split
    # (% specifiers, $VARS, spaces, quotes, ':' in BindReadOnlyPaths=).
    if not SAFE_PATH.fullmatch(path) or not path.startswith("/"):
        raise CliError(f"{path}: use an absolute path of letters, digits and /._+@,=~- "
                           "(it is written into the unit file verbatim)")
    return path


def service_config() -> Config:
    """The config a fresh install writes: camera 0, event log in LogsDirectory=."""
    config = Config()
    config.source.input = "0"
    config.log.path = f"{LOG_DIR}/events.jsonl"
    return config


_CONFIG_HEADER = f"""\
# Config of edge-emotion.service and edge-emotion-kiosk.service, written once by
# `edge-run service install` and never overwritten. Apply changes with
# `systemctl restart edge-emotion` (or edge-emotion-kiosk).
# The service can write only below {STATE_DIR} and {LOG_DIR}:
# put snapshots.dir there, e.g. "{STATE_DIR}/snapshots".
# Pi camera: source.input = "picamera". The kiosk unit overrides display.mode on its
# command line (--display framebuffer).
# MQTT (docs/MQTT.md): after setting [mqtt], run `edge-run service install` again so
# the unit gets network access; keep the password in /etc/edge-emotion/mqtt-password
# (mode 0600) with password_file = "mqtt-password".
"""


def render_config() -> str:
    return _CONFIG_HEADER + to_toml(service_config())


def repository_files() -> dict[str, str]:
    """systemd/NAME -> text: what the repository's systemd/ folder must contain."""
    return {
        HEADLESS_UNIT: render_unit(UnitOptions()),
        KIOSK_UNIT: render_unit(UnitOptions(kiosk=True)),
        CONFIG_NAME: render_config(),
    }


# ---------------------------------------------------------------------------- MQTT drop-in


def systemd_dropin(config: MqttConfig, config_dir: str | Path) -> str:
    """The drop-in `service install` writes when mqtt.enabled: network for the broker only."""
    lines = [
        "# Written by `edge-run service install` because mqtt.enabled = true; the next",
        "# install removes it when mqtt is off. Opens the sandbox's network for the broker.",
        "[Unit]",
        "# Stopped before the network at shutdown, so the broker hears \"offline\".",
        "After=network.target",
        "",
        "[Service]",
        "PrivateNetwork=no",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
    ]
    lines += _address_lines(config.host)
    for key in ("password_file", "key_file"):
        name = getattr(config, key)
        if name and not Path(name).is_absolute():
            # DynamicUser= cannot own a 0600 file: systemd hands the service a private
            # copy in $CREDENTIALS_DIRECTORY, where a relative name is looked up.
            lines.append(f"LoadCredential={name}:{Path(config_dir) / name}")
    return "\n".join(lines) + "\n"


def _address_lines(host: str) -> list[str]:
    import ipaddress

    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return ["# mqtt.host is a name: DNS and the broker's address are unknown here, so",
                "# any address is allowed. An IP literal in mqtt.host narrows this to one.",
                "IPAddressDeny="]
    return ["# The unit's IPAddressDeny=any stays; only the broker is allowed.",
            f"IPAddressAllow={'localhost' if address.is_loopback else address}"]
