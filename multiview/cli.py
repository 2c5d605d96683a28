"""The ``multiview`` command line."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Simulate the multi-view theory: the per-class lottery and distillation from E teachers."""
