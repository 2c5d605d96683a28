"""Runs stopped as a test needs them: killed after an epoch (an exception once ``last.pt`` is written), or told to stop
mid-epoch as Ctrl-C does (:func:`sigint_after_steps`)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from realdata.config import TrainConfig
from realdata.engine import Trainer, run_training


class Killed(Exception):
    """Raised from on_epoch_end: the run stops as if killed right after an epoch's checkpoint."""


def train_until_killed(config: TrainConfig, out: str | Path, epoch: int = 1) -> None:
    """Run ``config`` into ``out`` and stop it after ``epoch`` (its last.pt written)."""

    def kill(row: dict) -> None:
        if row["epoch"] == epoch:
            raise Killed

    with pytest.raises(Killed):
        run_training(config, out, on_epoch_end=kill)


def sigint_after_steps(monkeypatch: pytest.MonkeyPatch, steps: int) -> None:
    """Every run in this test receives Ctrl-C (SIGINT, as its signal handler records it) after its ``steps``-th
    training step, counted over all runs; ``monkeypatch.undo()`` ends it."""
    step, calls = Trainer.train_step, []

    def stopped(self, *args):
        out = step(self, *args)
        calls.append(1)
        if len(calls) == steps:
            self.stop.received = signal.SIGINT
        return out

    monkeypatch.setattr(Trainer, "train_step", stopped)
