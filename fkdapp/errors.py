"""One-line user errors and their mapping to the command line.

Every mistake a user can make (a config value, a missing file, a checkpoint of another model) raises a
:class:`UserError` subclass whose message is one line naming the problem and the fix. The CLIs run their commands
inside :func:`user_errors`, which prints that line as ``Error: ...`` with exit status 1 (never a traceback).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import click

from fkdapp.ranks import is_main


class UserError(ValueError):
    """A mistake the user can fix; the message is one line that says how."""


class ConfigError(UserError):
    """A configuration value out of range, of the wrong type, or unknown; or a malformed config file."""


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn a :class:`UserError` into an ``Error: ...`` line (click's exception, exit status 1).

    Under torchrun every rank meets the same error; rank 0 alone prints it, the others exit with status 1.
    """
    try:
        yield
    except UserError as e:
        if not is_main():
            raise click.exceptions.Exit(1) from None
        raise click.ClickException(str(e)) from None
