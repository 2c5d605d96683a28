"""``realdata report``: finished runs grouped by everything but their seed, one row per group (mean and 95% interval
over seeds), read from run folders without importing anything they name."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fkdapp.bounds import is_number
from fkdapp.params import shown
from fkdapp.stats import mean_ci
from realdata.checkpoints import RunError
from realdata.config import ConfigError, TrainConfig
from realdata.methods.plan import method_class
from realdata.runs import find_runs


def _mean_ci(values: Sequence[float]) -> str:
    """Mean ± the half-width of its 95% t-interval over seeds; "(n = 1)" where one seed gives no interval."""
    mean, half = mean_ci(values)
    return f"{mean:.2f} (n = 1)" if len(values) < 2 else f"{mean:.2f} ± {half:.2f}"


def _params_label(config: TrainConfig) -> str:
    """The method with the parameters that differ from its defaults (switches typed, as the method reads them, so a
    run recorded with ``logit_stand`` 1 and one with true fall in one group)."""
    method = method_class(config.method)
    params = method.resolve_params(config.params)
    changed = [f"{k}={shown(v)}" for k, v in params.items() if not _same(v, method.PARAMS[k])]
    return f"{config.method} ({', '.join(changed)})" if changed else config.method


def _same(a: float | str | bool, b: float | str | bool) -> bool:
    return math.isclose(a, b) if is_number(a) and is_number(b) else a == b


@dataclass(frozen=True)
class RunGroup:
    """Finished runs that differ only in their seed: one row of the report, one curve of the plot."""

    dataset: str
    method: str  # with its weights where not the defaults
    pair: str  # "teacher(s) -> student"
    transfer: str
    train_size: str
    epochs: int
    metrics: tuple[tuple[dict[str, Any], ...], ...]  # per seed, its metrics.jsonl rows

    @property
    def label(self) -> str:
        return f"{self.method}: {self.pair}"


def collect(paths: Iterable[str | Path]) -> tuple[list[RunGroup], list[str]]:
    """The finished runs under ``paths`` grouped by data set, method (with its weights where not the defaults),
    teacher -> student pair, transfer data, training-set size and epochs; and the unfinished runs as
    ``"folder (e/E epochs)"``."""
    runs = find_runs(paths)
    if not runs:
        raise RunError(f"no run folders (with a config.json) under {', '.join(map(str, paths))}")
    groups: dict[tuple, list[tuple[dict[str, Any], ...]]] = {}
    seeds: dict[tuple, dict[int, Path]] = {}
    unfinished = []
    for run in runs:
        try:
            config = TrainConfig.load(run.config_path)
            label = _params_label(config)
        except ConfigError as e:
            raise RunError(f"{run.path}: {e}") from None
        rows = run.read_metrics()
        if not rows or rows[-1]["epoch"] < config.epochs:
            unfinished.append(f"{run.path} ({rows[-1]['epoch'] if rows else 0}/{config.epochs} epochs)")
            continue
        teachers = "+".join(a or "?" for a in config.teacher_archs)
        pair = f"{teachers} -> {config.model}" if teachers else f"{config.model} alone"
        size = str(config.train_size) if config.train_size is not None else \
            f"part {config.train_part}" if config.train_part is not None else "all"
        transfer = config.transfer_data or (f"{config.transfer_size} unlabelled" if config.transfer_size else "-")
        key = (config.dataset, label, pair, transfer, size, config.epochs)
        if config.seed in seeds.setdefault(key, {}):  # a copy of a run: reported once, the copy named
            unfinished.append(f"{run.path} (the same run as {seeds[key][config.seed]}, seed {config.seed}: left out)")
            continue
        seeds[key][config.seed] = run.path
        groups.setdefault(key, []).append(tuple(rows))
    return [RunGroup(*key, metrics=tuple(ms)) for key, ms in sorted(groups.items())], unfinished


def report(paths: Iterable[str | Path]) -> str:
    """A Markdown table of the finished runs under ``paths``: last and best test accuracy, mean ± 95% t-interval over
    seeds ("n = 1" for one seed). One row per :class:`RunGroup` (see :func:`collect`); a seed found twice in a group
    is an error naming both folders. Unfinished runs are listed below the table, not averaged.
    """
    groups, unfinished = collect(paths)
    lines = ["Test accuracy (last epoch, best epoch) and, for runs with a validation split, the validation accuracy "
             "at the last epoch (they read the test set at the last epoch only: no best): mean ± 95% t-interval over "
             "seeds.", "",
             "| data set | method | teacher -> student | transfer | train images | epochs | seeds | last acc (%) | "
             "best acc (%) | last val acc (%) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for g in groups:
        last = [rows[-1]["test_acc"] for rows in g.metrics]
        # with a validation split the test set is read at the last epoch only: no best test accuracy
        best = [max(r["test_acc"] for r in rows) for rows in g.metrics if all("test_acc" in r for r in rows)]
        val = [rows[-1]["val_acc"] for rows in g.metrics if "val_acc" in rows[-1]]
        lines.append(f"| {g.dataset} | {g.method} | {g.pair} | {g.transfer} | {g.train_size} | {g.epochs} | "
                     f"{len(g.metrics)} | {_mean_ci(last)} | {_mean_ci(best) if best else '-'} | "
                     f"{_mean_ci(val) if val else '-'} |")
    if unfinished:
        lines += ["", "Not in the table (unfinished, or a copy of a run): " + ", ".join(unfinished)]
    return "\n".join(lines)
