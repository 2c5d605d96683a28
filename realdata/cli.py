"""The ``realdata`` command line."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Train teachers and distil students on images with FKD and its baselines."""
