"""Run folders.

A run is a folder holding:

- ``config.json``: the full :class:`~realdata.config.TrainConfig` (seed, method and its weights, teacher checkpoint
  paths and their archs, every optimiser setting);
- ``environment.json``: python / torch / numpy versions, device name, hostname, git commit (when known), and the
  same for every later resumption;
- ``metrics.jsonl``: one JSON object per finished epoch (epoch, lr, loss, the named losses, train and test accuracy
  in %, best test accuracy so far, images/s, seconds);
- ``last.pt``: everything needed to resume (model, optimiser, scheduler, epoch, every RNG state, best accuracy);
- ``best.pt``: the model of the best test accuracy so far (checkpoints: :mod:`realdata.checkpoints`).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fkdapp.jsonfile import JSONFileError, read_json
from fkdapp.lock import LOCK_NAME
from fkdapp.runtime import (
    PROBE_PREFIX,
    atomic_write_text,
    check_writable,
    jsonl_text,
    read_jsonl,
    write_jsonl,
)
from realdata.checkpoints import RunError
from realdata.config import ConfigError, TrainConfig
from realdata.methods.plan import as_resolved


class RunDir:
    """The files of one run folder."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.config_path = self.path / "config.json"
        self.environment_path = self.path / "environment.json"
        self.metrics_path = self.path / "metrics.jsonl"
        self.last_path = self.path / "last.pt"
        self.best_path = self.path / "best.pt"

    def is_run(self) -> bool:
        return self.config_path.is_file()

    def check_start(self, config: TrainConfig, resume: bool) -> bool:
        """Check that ``config`` may start (or, with ``resume``, continue) here; True if a run is to be resumed."""
        if self.path.exists() and not self.path.is_dir():
            raise RunError(f"--out {self.path} is a file, not a folder")
        if not self.is_run():
            if self.path.is_dir() and any(p.name != LOCK_NAME and not p.name.startswith(PROBE_PREFIX)
                                          for p in self.path.iterdir()):
                raise RunError(f"--out {self.path} is not empty and holds no run (no config.json); choose another "
                               f"--out")
            return False
        try:
            saved = TrainConfig.load(self.config_path)
        except ConfigError as e:
            raise RunError(f"{self.path} holds an unreadable run ({e}); choose another --out") from None
        old, new = as_resolved(saved).identity(), config.identity()
        diff = [f"{k} {old.get(k)!r} there, {new.get(k)!r} here" for k in new if old.get(k) != new.get(k)]
        if diff:
            raise RunError(f"--out {self.path} holds a different run ({'; '.join(diff[:3])}); to continue it as it "
                           f"was: realdata resume {self.path}; else choose another --out")
        if not resume:
            rows = self.read_metrics()
            if rows and rows[-1]["epoch"] >= config.epochs:
                raise RunError(f"--out {self.path} already holds this run, finished at epoch {config.epochs}; choose "
                               f"another --out for a new one")
            raise RunError(f"--out {self.path} already holds this run; continue it with: realdata resume {self.path}")
        return True

    def remove_orphans(self) -> None:
        """Temporary files an atomic write left when its process was killed (``.last.pt.*.tmp``): the run folder is
        locked, so no write of ours is in flight."""
        for p in self.path.glob(".*.tmp"):
            p.unlink(missing_ok=True)

    def config(self) -> TrainConfig:
        """The run's recorded config (a one-line RunError if there is none or it is unreadable)."""
        if not self.is_run():
            raise RunError(f"{self.path} is not a run folder (no config.json)")
        try:
            return TrainConfig.load(self.config_path)
        except ConfigError as e:
            raise RunError(f"{self.path} holds an unreadable run ({e})") from None

    def start(self, config: TrainConfig, env: dict[str, Any], resumed_at: int | None) -> None:
        """Write config.json and environment.json (a resumption is appended to the latter's ``resumed`` list)."""
        check_writable(self.path, "the run folder")
        atomic_write_text(self.config_path, json.dumps(config.to_dict(), indent=2) + "\n")
        if resumed_at is None or not self.environment_path.is_file():
            record = env
        else:
            try:
                record = read_json(self.environment_path, "run file", dict,
                                   fix="move it aside and resume again (a new one is written)")
            except JSONFileError as e:
                raise RunError(str(e)) from None
            record.setdefault("resumed", []).append({"after_epoch": resumed_at, **env})
        atomic_write_text(self.environment_path, json.dumps(record, indent=2) + "\n")

    def read_metrics(self) -> list[dict[str, Any]]:
        """The metrics rows (a torn last line, from a write cut short, is dropped with a warning)."""
        rows = read_jsonl(self.metrics_path)
        bad = next((r for r in rows if not isinstance(r, dict) or not isinstance(r.get("epoch"), int)), None)
        if bad is not None:
            raise RunError(f"{self.metrics_path} holds a row without an epoch ({str(bad)[:60]}); remove that line")
        return rows

    @property
    def init_path(self) -> Path:
        return self.path / "init.jsonl"

    def append_init(self, row: dict[str, Any]) -> None:
        """One init epoch's row (methods with an initialisation stage), init.jsonl rewritten atomically; a row of an
        init epoch already there (written before a kill) is replaced."""
        rows = [r for r in read_jsonl(self.init_path) if r.get("init_epoch") != row["init_epoch"]]
        write_jsonl(self.init_path, [*rows, row])

    def append_metrics(self, row: dict[str, Any]) -> None:
        """One epoch's metrics added to metrics.jsonl, and metrics.csv (the same, flat, for other tools), each
        rewritten atomically: a kill or a failing write leaves the previous files whole."""
        self._write_metrics([*self.read_metrics(), row])

    def truncate_metrics(self, epoch: int, last_row: dict[str, Any] | None = None) -> None:
        """Make the metrics agree with a checkpoint of ``epoch``: each epoch 1..``epoch`` once (the last row written
        for it; epoch ``epoch``'s from ``last_row``, the copy the checkpoint keeps, where a torn line lost it), none
        after (written by a run killed before its checkpoint), no torn line."""
        rows = self.read_metrics()
        by_epoch = {r["epoch"]: r for r in rows if r["epoch"] <= epoch}
        if epoch not in by_epoch and last_row is not None and last_row.get("epoch") == epoch:
            by_epoch[epoch] = last_row
        keep = [by_epoch[e] for e in sorted(by_epoch)]
        if self.metrics_path.is_file() and jsonl_text(keep) != self.metrics_path.read_text(errors="replace"):
            self._write_metrics(keep)

    def _write_metrics(self, rows: list[dict[str, Any]]) -> None:
        write_jsonl(self.metrics_path, rows)
        self._write_csv(rows)

    @property
    def csv_path(self) -> Path:
        return self.path / "metrics.csv"

    def _write_csv(self, rows: list[dict[str, Any]]) -> None:
        flat = [{**{k: v for k, v in r.items() if k not in ("losses", "kernel_distance")},
                 **{f"loss_{k}": v for k, v in r.get("losses", {}).items()},
                 **{f"kernel_distance_{i}": v for i, v in enumerate(r.get("kernel_distance", []))}} for r in rows]
        columns = list(dict.fromkeys(k for r in flat for k in r))
        text = io.StringIO()
        writer = csv.DictWriter(text, columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(flat)
        atomic_write_text(self.csv_path, text.getvalue())


def find_runs(paths: Iterable[str | Path]) -> list[RunDir]:
    """Every run folder at or below ``paths``, in sorted order, each once."""
    found: dict[Path, RunDir] = {}
    for p in map(Path, paths):
        if not p.exists():
            raise RunError(f"{p} does not exist")
        candidates = [p / "config.json"] if (p / "config.json").is_file() else sorted(p.rglob("config.json"))
        for c in candidates:
            found.setdefault(c.parent.resolve(), RunDir(c.parent))
    return [found[k] for k in sorted(found)]
