"""`edge-run service install|uninstall`: plan what changes, print it (--dry-run) or do it.

The unit and config text comes from edge/commands/units.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import click

from edge.commands.units import (
    CONFIG_NAME,
    DEFAULT_CONFIG_DIR,
    DEFAULT_UNIT_DIR,
    HEADLESS_UNIT,
    HOME_ROOTS,
    KIOSK_UNIT,
    LOG_DIR,
    MQTT_DROPIN,
    STATE_DIR,
    UnitOptions,
    render_config,
    render_unit,
    service_config,
    systemd_dropin,
)
from edge.config import Config, load
from edge.errors import CliError, EdgeError

# PrivateTmp=yes gives the service an empty /tmp and /var/tmp of its own: a program or
# config file under these is not there for it (status 203/EXEC).
PRIVATE_TMP_DIRS = (Path("/tmp"), Path("/var/tmp"))

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
    raise CliError("cannot find the edge-run executable; pass --exec-path")


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


def framebuffer_problem(settings: Config) -> str | None:
    """Why the kiosk unit could not draw here (None: it can). Enabled anyway, it would fail
    at every boot, into the start limit, and leave the headless unit disabled."""
    from edge.sinks.display import framebuffer_geometry

    device = Path(settings.display.framebuffer)
    if not device.exists():
        return f"no framebuffer at {device}"
    try:
        framebuffer_geometry(device)
    except EdgeError as exc:
        return str(exc)
    return None


def _check_config(path: Path) -> Config:
    # An enabled unit with a broken config would only crash-loop into the start limit.
    try:
        return load(path)
    except EdgeError as exc:
        raise CliError(f"existing config is invalid, fix or remove it: {exc}") from None


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
        raise CliError(f"{command[0]}: {exc.strerror}") from None
    if result.returncode != 0:
        raise CliError(f"`{' '.join(command)}` failed with exit status {result.returncode}")


def is_root() -> bool:
    return os.geteuid() == 0


def find_systemctl(dry_run: bool) -> str:
    found = shutil.which("systemctl")
    if found:
        return found
    if dry_run:
        return "systemctl"  # only printed
    raise CliError("systemctl not found: this command needs a systemd system")


def check_can_write(unit_dir: Path, dry_run: bool) -> None:
    if dry_run:
        return
    if not is_root():
        raise CliError("must be run as root (try sudo), or use --dry-run")
    if not unit_dir.is_dir() or not os.access(unit_dir, os.W_OK):
        raise CliError(f"unit directory {unit_dir} is not writable")


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
@click.option("--force", is_flag=True,
              help="With --kiosk: install even where no framebuffer is found now (a screen "
                   "attached later; until then the unit fails at boot).")
@_dry_run_option
def install(kiosk: bool, user: str | None, config_dir: Path, unit_dir: Path,
            exec_path: str | None, force: bool, dry_run: bool) -> None:
    """Write and enable the unit; write a default config if there is none."""
    check_can_write(unit_dir, dry_run)
    if user is not None and not user_exists(user):
        raise CliError(f"--user {user}: no such account")
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
            raise CliError(message)
        click.echo(f"edge-run: warning: {message} (install would refuse)", err=True)
    if kiosk and not force:
        config = Path(opts.config_path)
        problem = framebuffer_problem(_check_config(config) if config.exists()
                                      else service_config())
        if problem:
            message = (f"--kiosk: {problem}; the kiosk unit would fail at every boot. "
                       "Install the headless unit (no --kiosk), set display.framebuffer "
                       f"in {config}, or add --force if a screen comes later")
            if not dry_run:
                raise CliError(message)
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
        raise CliError(f"--exec-path {path}: must be an absolute path")
    if not os.access(path, os.X_OK):
        raise CliError(f"--exec-path {path}: not an executable file")
    return path

