"""Errors the CLI turns into one line and a non-zero exit."""

from __future__ import annotations

from typing import IO

import click


class EdgeError(Exception):
    """Bad input from the user (model, config, camera, file): message is shown as is."""


class ModelError(EdgeError):
    """Missing, corrupt or mismatched model or sidecar."""


class ConfigError(EdgeError):
    """Unknown key, wrong type or out-of-range value in the config."""


class SourceError(EdgeError):
    """A frame source that cannot be opened."""


class MissingModule(EdgeError):
    """A Python module the configuration needs is not installed: a restart cannot fix it,
    so it is bad input (exit 2), never a missing camera (exit 3, retried)."""


class NothingLogged(EdgeError):
    """The run ended, but not one event reached the event log (e.g. --log /dev/full)."""


class MqttError(EdgeError):
    """Unusable MQTT settings (credentials, TLS files, missing paho): one line."""


def first_line(exc: BaseException) -> str:
    """An exception's first line, for one-line errors (libraries raise long dumps)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class CliError(click.ClickException):
    """A subcommand's failure: one line `edge-run: error: ...` on stderr, exit 2."""

    exit_code = 2

    def show(self, file: IO[str] | None = None) -> None:
        click.echo(f"edge-run: error: {self.format_message()}", err=True, file=file)
