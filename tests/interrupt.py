"""A run killed after an epoch, as a test needs it: training stops by an exception after ``last.pt`` is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from realdata.config import TrainConfig
from realdata.engine import run_training


class Killed(Exception):
    """Raised from on_epoch_end: the run stops as if killed right after an epoch's checkpoint."""


def train_until_killed(config: TrainConfig, out: str | Path, epoch: int = 1) -> None:
    """Run ``config`` into ``out`` and stop it after ``epoch`` (its last.pt written)."""

    def kill(row: dict) -> None:
        if row["epoch"] == epoch:
            raise Killed

    with pytest.raises(Killed):
        run_training(config, out, on_epoch_end=kill)
