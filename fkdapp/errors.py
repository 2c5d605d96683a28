"""One-line user errors and their mapping to the command line.

Every mistake a user can make (a config value, a missing file, a checkpoint of another model) raises a
:class:`UserError` subclass whose message is one line naming the problem and the fix. The CLIs run their commands
inside :func:`user_errors`, which prints that line as ``Error: ...`` with exit status 1 (never a traceback).
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Iterator
from typing import Any

import click

from fkdapp.ranks import is_main

LONG_WORD = re.compile(r"\S{120,}")


def _cut(match: re.Match[str]) -> str:
    word = match.group(0)
    return f"{word[:60]}...({len(word)} characters)"


class UserError(ValueError):
    """A mistake the user can fix; the message is one line that says how. A run of 120 or more characters without
    a space (a value echoed from a file: a 20 MB string) is cut to its first 60, so the line stays readable."""

    def __init__(self, *args: object) -> None:
        if len(args) == 1 and isinstance(args[0], str) and len(args[0]) > 200:
            args = (LONG_WORD.sub(_cut, args[0]),)
        super().__init__(*args)


class Stopped(UserError):
    """The user stopped a run (Ctrl-C, SIGTERM): not an error. Printed as ``Stopped: ...`` with exit status 128 +
    the signal (130 for Ctrl-C, 143 for SIGTERM), as shells report a process a signal ended."""

    def __init__(self, message: str, signum: int = 2) -> None:
        super().__init__(message)
        self.signum = signum


class ConfigError(UserError):
    """A configuration value out of range, of the wrong type, or unknown; or a malformed config file."""


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn a :class:`UserError` into an ``Error: ...`` line (click's exception, exit status 1); a :class:`Stopped`
    into ``Stopped: ...`` with exit status 128 + its signal.

    Under torchrun every rank meets the same error; rank 0 alone prints it, the others exit with status 1.
    """
    try:
        yield
    except Stopped as e:
        if is_main():
            click.echo(f"Stopped: {e}", err=True)
        raise click.exceptions.Exit(128 + e.signum) from None
    except UserError as e:
        if not is_main():
            raise click.exceptions.Exit(1) from None
        raise click.ClickException(str(e)) from None


def run_main(main: Any) -> None:
    """Entry point of a script: its :class:`UserError` printed as one ``Error: ...`` line, exit status 1 (a
    :class:`Stopped`: ``Stopped: ...``, 128 + its signal)."""
    try:
        main()
    except Stopped as e:
        print(f"Stopped: {e}", file=sys.stderr)
        sys.exit(128 + e.signum)
    except UserError as e:
        sys.exit(f"Error: {e}")


class OneLineGroup(click.Group):
    """A command group whose every error, usage errors included, is one line ``Error: ...`` (click prints usage
    errors as three: the usage, a hint and the error); exit status 1 (2 for usage errors, as click's)."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        except click.UsageError as e:
            command = f" (see {e.ctx.command_path} --help)" if e.ctx is not None else ""
            click.echo(f"Error: {e.format_message()}{command}", err=True)
            sys.exit(e.exit_code)
        except click.ClickException as e:
            click.echo(f"Error: {e.format_message()}", err=True)
            sys.exit(e.exit_code)
        sys.exit(rv if isinstance(rv, int) else 0)
