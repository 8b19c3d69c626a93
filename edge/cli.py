"""`edge-run`: the device command. With no subcommand it runs the pipeline."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from edge.errors import EdgeError, NothingLogged, SourceError

# Exit codes: 2 = bad input that a restart cannot fix (config, model, file);
# 3 = a camera or stream that is not there yet: systemd retries that one.
EXIT_BAD_INPUT = 2
EXIT_SOURCE_MISSING = 3
# 1 = the run ended, but not one event reached the event log (a full or read-only disk).
EXIT_NOTHING_LOGGED = 1

# CLI flag -> (section, key). Every flag here overrides the config file.
OVERRIDES: dict[str, tuple[str, str]] = {
    "input": ("source", "input"), "width": ("source", "width"), "height": ("source", "height"),
    "loop": ("source", "loop"), "realtime": ("source", "realtime"),
    "max_frames": ("source", "max_frames"),
    "detect_width": ("detect", "width"), "upsample": ("detect", "upsample"),
    "detect_every": ("detect", "every"),
    "model": ("model", "path"), "landmarks": ("model", "landmarks"),
    "threads": ("model", "threads"),
    "log": ("log", "path"), "summary_every": ("log", "summary_every"),
    "display": ("display", "mode"), "snapshots": ("snapshots", "dir"),
}


def fail(message: str, code: int = EXIT_BAD_INPUT) -> None:
    # Under systemd, <3> files the line at error priority, like edge.logs does.
    priority = "<3>" if os.environ.get("JOURNAL_STREAM") else ""
    click.echo(f"{priority}edge-run: error: {message}", err=True)
    sys.exit(code)


def overrides_from(options: dict[str, Any]) -> dict[str, dict[str, Any]]:
    values: dict[str, dict[str, Any]] = {}
    for name, value in options.items():
        if value is not None and name in OVERRIDES:
            section, key = OVERRIDES[name]
            values.setdefault(section, {})[key] = value
    return values


def config_options(function: Any) -> Any:
    """The options shared by `run` and `check`: config file plus per-key overrides."""
    options = [
        click.option("--config", "config_path", type=click.Path(path_type=Path),
                     help="TOML config file (see systemd/config.toml)."),
        click.option("--input", "-i", help="Camera index, /dev/videoN, file, URL or "
                     "'picamera' (default: the embedded sample clip)."),
        click.option("--width", type=int, help="Capture width."),
        click.option("--height", type=int, help="Capture height."),
        click.option("--loop/--no-loop", default=None, help="Replay a file forever."),
        click.option("--realtime/--no-realtime", default=None,
                     help="Pace a file to its frame rate, like a camera."),
        click.option("--max-frames", type=int, help="Stop after N frames."),
        click.option("--detect-width", type=int, help="Width the detector sees."),
        click.option("--upsample", type=int, help="HOG upsampling steps."),
        click.option("--detect-every", type=int, help="Detect every N frames, track between."),
        click.option("--model", help="Model .tflite (sidecar .json beside it)."),
        click.option("--landmarks", help="68-point landmark .dat file."),
        click.option("--threads", type=int, help="Interpreter threads."),
        click.option("--log", help="JSONL event log path ('' disables)."),
        click.option("--summary-every", type=float, help="Seconds between summaries."),
        click.option("--display", type=click.Choice(["none", "window", "fullscreen",
                                                     "framebuffer"]), help="Where to show."),
        click.option("--snapshots", help="Folder for annotated snapshots (off by default)."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def load_config(config_path: Path | None, options: dict[str, Any]) -> Any:
    from edge import config

    return config.load(config_path, overrides_from(options))


class DefaultRunGroup(click.Group):
    """`edge-run [RUN OPTIONS]` is `edge-run run [RUN OPTIONS]`; the help shows run's options."""

    OWN_OPTIONS = ("--help", "--version")

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # No words, or an option first: the default command. A first word that is not a
        # command stays an error ("No such command"), so a typo never starts a run.
        if not args or (args[0].startswith("-") and args[0] not in self.OWN_OPTIONS):
            args = ["run", *args]
        return super().parse_args(ctx, args)

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_help(ctx, formatter)
        run_command = self.commands["run"]
        with formatter.section("Run options (edge-run [RUN OPTIONS] = edge-run run [RUN OPTIONS])"):
            formatter.write_dl([record for param in run_command.get_params(ctx)
                                if (record := param.get_help_record(ctx)) is not None
                                and "--help" not in record[0]])


@click.group(cls=DefaultRunGroup)
@click.version_option(package_name="edge-emotion")
def main() -> None:
    """Facial emotion and blink logging on a camera, a file or a stream.

    With no command, or with run options only, it runs the pipeline (`run`)."""


@main.command()
@config_options
@click.option("--quiet", "-q", is_flag=True, help="Only errors on stderr, no summaries.")
@click.option("--verbose", "-v", is_flag=True, help="Print every event.")
def run(config_path: Path | None = None, quiet: bool = False, verbose: bool = False,
        **options: Any) -> None:
    """Run the pipeline (the default command)."""
    import time

    from edge.build import build
    from edge.logs import setup_logging
    from edge.runner import Runner
    from edge.sinks.console import ConsoleSink
    from edge.sinks.jsonl import JsonlLog

    started = time.monotonic()
    setup_logging(verbose=verbose, quiet=quiet)
    try:
        config = load_config(config_path, options)
        console = ConsoleSink(click.echo, quiet=quiet, verbose=verbose)
        with build(config, [console]) as parts:
            if not quiet:  # a file nobody asked for by name must not go unnoticed
                click.echo(f"event log: {Path(config.log.path).absolute()}" if config.log.path
                           else "event log: none (--log FILE keeps one)")
            code = Runner(parts, started=started).run()
        for sink in parts.events:  # closed now: did anything reach the event log?
            if isinstance(sink, JsonlLog):
                sink.check_written()
    except NothingLogged as exc:
        fail(str(exc), EXIT_NOTHING_LOGGED)
    except SourceError as exc:
        from edge.sources import is_live

        fail(str(exc), EXIT_SOURCE_MISSING if is_live(config.source.input) else EXIT_BAD_INPUT)
    except EdgeError as exc:
        fail(str(exc))
    except OSError as exc:  # anything not turned into an EdgeError where it happened
        fail(f"{getattr(exc, 'filename', '') or ''}: {exc.strerror or exc}".lstrip(": "))
    sys.exit(code)


@main.command()
@config_options
@click.option("--no-camera", is_flag=True, help="Skip opening the source.")
def check(config_path: Path | None = None, no_camera: bool = False, **options: Any) -> None:
    """Validate config, model, landmarks, outputs and camera; say what is wrong in one line."""
    from edge.commands.check import run_checks

    try:
        config = load_config(config_path, options)
        for line in run_checks(config, open_camera=not no_camera):
            click.echo(line)
    except EdgeError as exc:
        fail(str(exc))


def _register_commands() -> None:
    """Subcommands that live in edge/commands/."""
    from edge.commands.bench import bench
    from edge.commands.report import report
    from edge.commands.service import service

    main.add_command(service)
    main.add_command(report)
    main.add_command(bench)


_register_commands()

if __name__ == "__main__":
    main()
