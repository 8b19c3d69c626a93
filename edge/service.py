"""`edge-run service install|uninstall`: the systemd units, rendered from this module.

This module is the single source of truth for the unit files: systemd/*.service and
systemd/config.toml in the repository are its output for the default install
(tests/test_systemd.py keeps them equal), so a non-editable install needs no package data.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import click

from edge.config import Config, load, to_toml
from edge.errors import EdgeError

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
# PrivateTmp=yes gives the service an empty /tmp and /var/tmp of its own: a program or
# config file under these is not there for it (status 203/EXEC).
PRIVATE_TMP_DIRS = (Path("/tmp"), Path("/var/tmp"))
# Network for the MQTT sink, only while the config enables it (edge/mqtt.py renders it).
MQTT_DROPIN = "50-mqtt.conf"
SAFE_PATH = re.compile(r"[A-Za-z0-9/._+@,=~-]+")


class ServiceError(click.ClickException):
    """One line `edge-run: error: ...` on stderr, exit status 2, no traceback."""

    exit_code = 2

    def show(self, file: IO[str] | None = None) -> None:
        click.echo(f"edge-run: error: {self.format_message()}", err=True, file=file)


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
# allowlist both units already have, so both rate the same: 0.6 of 10 with systemd 252.
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
        raise ServiceError(f"{path}: use an absolute path of letters, digits and /._+@,=~- "
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


# ---------------------------------------------------------------------------- planning


@dataclass
class Plan:
    """Everything install/uninstall would do; --dry-run prints it, otherwise it is done."""

    stops: list[list[str]] = field(default_factory=list)  # before files change
    writes: list[tuple[Path, str]] = field(default_factory=list)
    removes: list[Path] = field(default_factory=list)
    commands: list[list[str]] = field(default_factory=list)  # after files change
    notes: list[str] = field(default_factory=list)


def find_edge_run(argv0: str | None = None) -> str:
    """Absolute path of the edge-run being used: argv[0] first (sudo resets PATH), then PATH."""
    argv0 = sys.argv[0] if argv0 is None else argv0
    if Path(argv0).name == "edge-run" and os.access(argv0, os.X_OK):
        return os.path.abspath(argv0)
    found = shutil.which("edge-run")
    if found:
        return os.path.abspath(found)
    raise ServiceError("cannot find the edge-run executable; pass --exec-path")


def code_paths(exec_path: str) -> tuple[str, ...]:
    """Where the code lives, if under a directory that ProtectHome= hides."""
    import edge

    candidates = [
        Path(exec_path).resolve().parent.parent,  # the venv (or prefix) of the script
        Path(sys.prefix).resolve(),
        Path(sys.base_prefix).resolve(),  # the interpreter a venv links to (e.g. pyenv)
        Path(edge.__file__).resolve().parent.parent,  # an editable checkout
    ]
    hidden = [p for p in candidates if any(p.is_relative_to(r) for r in HOME_ROOTS)]
    # Keep the outermost of nested paths, in a stable order.
    kept = [p for p in hidden if not any(p != q and p.is_relative_to(q) for q in hidden)]
    return tuple(sorted({str(p) for p in kept}))


def user_exists(name: str) -> bool:
    import pwd  # Unix only; imported here so `edge-run --help` works everywhere

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def plan_install(opts: UnitOptions, unit_dir: Path, systemctl: str) -> Plan:
    plan = Plan()
    unit_path = unit_dir / opts.unit_name
    reinstall = unit_path.exists()
    plan.writes.append((unit_path, render_unit(opts)))
    config = Path(opts.config_path)
    if config.exists():
        settings = _check_config(config)
        plan.notes.append(f"kept the existing {config}")
    else:
        settings = service_config()
        plan.writes.append((config, render_config()))
    _plan_mqtt_dropin(plan, unit_dir / f"{opts.unit_name}.d" / MQTT_DROPIN, settings,
                      config.parent)
    other = HEADLESS_UNIT if opts.kiosk else KIOSK_UNIT
    if (unit_dir / other).exists():
        # Both enabled would fight over the camera at boot (they conflict).
        plan.stops.append([systemctl, "disable", "--now", other])
    plan.commands.append([systemctl, "daemon-reload"])
    if reinstall:
        # enable --now leaves a running service on the old unit and code.
        plan.commands.append([systemctl, "try-restart", opts.unit_name])
    plan.commands.append([systemctl, "enable", "--now", opts.unit_name])
    plan.notes.append(f"status: systemctl status {opts.unit_name}; "
                      f"logs: journalctl -u {opts.unit_name} and {LOG_DIR}/")
    return plan


def _plan_mqtt_dropin(plan: Plan, path: Path, settings: Config, config_dir: Path) -> None:
    """The unit has no network; MQTT gets it through a drop-in, removed when MQTT is off."""
    if settings.mqtt.enabled:
        from edge.mqtt import systemd_dropin

        plan.writes.append((path, systemd_dropin(settings.mqtt, config_dir)))
    elif path.exists():
        plan.removes.append(path)


def plan_uninstall(unit: str, unit_dir: Path, config: Path, systemctl: str) -> Plan:
    plan = Plan()
    path = unit_dir / unit
    if not path.exists():
        plan.notes.append(f"{unit} is not installed in {unit_dir}: nothing to do")
        return plan
    plan.stops.append([systemctl, "disable", "--now", unit])
    plan.removes.append(path)
    dropin = unit_dir / f"{unit}.d" / MQTT_DROPIN
    if dropin.exists():
        plan.removes.append(dropin)
    plan.commands.append([systemctl, "daemon-reload"])
    plan.notes.append(f"kept {config}, {LOG_DIR}/ and {STATE_DIR}/: "
                      "remove them by hand if no longer needed")
    return plan


def _check_config(path: Path) -> Config:
    # An enabled unit with a broken config would only crash-loop into the start limit.
    try:
        return load(path)
    except EdgeError as exc:
        raise ServiceError(f"existing config is invalid, fix or remove it: {exc}") from None


# ---------------------------------------------------------------------------- doing


def print_plan(plan: Plan) -> None:
    for command in plan.stops:
        click.echo(f"# would run: {' '.join(command)}")
    for path, text in plan.writes:
        click.echo(f"# would write {path}")
        click.echo(text, nl=not text.endswith("\n"))
    for path in plan.removes:
        click.echo(f"# would remove {path}")
    for command in plan.commands:
        click.echo(f"# would run: {' '.join(command)}")
    for note in plan.notes:
        click.echo(f"# {note}")


def carry_out(plan: Plan) -> None:
    for command in plan.stops:
        _run(command)
    for path, text in plan.writes:
        write_file(path, text)
        click.echo(f"wrote {path}")
    for path in plan.removes:
        path.unlink()
        click.echo(f"removed {path}")
    for command in plan.commands:
        _run(command)
    for note in plan.notes:
        click.echo(note)


def write_file(path: Path, text: str) -> None:
    """Atomically, mode 0644: the unit for systemd, the config for the service's uid."""
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _run(command: Sequence[str]) -> None:
    click.echo(f"running: {' '.join(command)}")
    try:
        result = subprocess.run(list(command), check=False)
    except OSError as exc:
        raise ServiceError(f"{command[0]}: {exc.strerror}") from None
    if result.returncode != 0:
        raise ServiceError(f"`{' '.join(command)}` failed with exit status {result.returncode}")


