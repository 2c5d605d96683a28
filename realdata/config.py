"""The configuration of one training run (a teacher or a student): one validated dataclass, to and from JSON.

Every default of the standard CIFAR-100 recipe (CRD benchmark, reused by FKD) lives here:
SGD with momentum 0.9, weight decay 5e-4, batch 64, lr 0.05 (0.01 for MobileNetV2 / ShuffleV1 / ShuffleV2), 240
epochs, lr x0.1 after epochs 150, 180 and 210.

Milestones follow the length of training: unless given explicitly, milestone_i = round(m_i * epochs / 240) for
m = (150, 180, 210) (rounding half up), keeping only the distinct values in 1..epochs-1. So 240 epochs give
150/180/210, 24 epochs give 15/18/21, 2 epochs give 1, and 1 epoch gives none. Explicit ``milestones`` are used
as given (each must lie in 1..epochs-1).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fkdapp.bounds import Bounds, bounded, check_bounds
from fkdapp.errors import ConfigError
from fkdapp.jsonfile import short
from fkdapp.runtime import atomic_write_text
from fkdapp.settings import build, check_known, did_you_mean, read_json_object
from realdata.data import DATASETS
from realdata.models import MODELS, is_spec

BASE_EPOCHS = 240
BASE_MILESTONES = (150, 180, 210)
DEFAULT_LR = 0.05
#: Students trained with lr 0.01 in the standard recipe.
SMALL_LR_MODELS = ("MobileNetV2", "ShuffleV1", "ShuffleV2")
SMALL_LR = 0.01

#: What an explicit milestone must be (an epoch; below the run's epochs is checked with the others).
MILESTONE = Bounds("int", low=1)

#: Fields that may change between a run and its resumption (where and how it runs, not what it computes).
RUNTIME_FIELDS = ("data_dir", "device", "compile", "eval_batch_size", "tensorboard", "eval_every", "test_size",
                  "data_workers")


def scale_milestones(epochs: int) -> tuple[int, ...]:
    """The standard milestones (150, 180, 210 of 240) scaled to ``epochs`` (see the module docstring)."""
    scaled = (math.floor(m * epochs / BASE_EPOCHS + 0.5) for m in BASE_MILESTONES)
    return tuple(sorted({m for m in scaled if 1 <= m < epochs}))


def default_lr(model: str) -> float:
    """The recipe's learning rate for a student ``model``."""
    return SMALL_LR if model in SMALL_LR_MODELS else DEFAULT_LR


