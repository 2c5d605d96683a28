"""A command group that answers ``--help`` without importing torch: its commands are listed from a table of
one-line summaries, and the module that defines them is imported only when one of them runs (or shows its own
help). A test holds each summary equal to the command's own first line."""

from __future__ import annotations

import importlib
from typing import Any

import click

from fkdapp.errors import OneLineGroup


class LazyGroup(OneLineGroup):
    """``module.main``'s commands, by name, from ``summaries`` (name -> one line); ``on_load`` (a function of
    ``module``) runs once the module is imported, in place of the real group's callback."""

    def __init__(self, name: str, module: str, summaries: dict[str, str], on_load: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.module, self.summaries, self.on_load = module, summaries, on_load

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.summaries)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.summaries:
            return None
        module = importlib.import_module(self.module)
        if self.on_load:
            getattr(module, self.on_load)()
        return module.main.get_command(ctx, cmd_name)

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None,
                                                                             list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.exceptions.NoSuchCommand as e:  # its did-you-mean, from the table (no command imported yet)
            raise click.exceptions.NoSuchCommand(args[0], possibilities=list(self.summaries), ctx=ctx) from e

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl(list(self.summaries.items()))


__all__ = ["LazyGroup"]