def is_root() -> bool:
    return os.geteuid() == 0


def find_systemctl(dry_run: bool) -> str:
    found = shutil.which("systemctl")
    if found:
        return found
    if dry_run:
        return "systemctl"  # only printed
    raise ServiceError("systemctl not found: this command needs a systemd system")


def check_can_write(unit_dir: Path, dry_run: bool) -> None:
    if dry_run:
        return
    if not is_root():
        raise ServiceError("must be run as root (try sudo), or use --dry-run")
    if not unit_dir.is_dir() or not os.access(unit_dir, os.W_OK):
        raise ServiceError(f"unit directory {unit_dir} is not writable")


# ---------------------------------------------------------------------------- CLI

_unit_dir_option = click.option(
    "--unit-dir", type=click.Path(path_type=Path), default=DEFAULT_UNIT_DIR,
    show_default=True, help="Where unit files go.")
_config_dir_option = click.option(
    "--config-dir", type=click.Path(path_type=Path), default=DEFAULT_CONFIG_DIR,
    show_default=True, help="Where config.toml lives.")
_kiosk_option = click.option(
    "--kiosk", is_flag=True, help=f"The framebuffer kiosk unit ({KIOSK_UNIT}).")
_dry_run_option = click.option(
    "--dry-run", is_flag=True, help="Print the files and commands; change nothing.")


