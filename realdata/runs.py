"""Run folders and checkpoints.

A run is a folder holding:

- ``config.json``: the full :class:`~realdata.config.TrainConfig` (seed, method and its weights, teacher checkpoint
  paths and their archs, every optimiser setting);
- ``environment.json``: python / torch / numpy versions, device name, hostname, git commit (when known), and the
  same for every later resumption;
- ``metrics.jsonl``: one JSON object per finished epoch (epoch, lr, loss, the named losses, train and test accuracy
  in %, best test accuracy so far, images/s, seconds);
- ``last.pt``: everything needed to resume (model, optimiser, scheduler, epoch, every RNG state, best accuracy);
- ``best.pt``: the model of the best test accuracy so far.

Checkpoints are written atomically (a temporary file in the same folder, then ``os.replace``). A model checkpoint
of ours is ``{'model': state_dict, 'arch': name, 'num_classes': K, 'in_channels': C, 'image_size': S,
'dataset': name, ...}``, so it loads without naming the architecture again; a published CRD checkpoint
``{'model': state_dict}`` needs the architecture named. A state dict is only ever loaded strictly, after a check
that reports a mismatch in one line.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fkdapp.errors import UserError
from fkdapp.jsonfile import JSONFileError, read_json, short
from fkdapp.lock import LOCK_NAME
from fkdapp.runtime import (
    PROBE_PREFIX,
    atomic_write_text,
    check_writable,
    jsonl_text,
    read_jsonl,
    write_jsonl,
)
from fkdapp.stats import mean_ci
from realdata.config import ConfigError, TrainConfig
from realdata.methods import METHODS
from realdata.models import build, is_spec, known

CHECKPOINT_FORMAT = 1


class RunError(UserError):
    """A problem with a run folder or a checkpoint; the message is one line meant for the user."""


class CheckpointError(RunError):
    """A checkpoint that cannot be read or does not fit the architecture it is loaded into."""


# ------------------------------------------------------------------------------------------------- writing


# ----------------------------------------------------------------------------------------------- checkpoints


def model_checkpoint(model: nn.Module, arch: str, num_classes: int, in_channels: int, image_size: int,
                     dataset: str, **extra: Any) -> dict[str, Any]:
    """A self-describing model checkpoint (plus ``extra`` entries)."""
    return {"format": CHECKPOINT_FORMAT, "model": model.state_dict(), "arch": arch, "num_classes": num_classes,
            "in_channels": in_channels, "image_size": image_size, "dataset": dataset,
            "unit_features": bool(getattr(model, "unit_features", False)),
            "feature_layer": getattr(model, "feature_layer", None), **extra}


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint file as a dict with a ``'model'`` state dict (tensors only: loaded with weights_only). A bare
    state dict (torchvision's published weights, ``resnet34-333f7ec4.pth``) is read as ``{'model': it}``; it records
    no architecture, so it is named where it is used (``--teacher FILE:resnet34``)."""
    path = Path(path)
    if path.is_dir():
        inside = [n for n in ("best.pt", "last.pt") if (path / n).is_file()]
        hint = f"give {path / inside[0]}" if inside else "give a .pt checkpoint file"
        raise CheckpointError(f"{path} is a folder, not a checkpoint: {hint}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found")
    if path.suffix in (".json", ".jsonl"):
        beside = [n for n in ("best.pt", "last.pt") if (path.parent / n).is_file()]
        hint = f"give {path.parent / beside[0]}" if beside else "give a .pt checkpoint file"
        raise CheckpointError(f"{path} is a JSON file, not a checkpoint: {hint}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # unpickling errors come in many types; any of them means the same to the user
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "weights only load failed" in reason.lower():
            reason = "not a plain torch checkpoint (its weights-only load failed)"
        raise CheckpointError(f"cannot read checkpoint {path}: {reason[:80]}") from None
    bare = isinstance(ckpt, dict) and ckpt and "model" not in ckpt
    if bare and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        ckpt = {"model": ckpt}
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("model"), dict):
        raise CheckpointError(f"{path} is not a model checkpoint (expected a dict with a 'model' state dict)")
    bad = [k for k, v in ckpt["model"].items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{path}: 'model' is not a state dict (entry {bad[0]!r} is not a tensor)")
    return ckpt


def nonfinite_entries(state: dict[str, Any]) -> list[str]:
    """The names of a state dict's floating tensors that hold NaN or an infinity."""
    return [k for k, v in state.items() if isinstance(v, torch.Tensor) and v.is_floating_point()
            and not bool(torch.isfinite(v).all())]


def check_finite(state: dict[str, Any], what: str, fix: str) -> None:
    """A one-line CheckpointError where a tensor of ``state`` is not finite (naming the first and the count)."""
    bad = nonfinite_entries(state)
    if bad:
        raise CheckpointError(f"{what} holds NaN or infinite values in {len(bad)} tensor(s) (e.g. {bad[0]}); {fix}")


def _first(model: nn.Module, kind: type[nn.Module], last: bool = False) -> str | None:
    names = [name for name, m in model.named_modules() if isinstance(m, kind)]
    return (names[-1] if last else names[0]) + ".weight" if names else None


def _infer_shape(arch: str, state: dict[str, torch.Tensor]) -> tuple[int, int]:
    """(num_classes, in_channels) of a state dict for ``arch`` that does not record them (a CRD checkpoint)."""
    reference = build(arch)
    head, stem = _first(reference, nn.Linear, last=True), _first(reference, nn.Conv2d)
    num_classes = state[head].shape[0] if head in state and state[head].ndim == 2 else 100
    in_channels = state[stem].shape[1] if stem in state and state[stem].ndim == 4 else 3
    return int(num_classes), int(in_channels)


def check_state_dict(model: nn.Module, state: dict[str, torch.Tensor], path: str | Path, arch: str,
                     recorded: str | None = None) -> None:
    """Raise a one-line CheckpointError unless ``state`` has exactly ``model``'s entries and shapes."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if not (missing or unexpected or shapes):
        return
    found = []
    if missing:
        found.append(f"{len(missing)} missing entries (e.g. {missing[0]})")
    if unexpected:
        found.append(f"{len(unexpected)} unexpected entries (e.g. {unexpected[0]})")
    if shapes:
        k = shapes[0]
        found.append(f"{len(shapes)} entries of another shape (e.g. {k}: {tuple(state[k].shape)} in the checkpoint, "
                     f"{tuple(expected[k].shape)} in {arch})")
    says = f" (the checkpoint says {recorded!r})" if recorded and recorded != arch else ""
    raise CheckpointError(f"checkpoint {path} does not fit arch {arch!r}{says}: found {'; '.join(found)}")


@dataclass(frozen=True)
class LoadedModel:
    """A model rebuilt from a checkpoint, with what the checkpoint says about it."""

    model: nn.Module
    arch: str
    num_classes: int
    in_channels: int
    image_size: int | None
    dataset: str | None
    path: str


def load_model(path: str | Path, arch: str | None = None) -> LoadedModel:
    """Rebuild the model of checkpoint ``path`` (``arch`` required where the checkpoint does not record it)."""
    ckpt = read_checkpoint(path)
    recorded = ckpt.get("arch")
    if arch is None and recorded is None:
        raise CheckpointError(f"checkpoint {path} does not record its architecture: add --teacher-arch NAME "
                              "(evaluate: --arch NAME)")
    if arch is None and not isinstance(recorded, str):
        raise CheckpointError(f"checkpoint {path} records an architecture that is not a name; give --teacher-arch "
                              "NAME (evaluate: --arch NAME)")
    if arch is None and is_spec(recorded):
        raise CheckpointError(f"checkpoint {path} was made by your own model {short(recorded)}; a file never chooses "
                              f"code to run: name it yourself with --teacher-arch {recorded[:80]} (evaluate: --arch)")
    if arch is not None and isinstance(recorded, str) and recorded != arch:
        raise CheckpointError(f"checkpoint {path} holds a {short(recorded, 40)}, not the {arch} asked for; give a "
                              f"{arch} checkpoint, or drop the arch to use it")
    arch = arch or recorded
    try:
        if not known(arch):
            raise CheckpointError(f"checkpoint {path}: unknown arch {arch!r}; a zoo name or package.module:factory")
    except ValueError as e:
        raise CheckpointError(f"checkpoint {path}: {e}") from None
    state = ckpt["model"]
    if isinstance(ckpt.get("num_classes"), int) and isinstance(ckpt.get("in_channels"), int):
        num_classes, in_channels = ckpt["num_classes"], ckpt["in_channels"]
    else:
        num_classes, in_channels = _infer_shape(arch, state)
    try:
        model = build(arch, num_classes=num_classes, in_channels=in_channels, feature_layer=ckpt.get("feature_layer"))
    except ValueError as e:
        raise CheckpointError(f"checkpoint {path}: {e}") from None
    check_state_dict(model, state, path, arch, recorded)
    check_finite(state, f"checkpoint {path}", "it cannot be used: retrain it, or give an earlier checkpoint")
    model.load_state_dict(state, strict=True)
    model.unit_features = ckpt.get("unit_features") is True  # the head reads unit-length features (FKD's norm_head)
    return LoadedModel(model, arch, num_classes, in_channels, ckpt.get("image_size"), ckpt.get("dataset"), str(path))


def belongs_to(state: dict[str, Any], config: TrainConfig) -> bool:
    """Whether checkpoint ``state`` was written by the run of ``config``: its stored config digest, or for
    checkpoints written before digests the config it carries (True where it records neither)."""
    stored = state.get("run_identity")
    if stored is None and isinstance(state.get("config"), dict):
        try:
            stored = TrainConfig.from_dict(state["config"]).digest()
        except (ConfigError, TypeError, ValueError):
            return False
    return stored is None or stored == config.digest()


def load_teachers(config: TrainConfig) -> tuple[list[LoadedModel], TrainConfig]:
    """The config's teachers, rebuilt, and the config with every teacher's arch filled in."""
    teachers = [load_model(p, a) for p, a in zip(config.teachers, config.teacher_archs, strict=True)]
    return teachers, config.with_updates(teacher_archs=tuple(t.arch for t in teachers))


# -------------------------------------------------------------------------------------------------- run dirs


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
        old, new = saved.identity(), config.identity()
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


# ------------------------------------------------------------------------------------------------- reports


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


def _mean_ci(values: Sequence[float]) -> str:
    """Mean ± the half-width of its 95% t-interval over seeds; "(n = 1)" where one seed gives no interval."""
    mean, half = mean_ci(values)
    return f"{mean:.2f} (n = 1)" if len(values) < 2 else f"{mean:.2f} ± {half:.2f}"


def _params_label(config: TrainConfig) -> str:
    defaults = METHODS[config.method].PARAMS
    changed = [f"{k}={v:g}" for k, v in config.params.items() if not math.isclose(v, defaults[k])]
    return f"{config.method} ({', '.join(changed)})" if changed else config.method


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
        key = (config.dataset, _params_label(config), pair, transfer, size, config.epochs)
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
