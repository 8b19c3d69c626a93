"""The build side's expected failures, and the one way the CLI reports them.

Each is bad input or a missing tool, never a bug: `edge-convert` prints one
`edge-convert: error: ...` line and exits 2, with no traceback.
"""

from __future__ import annotations

from typing import IO, NoReturn

import click

from edge.errors import ModelError


class DataError(ValueError):
    """Input data is malformed; the message names the file (and row)."""


class ConversionError(ValueError):
    """The converter failed, or its result is not the full-int8 model we ship."""


class InitError(ValueError):
    """A starting checkpoint (`--init`) that does not fit the network being trained."""


class BackendError(RuntimeError):
    """The maths library a command needs is not installed: one line says which."""


# What a command may raise for bad input; ModelError is the device side's (a bad model file).
EXPECTED = (DataError, ConversionError, InitError, BackendError, ModelError)


class CommandError(click.ClickException):
    """One line on stderr and exit status 2: the contract for bad input."""

    exit_code = 2

    def show(self, file: IO[str] | None = None) -> None:
        click.echo(f"edge-convert: error: {self.message}", err=True)


def fail(message: str) -> NoReturn:
    raise CommandError(message)