@click.group()
def service() -> None:
    """Install or remove the systemd service."""


@service.command()
@_kiosk_option
@click.option("--user", "user", metavar="NAME",
              help="Run as this existing account instead of a dynamic one.")
@_config_dir_option
@_unit_dir_option
@click.option("--exec-path", metavar="PATH",
              help="edge-run for ExecStart (default: this one, or the one on PATH).")
@_dry_run_option
def install(kiosk: bool, user: str | None, config_dir: Path, unit_dir: Path,
            exec_path: str | None, dry_run: bool) -> None:
    """Write and enable the unit; write a default config if there is none."""
    check_can_write(unit_dir, dry_run)
    if user is not None and not user_exists(user):
        raise ServiceError(f"--user {user}: no such account")
    systemctl = find_systemctl(dry_run)
    executable = _absolute_exec(exec_path) if exec_path else find_edge_run()
    opts = UnitOptions(kiosk=kiosk, user=user, exec_path=executable,
                       config_path=str(config_dir.absolute() / CONFIG_NAME),
                       code_paths=code_paths(executable))
    hidden = hidden_by_private_tmp([executable, opts.config_path])
    if hidden:
        message = (f"{', '.join(hidden)}: under /tmp or /var/tmp, which the service cannot see "
                   "(PrivateTmp=yes gives it its own); install edge-emotion elsewhere, e.g. "
                   "python3 -m venv /opt/edge-emotion")
        if not dry_run:
            raise ServiceError(message)
        click.echo(f"edge-run: warning: {message} (install would refuse)", err=True)
    plan = plan_install(opts, unit_dir, systemctl)
    if dry_run:
        print_plan(plan)
    else:
        carry_out(plan)


@service.command()
@_kiosk_option
@_config_dir_option
@_unit_dir_option
@_dry_run_option
def uninstall(kiosk: bool, config_dir: Path, unit_dir: Path, dry_run: bool) -> None:
    """Stop, disable and remove the unit; keep the config and logs."""
    check_can_write(unit_dir, dry_run)
    systemctl = find_systemctl(dry_run)
    unit = KIOSK_UNIT if kiosk else HEADLESS_UNIT
    plan = plan_uninstall(unit, unit_dir, config_dir / CONFIG_NAME, systemctl)
    if dry_run:
        print_plan(plan)
    else:
        carry_out(plan)


def hidden_by_private_tmp(paths: Sequence[str]) -> list[str]:
    """Those of `paths` that the service's private /tmp would hide."""
    def hidden(path: Path) -> bool:
        return any(path.is_relative_to(root) for root in PRIVATE_TMP_DIRS)

    return [p for p in paths if hidden(Path(p)) or hidden(Path(p).resolve())]


def _absolute_exec(path: str) -> str:
    if not os.path.isabs(path):
        raise ServiceError(f"--exec-path {path}: must be an absolute path")
    if not os.access(path, os.X_OK):
        raise ServiceError(f"--exec-path {path}: not an executable file")
    return path