@dataclass(frozen=True)
class TrainConfig:
    """One run: the student (or teacher) ``model`` trained on ``dataset`` with ``method``.

    ``train_size`` (None: all) trains on a class-balanced subset of that many training images, the same subset for
    every seed (:func:`realdata.data.balanced_subset` with seed 0); the test set is always whole. ``val_size`` (None:
    none) holds out that many class-balanced training images outside the training subset as a validation split
    (:func:`realdata.data.train_val_split`, the same for every seed), evaluated every epoch (``val_acc``); best.pt is
    then chosen by validation accuracy, and the test set is read at the last epoch only. ``train_part`` ("i/n",
    instead of ``train_size``) trains on the i-th of n disjoint class-balanced parts of the training pool (teachers
    that saw different data).
    ``transfer_size`` (with ``train_size``) computes the distillation terms also on that many unlabelled training
    images outside the training subset and the validation split (:func:`realdata.data.split_pool`).

    ``optimizer``: "sgd" (the recipe's) or "dot" (the distillation-oriented optimiser, :class:`fkd.DOT`: momentum -
    ``dot_delta`` for the CE gradient, momentum + ``dot_delta`` for the distillation terms', 0.075 as DOT's CIFAR-100
    configs), usable with any method that has a teacher, in one process.

    ``strong_view``: recorded, not read: True in a run's config.json where its method trains on a strong view of
    every image too (MLKD; :func:`realdata.methods.plan.resolve` sets it from the method's needs, whatever was given,
    so old configs still load).

    Each field's range is declared with it (``bounded(default, ...)``, :mod:`fkdapp.bounds`) and checked first;
    what depends on several fields (sizes against each other, DOT's momenta, milestones within the epochs) after.
    ``lr`` and ``milestones`` left as None are filled with the recipe's defaults on construction; the method, its
    ``params`` (defaults filled in) and its rules are resolved by :func:`realdata.methods.plan.resolve`, whose
    ``plan.config`` is what a run saves, so a saved config.json is complete. This module imports no method.
    ``teachers`` are checkpoint paths; ``teacher_archs`` their architectures (None where still to be read from the
    checkpoint: :func:`realdata.checkpoints.load_teachers` fills them in).
    """

    model: str
    dataset: str
    method: str = "ce"
    teachers: tuple[str, ...] = ()
    teacher_archs: tuple[str | None, ...] = ()
    params: dict[str, float] = field(default_factory=dict)
    transfer_data: str | None = None
    transfer_size: int | None = bounded(None, "int", low=1)
    train_size: int | None = bounded(None, "int", low=1)
    train_part: str | None = None
    feature_layer: str | None = None
    val_size: int | None = bounded(None, "int", low=1)
    epochs: int = bounded(BASE_EPOCHS, low=1)
    batch_size: int = bounded(64, low=2)  # BatchNorm and the batch kernels need two samples
    lr: float | None = bounded(None, "float", low=0.0, low_open=True)
    momentum: float = bounded(0.9, high=1.0, high_open=True)
    weight_decay: float = bounded(5e-4)
    milestones: tuple[int, ...] | None = None
    lr_decay: float = bounded(0.1, low_open=True, high=1.0)
    optimizer: str = bounded("sgd", "choice", choices=("sgd", "dot"))
    dot_delta: float = bounded(0.075)
    strong_view: bool = bounded(False)
    seed: int = bounded(0)
    amp: bool = bounded(True)
    channels_last: bool = bounded(True)
    data_dir: str = "data"
    device: str = "auto"
    compile: bool = bounded(False)
    eval_batch_size: int = bounded(1000, low=1)
    eval_every: int = bounded(1, low=1)
    test_size: int | None = bounded(None, "int", low=1)
    image_size: int | None = bounded(None, "int", low=8)
    skip_bad_images: bool = bounded(False)
    stream: bool = bounded(False)
    data_workers: int = bounded(4)
    tensorboard: bool = bounded(False)

    def __post_init__(self) -> None:
        check_bounds(self)  # every field's own range, declared with the field
        if not _known_model(self.model):
            raise ConfigError(f"unknown model {self.model!r}{_hint(self.model, MODELS)} (or package.module:factory)")
        if self.feature_layer is not None:
            if not isinstance(self.feature_layer, str) or not self.feature_layer:
                raise ConfigError(f"feature_layer must be a layer name, got {self.feature_layer!r}")
            if not is_spec(self.model):
                raise ConfigError("--feature-layer applies to a package.module:factory model; zoo models read their "
                                  "own")
        self._check_data()
        if not isinstance(self.method, str) or not self.method:
            raise ConfigError(f"method must be a method's name, got {short(self.method)}")
        if not isinstance(self.params, dict) or not all(isinstance(k, str) for k in self.params):
            raise ConfigError(f"params must map parameter names to values, got {short(self.params)}")
        self._check_teachers()
        self._check_transfer()
        self._check_schedule()

    def _fix(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)

    def _check_data(self) -> None:
        """The data set, the transfer data set (names normalised) and the sizes and part of the training data; the
        data folder made absolute (a run resumed from another working folder finds its data)."""
        if not isinstance(self.data_dir, str) or not self.data_dir:
            raise ConfigError(f"data_dir must be a folder, got {short(self.data_dir)}")
        self._fix("data_dir", os.path.abspath(self.data_dir))
        if not isinstance(self.dataset, str):
            raise ConfigError(f"dataset must be a name or folder:PATH, got {short(self.dataset)}")
        dataset = self.dataset.strip().lower().replace("-", "_")
        given = self.dataset.strip()
        if given.startswith("folder:") or (dataset not in DATASETS and os.path.isdir(given)):
            dataset = "folder:" + os.path.abspath(given.removeprefix("folder:"))  # a user's class folders
        elif is_spec(given):
            dataset = given  # a user's own Dataset factory, named on the command line
        elif dataset not in DATASETS:
            raise ConfigError(f"unknown data set {self.dataset!r}{_hint(dataset, DATASETS)} (or a folder of class "
                              "folders: folder:PATH)")
        self._fix("dataset", dataset)
        if self.stream and not dataset.startswith("folder:"):
            raise ConfigError("--stream reads a folder of class folders (--dataset folder:ROOT); the built-in data "
                              "sets and a Dataset factory are held in memory: drop --stream")
        if self.stream and (self.transfer_data is not None or self.transfer_size is not None):
            raise ConfigError("a streamed data set takes no transfer images yet; drop --transfer-data/--transfer-size "
                              "or --stream")
        if self.transfer_data is not None:
            transfer = self.transfer_data.strip().lower().replace("-", "_")
            if transfer not in DATASETS:
                raise ConfigError(f"unknown transfer data set {self.transfer_data!r}; choose one of: "
                                  f"{', '.join(DATASETS)}")
            self._fix("transfer_data", transfer)
        if self.train_part is not None:
            if self.train_size is not None:
                raise ConfigError("give --train-size or --train-part, not both")
            self.part()  # validates

    def _check_teachers(self) -> None:
        """Teacher paths made absolute, one arch (or None: read later) per teacher, each a known model."""
        self._fix("teachers", tuple(os.path.abspath(t) for t in self.teachers))
        archs = tuple(self.teacher_archs) or (None,) * len(self.teachers)
        if len(archs) != len(self.teachers):
            raise ConfigError(f"{len(self.teachers)} teachers but {len(archs)} teacher archs")
        for arch in archs:
            if arch is not None and not _known_model(arch):
                raise ConfigError(f"unknown teacher arch {arch!r}; a zoo name ({', '.join(list(MODELS)[:4])}, ...) "
                                  "or package.module:factory")
        self._fix("teacher_archs", archs)

    def _check_transfer(self) -> None:
        """Unlabelled images of this data set: a count, with a training subset to lie outside, not beside
        --transfer-data."""
        if self.transfer_size is None:
            return
        if self.transfer_data is not None:
            raise ConfigError("give --transfer-data (another data set) or --transfer-size (unlabelled images of "
                              "this one), not both")
        if self.train_size is None:
            raise ConfigError("--transfer-size takes unlabelled images outside the training subset: give "
                              "--train-size too")

    def _check_schedule(self) -> None:
        """The learning rate (the recipe's where not given), DOT's momenta, the milestones (derived where not given),
        the device."""
        self._fix("lr", default_lr(self.model) if self.lr is None else self.lr)
        if self.optimizer == "dot" and not (self.momentum - self.dot_delta >= 0 and self.momentum + self.dot_delta < 1):
            raise ConfigError(f"optimizer 'dot' needs 0 <= momentum - dot_delta and momentum + dot_delta < 1, got "
                              f"momentum {self.momentum:g} and dot_delta {self.dot_delta:g}")
        if self.milestones is None:
            self._fix("milestones", scale_milestones(self.epochs))
        else:
            ms = tuple(self.milestones)
            for m in ms:
                MILESTONE.check("milestone", m)
            if list(ms) != sorted(set(ms)) or (ms and ms[-1] >= self.epochs):
                raise ConfigError(f"milestones must be increasing epochs in 1..{self.epochs - 1}, got "
                                  f"{','.join(map(str, ms))}; give --milestones within the {self.epochs} epochs "
                                  "(--milestones '' for none)")
            self._fix("milestones", ms)
        if not isinstance(self.device, str) or not self.device:
            raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")

    def part(self) -> tuple[int, int] | None:
        """``train_part`` "i/n" as (i, n); None without one."""
        if self.train_part is None:
            return None
        i, sep, n = str(self.train_part).partition("/")
        if not (sep and i.strip().isdigit() and n.strip().isdigit() and 1 <= int(i) <= int(n) and int(n) >= 2):
            raise ConfigError(f"train_part must be i/n with 1 <= i <= n and n >= 2 (e.g. 2/4), got "
                              f"{self.train_part!r}")
        return int(i), int(n)

    # ------------------------------------------------------------------------------------------------- JSON

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["teachers"] = list(self.teachers)
        d["teacher_archs"] = list(self.teacher_archs)
        d["milestones"] = list(self.milestones or ())
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        if not isinstance(d, dict):
            raise ConfigError(f"a config must be a JSON object, got {type(d).__name__}")
        check_known(d, [f.name for f in dataclasses.fields(cls)])
        d = dict(d)
        for key in ("teachers", "teacher_archs", "milestones"):
            if isinstance(d.get(key), list):
                d[key] = tuple(d[key])
        return build(cls, d)

    def save(self, path: str | Path) -> None:
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        return cls.from_dict(read_json_object(path, "config"))

    def identity(self) -> dict[str, Any]:
        """The fields that decide what a run computes (everything but :data:`RUNTIME_FIELDS`)."""
        return {k: v for k, v in self.to_dict().items() if k not in RUNTIME_FIELDS}

    def digest(self) -> str:
        """A short digest of :meth:`identity`: stored in a run's checkpoints, so a run knows its own."""
        text = json.dumps(self.identity(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def with_updates(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` applied and validated again."""
        return dataclasses.replace(self, **changes)


def _known_model(name: str) -> bool:
    """A zoo name, or a package.module:factory spec. Reading a config never imports: the module is imported when
    the model is built, and only when the user named it on the command line (:func:`code_in`)."""
    return isinstance(name, str) and (name in MODELS or is_spec(name))


def code_in(fields: dict[str, Any]) -> list[str]:
    """The package.module:factory specs a config's fields name (model, dataset, teacher archs): code to import."""
    values = [fields.get("model"), fields.get("dataset"), *(fields.get("teacher_archs") or ())]
    return [v for v in values if isinstance(v, str) and is_spec(v)]


def _hint(name: str, choices: Any) -> str:
    """A did-you-mean suggestion, else the list of choices."""
    return did_you_mean(name, choices) or f"; choose one of: {', '.join(choices)}"
