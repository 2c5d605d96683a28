"""The training loop for teachers (method ``ce``) and students alike: SGD, a step schedule, evaluation every epoch.

The data set stays on the device as uint8; every batch is cropped, flipped and normalised there (no DataLoader).
On CUDA the forward pass runs under bf16 autocast with channels_last tensors (both can be switched off), and
``compile`` wraps the distiller in ``torch.compile``. All randomness of the data (batch order, crops, flips) comes
from one generator seeded with ``seed``, saved in every checkpoint with the other RNG states, so on CPU a resumed
run ends with the same weights, bit for bit, as an uninterrupted one.

Under torchrun (several processes) the distiller is wrapped in DistributedDataParallel. ``batch_size`` is the global
batch: every rank draws the same permutation and augmentation from the same seeded generator and trains on its own
slice of each global batch (rank r: samples r B/W .. (r+1) B/W - 1), so the data of a run does not depend on the
number of processes. The relational losses see the whole global batch (:mod:`realdata.distributed`). The logged
losses and accuracy are averaged over ranks; rank 0 alone evaluates the test set, writes the run folder and prints.
"""

from __future__ import annotations

import copy
import math
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from fkd import fkd_loss
from fkdapp.errors import ConfigError, UserError
from fkdapp.lock import FolderLock
from fkdapp.progress import Progress, clock
from fkdapp.runtime import environment, resolve_device
from realdata import distributed
from realdata.config import TrainConfig
from realdata.data import (
    ImageData,
    adapt,
    augment,
    eval_batches,
    load_dataset,
    normalize,
    resize_channels,
    split_pool,
)
from realdata.methods import METHODS, Distiller, in_channels_of
from realdata.models import ExternalModel, ZooModel, build
from realdata.runs import (
    LoadedModel,
    RunDir,
    RunError,
    atomic_save,
    load_model,
    load_teachers,
    model_checkpoint,
    read_checkpoint,
)


class Interrupted(UserError):
    """SIGINT / SIGTERM: the run stopped after its current step; the message says how to continue."""


class _StopSignal:
    """Catches SIGINT / SIGTERM while a run trains (main thread only) so the loop can stop after the current step.

    Not under torchrun: there the agent stops and restarts its workers itself (``--max-restarts``), and a worker
    that kept running after its SIGTERM could block in a collective with a dead peer."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _StopSignal:
        if threading.current_thread() is threading.main_thread() and "TORCHELASTIC_RUN_ID" not in os.environ:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.received = signum

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


class NonFiniteLoss(UserError):
    """A loss became NaN or infinite; the message says where (epoch, step, which named loss)."""


# ------------------------------------------------------------------------------------------------ RNG state


def rng_state(generator: torch.Generator) -> dict[str, Any]:
    """Every RNG state a run depends on: torch (CPU and CUDA), the data generator, python, numpy."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "data": generator.get_state(),
        "python": random.getstate(),
        "numpy": [name, keys.tolist(), pos, has_gauss, gauss],
    }


def set_rng_state(state: dict[str, Any], generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    generator.set_state(state["data"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))


# ------------------------------------------------------------------------------------------------- evaluation


@torch.no_grad()
def evaluate(model: nn.Module, data: ImageData, batch_size: int = 1000, amp: bool = False,
             memory_format: torch.memory_format = torch.contiguous_format, split: str = "test") -> float:
    """Top-1 accuracy (%) of ``model`` on ``data``'s ``split`` ("test" or "val"), on the data's device.

    On a CPU a zoo model given ``memory_format`` contiguous (the default) is evaluated as a channels-last copy
    (1.4-1.8x faster there, ``benchmarks/bench_eval_layout.py``, which passes ``torch.preserve_format`` to time the
    model as it is); the model itself, and so training, is untouched."""
    model.eval()
    images, labels = data.split(split)
    device = images.device
    if device.type == "cpu" and memory_format == torch.contiguous_format and _zoo_only(model):
        model, memory_format = copy.deepcopy(model).to(memory_format=torch.channels_last), torch.channels_last
    correct = torch.zeros((), dtype=torch.long, device=device)
    for idx in eval_batches(images.shape[0], batch_size, device):
        x = normalize(images[idx], data.mean, data.std).contiguous(memory_format=memory_format)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(x)
        correct += (logits.argmax(1) == labels[idx]).sum()
    return 100.0 * correct.item() / images.shape[0]


def _zoo_only(model: nn.Module) -> bool:
    """Whether ``model`` is a zoo model or a mean of them (their layers take channels-last input)."""
    members = model.members if isinstance(model, MeanLogits) else [model]
    return all(isinstance(m, ZooModel) for m in members)


# ----------------------------------------------------------------------------------------------- the trainer


class Trainer:
    """SGD on a distiller's student: one step, one epoch, evaluation, and the state to checkpoint.

    In a process group of W > 1 ranks (:mod:`realdata.distributed`) the distiller runs under DDP and each step
    trains on this rank's shard of the global batch; ``config.batch_size`` (the global batch) must split evenly.
    """

    def __init__(self, config: TrainConfig, distiller: Distiller, data: ImageData,
                 transfer: ImageData | None = None, device: torch.device | str = "cpu") -> None:
        self.config, self.distiller, self.data, self.transfer = config, distiller, data, transfer
        self.device = torch.device(device)
        self.world, self.rank = distributed.world_size(), distributed.rank()
        if config.batch_size % self.world:
            raise ConfigError(f"the batch size {config.batch_size} (the global batch) does not split evenly over "
                              f"{self.world} processes")
        self.steps_per_epoch = data.train_x.shape[0] // config.batch_size
        if self.steps_per_epoch == 0:
            raise ConfigError(f"batch size {config.batch_size} is larger than the {data.train_x.shape[0]} training "
                              f"images of {data.name}")
        self.student = distiller.student
        if not len(distiller.heads):  # FitNet's regressors, CRD's embeddings (a no-op for the other methods)
            distiller.build_heads(transfer if transfer is not None else data, config.seed)
        params = [*self.student.parameters(), *distiller.heads.parameters()]
        self.optimizer = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                                         weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(self.optimizer, list(config.milestones or ()),
                                                              gamma=config.lr_decay)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(config.seed)
        cuda = self.device.type == "cuda"
        self.amp = config.amp and cuda
        self.memory_format = torch.channels_last if config.channels_last and cuda else torch.contiguous_format
        distiller.to(self.device, memory_format=self.memory_format)
        forward: nn.Module = distiller
        if self.world > 1:
            forward = DistributedDataParallel(distiller, device_ids=[self.device.index] if cuda else None)
        self.forward = torch.compile(forward) if config.compile else forward
        # a host sync every step is free on the CPU; on a GPU it would stall the queue
        self.sync_every = 1 if self.device.type == "cpu" else 25
        self.stop: _StopSignal | None = None
        #: where a stopped epoch stopped (see train_epoch); saved in last.pt
        self.partial: dict[str, Any] | None = None
        self.last_row: dict[str, Any] | None = None  # the last finished epoch's metrics, kept in last.pt
        #: the initialisation stage of methods that have one (FT, FSP): epochs done, and its own optimiser
        self.init_done = 0
        self.init_optimizer: torch.optim.Optimizer | None = None
        self.epoch = 0
        self.best_acc = -math.inf
        self.best_epoch = 0

    def _shard(self, t: Tensor) -> Tensor:
        """This rank's slice of a global batch (all of it in one process)."""
        n = t.shape[0] // self.world
        return t[self.rank * n : (self.rank + 1) * n]

    def _images(self, x: Tensor, data: ImageData) -> Tensor:
        # the whole global batch is augmented on every rank, so that the generator stays in step across ranks
        x = normalize(self._shard(augment(x, self.generator)), data.mean, data.std)
        return x.contiguous(memory_format=self.memory_format)

    def train_step(self, x: Tensor, y: Tensor, transfer_x: Tensor | None = None,
                   indices: Tensor | None = None, step: int = 0) -> dict[str, Tensor]:
        """One SGD step of epoch ``self.epoch + 1`` on a uint8 global batch (this rank trains on its shard of it;
        ``indices``: the global batch's indices into the training set, for CRD's memory); returns this rank's named
        losses, their ``total`` and the number ``correct`` (detached, on the device, not synced)."""
        images = self._images(x, self.data)
        y = self._shard(y)
        transfer = None if transfer_x is None else self._images(transfer_x, self.transfer)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            logits, losses = self.forward(images, y, transfer, indices, self.epoch + 1, step)
        total = torch.stack(list(losses.values())).sum()
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        return {"total": total.detach().float(), **{k: v.detach().float() for k, v in losses.items()},
                "correct": (logits.argmax(1) == y).sum().float()}

    def _transfer_order(self, steps: int) -> Tensor:
        """Indices into the transfer set for one epoch: fresh permutations, as many as ``steps`` batches need."""
        n = self.transfer.train_x.shape[0]
        repeats = math.ceil(steps * self.config.batch_size / n)
        return torch.cat([torch.randperm(n, generator=self.generator, device=self.device) for _ in range(repeats)])

    def _check_finite(self, block: dict[str, Tensor], epoch: int, first_step: int) -> None:
        """A NonFiniteLoss naming the first step and loss (a named one before the total) that is not finite."""
        names = [n for n in block if n not in ("total", "correct")] + ["total"]
        bad = torch.stack([~torch.isfinite(block[n]) for n in names], 1)  # (steps, names)
        if bad.any():
            row = int(bad.any(1).nonzero()[0])
            name = names[int(bad[row].nonzero()[0])]
            raise NonFiniteLoss(f"epoch {epoch}, step {first_step + row}/{self.steps_per_epoch}: the {name!r} loss "
                                f"is {float(block[name][row])}; training stopped")

    def _sync(self, pending: list[dict[str, Tensor]]) -> dict[str, Tensor]:
        """The pending steps' named values, one (steps,) float64 CPU tensor per name: in several processes summed
        over ranks and the losses divided by the number of ranks, i.e. the global batch's mean losses and number
        correct (so every rank stops on the same non-finite loss). One transfer for all of them."""
        names = list(pending[0])
        block = torch.stack([torch.stack([step[n] for n in names]) for step in pending])  # (steps, names)
        if self.world > 1:
            block = distributed.all_reduce_sum(block)
            block[:, [i for i, n in enumerate(names) if n != "correct"]] /= self.world
        block = block.double().cpu()
        return {n: block[:, i] for i, n in enumerate(names)}

    def train_epoch(self, progress: Progress | None = None) -> dict[str, Any]:
        """One pass over the training set; returns the epoch's lr, mean losses, train accuracy (%) and speed.

        A stop signal ends the epoch after the current step: :attr:`partial` then holds where it stopped (the
        epoch's batch order, the steps done, the running sums), which the next call (after a resume) continues
        from, to the same numbers as an uninterrupted epoch."""
        cfg, data = self.config, self.data
        epoch = self.epoch + 1
        self.distiller.train()
        lr = self.optimizer.param_groups[0]["lr"]
        steps, bs = self.steps_per_epoch, cfg.batch_size
        part, self.partial = self.partial, None
        if part is None or part["epoch"] != epoch:
            transfer_order = None if self.transfer is None else self._transfer_order(steps)
            order = torch.randperm(data.train_x.shape[0], generator=self.generator, device=self.generator.device)
            done, sums, seconds_before = 0, {}, 0.0
        else:
            order, transfer_order = part["order"].to(self.device), part["transfer_order"]
            transfer_order = None if transfer_order is None else transfer_order.to(self.device)
            done, sums, seconds_before = part["step"], dict(part["sums"]), part["seconds"]
        pending: list[dict[str, Tensor]] = []
        start = time.perf_counter()
        for step in range(done + 1, steps + 1):
            idx = order[(step - 1) * bs : step * bs]
            transfer_x = None if transfer_order is None else \
                self.transfer.train_x[transfer_order[(step - 1) * bs : step * bs]]
            pending.append(self.train_step(data.train_x[idx], data.train_y[idx], transfer_x, idx, step))
            stopping = self.stop is not None and self.stop.received is not None
            if len(pending) == self.sync_every or step == steps or stopping:
                block = self._sync(pending)
                self._check_finite(block, epoch, step - len(pending) + 1)
                for name, values in block.items():
                    sums[name] = sums.get(name, 0.0) + float(values.sum())
                pending = []
                if progress is not None:
                    elapsed = time.perf_counter() - start
                    left = (steps - step + (cfg.epochs - epoch) * steps) * elapsed / (step - done)  # training only
                    progress.update(f"epoch {epoch}/{cfg.epochs} step {step}/{steps} loss {sums['total'] / step:.4f} "
                                    f"acc {100 * sums['correct'] / (step * bs):.2f}% "
                                    f"{(step - done) * bs / elapsed:.0f} img/s, training ETA {clock(left)}",
                                    force=step == steps)
            if stopping:
                self.partial = {"epoch": epoch, "step": step, "order": order.cpu(), "sums": sums,
                                "transfer_order": None if transfer_order is None else transfer_order.cpu(),
                                "seconds": seconds_before + time.perf_counter() - start}
                raise Interrupted(f"stopped by signal {self.stop.received} at epoch {epoch}, step {step}/{steps}")
        seconds = seconds_before + time.perf_counter() - start
        self.scheduler.step()
        self.epoch = epoch
        return {
            "epoch": epoch,
            "lr": lr,
            "loss": sums["total"] / steps,
            "losses": {k: v / steps for k, v in sums.items() if k not in ("total", "correct")},
            "train_acc": 100.0 * sums["correct"] / (steps * bs),
            "images_per_s": (steps - done) * bs / (time.perf_counter() - start),
            "seconds": seconds,
        }

    def evaluate(self, split: str = "test") -> float:
        return evaluate(self.student, self.data, self.config.eval_batch_size, self.amp, self.memory_format, split)

    def kernel_alignment(self) -> list[float]:
        """The kernel-alignment monitor, logged every epoch for every method (see ``kernel_alignment``)."""
        d = self.distiller
        if not len(d.teachers):
            return []
        self.student.eval()
        return kernel_alignment(self.student, list(d.teachers), self.data, self.memory_format)

    def checkpoint(self, **extra: Any) -> dict[str, Any]:
        """The student as a self-describing model checkpoint, plus ``extra`` entries."""
        d = self.data
        return model_checkpoint(self.student, self.config.model, d.num_classes, d.in_channels, d.image_size, d.name,
                                method=self.config.method, epoch=self.epoch, **extra)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: the model checkpoint plus optimiser, scheduler, RNG states, best accuracy."""
        return self.checkpoint(optimizer=self.optimizer.state_dict(), scheduler=self.scheduler.state_dict(),
                               rng=rng_state(self.generator), best_acc=self.best_acc, best_epoch=self.best_epoch,
                               config=self.config.to_dict(), heads=self.distiller.heads.state_dict(),
                               partial=self.partial, metrics_row=self.last_row, init_done=self.init_done,
                               init_optimizer=None if self.init_optimizer is None else
                               self.init_optimizer.state_dict())

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.student.load_state_dict(state["model"])
        self.distiller.heads.load_state_dict(state.get("heads", {}))
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"], self.generator)
        self.epoch, self.best_acc, self.best_epoch = state["epoch"], state["best_acc"], state["best_epoch"]
        self.partial = state.get("partial")  # an epoch stopped part-way (None: stopped between epochs)
        self.last_row = state.get("metrics_row")  # the metrics of epoch ``self.epoch``, if a torn file lost them
        self.init_done = state.get("init_done", 0)
        if state.get("init_optimizer") is not None:
            self._init_optimizer().load_state_dict(state["init_optimizer"])
        if self.init_done >= self.distiller.init_epochs():
            self.distiller.end_init()

    def _init_optimizer(self) -> torch.optim.Optimizer:
        if self.init_optimizer is None:
            self.init_optimizer = torch.optim.SGD(self.distiller.init_parameters(), lr=self.distiller.params["init_lr"],
                                                  momentum=self.config.momentum,
                                                  weight_decay=self.config.weight_decay)
        return self.init_optimizer

    def init_epoch(self) -> dict[str, Any]:
        """One epoch of the method's initialisation stage (its modules trained on its init loss with their own SGD,
        no schedule, in the training set's batches); a stop signal ends it after the step (the stage then resumes
        from the last finished init epoch, to the same numbers)."""
        cfg, data, opt = self.config, self.data, self._init_optimizer()
        epoch = self.init_done + 1
        self.distiller.train()
        order = torch.randperm(data.train_x.shape[0], generator=self.generator, device=self.generator.device)
        params = [p for g in opt.param_groups for p in g["params"]]
        total, pending, start = 0.0, [], time.perf_counter()
        for step in range(1, self.steps_per_epoch + 1):
            idx = order[(step - 1) * cfg.batch_size : step * cfg.batch_size]
            images = self._images(data.train_x[idx], data)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                loss = self.distiller.init_loss(images)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            distributed.average_grads(params)  # the stage runs outside DDP: one all-reduce of its gradients
            opt.step()
            pending.append({"init_loss": loss.detach().float()})
            if len(pending) == self.sync_every or step == self.steps_per_epoch:  # as train_epoch: few host syncs
                block = self._sync(pending)["init_loss"]
                bad = (~torch.isfinite(block)).nonzero()
                if len(bad):
                    first = step - len(pending) + 1 + int(bad[0])
                    raise NonFiniteLoss(f"the {self.distiller.NAME} initialisation loss is {float(block[bad[0]])} at "
                                        f"init epoch {epoch}, step {first}")
                total, pending = total + float(block.sum()), []
            if self.stop is not None and self.stop.received is not None:
                raise Interrupted(f"stopped by signal {self.stop.received} in init epoch {epoch}, step {step}")
        self.init_done = epoch
        if epoch >= self.distiller.init_epochs():
            self.distiller.end_init()
        return {"init_epoch": epoch, "init_loss": total / self.steps_per_epoch,
                "seconds": time.perf_counter() - start}


# ------------------------------------------------------------------------------------------------- one run


def load_data(config: TrainConfig, download: bool, device: torch.device) -> tuple[ImageData, ImageData | None]:
    """The labelled data set and the transfer set (if any), on ``device``; with a transfer set both are brought to
    the larger of their channel counts and image sizes (1 channel repeated, zero padding), so that the student can
    take both in one batch."""
    data, unlabelled = split_pool(load_dataset(config.dataset, config.data_dir, download), config.train_size,
                                  config.val_size, config.part(), config.transfer_size)
    if config.transfer_data is None:
        return data.to(device), None if unlabelled is None else unlabelled.to(device)
    transfer = load_dataset(config.transfer_data, config.data_dir, download)
    channels = max(data.in_channels, transfer.in_channels)
    size = max(data.image_size, transfer.image_size)
    return adapt(data, channels, size).to(device), adapt(transfer, channels, size).to(device)


def check_teachers(method: type[Distiller], teachers: list[LoadedModel], data: ImageData) -> None:
    """One-line errors for teachers that cannot teach on ``data`` with ``method``."""
    for t in teachers:
        if method.USES_TEACHER_LOGITS and t.num_classes != data.num_classes:
            raise RunError(f"method {method.NAME!r} compares logits, but teacher {t.path} ({t.arch}) has "
                           f"{t.num_classes} classes and {data.name} {data.num_classes}")
        if t.in_channels != data.in_channels and data.in_channels != 1:
            raise RunError(f"teacher {t.path} ({t.arch}) takes {t.in_channels}-channel images, but the images here "
                           f"have {data.in_channels} channels")


def run_training(
    config: TrainConfig,
    out: str | Path,
    *,
    resume: bool = False,
    download: bool = False,
    progress: Progress | None = None,
    on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Train ``config`` into the run folder ``out`` (continuing it with ``resume``); returns a summary.

    Under torchrun every rank calls this with the same arguments: each trains its shard of every global batch, and
    rank 0 alone downloads, evaluates, writes the run folder, shows ``progress`` and calls ``on_epoch_end``.
    Raises a one-line UserError (ConfigError, RunError, DataError, CheckpointError, NonFiniteLoss) on bad input.
    """
    device = distributed.setup(config.device)
    teachers, config = load_teachers(config)
    with FolderLock(out, f"--out {out}"):
        return _run_locked(config, RunDir(out), device, teachers, resume, download, progress, on_epoch_end)


def _run_locked(config: TrainConfig, run: RunDir, device: torch.device, teachers: list[LoadedModel], resume: bool,
                download: bool, progress: Progress | None,
                on_epoch_end: Callable[[dict[str, Any]], None] | None) -> dict[str, Any]:
    """run_training's body, with the run folder locked."""
    main = distributed.is_main()
    resuming = run.check_start(config, resume)
    data, transfer = load_data_once(config, download, device)
    trainer = build_trainer(config, teachers, data, transfer, device)
    if resuming and run.last_path.is_file():
        trainer.load_state_dict(read_checkpoint(run.last_path))
    distributed.barrier()  # every rank has read the run folder before rank 0 writes to it
    writer = tensorboard_writer(run) if main and config.tensorboard else None
    if main:
        open_run(run, config, trainer, device, resuming)
    with _StopSignal() as trainer.stop:
        init_stage(trainer, run, progress if main else None)
        for _ in range(trainer.epoch + 1, config.epochs + 1):
            row = train_epoch_or_stop(trainer, run, progress if main else None)
            if main:
                end_epoch(trainer, run, row, progress)
                if writer is not None:
                    log_scalars(writer, row)
                if on_epoch_end is not None:
                    on_epoch_end(row)
            distributed.barrier()  # the other ranks wait while rank 0 evaluates and writes
    return summarize(run, config)


def load_data_once(config: TrainConfig, download: bool, device: torch.device) -> tuple[ImageData, ImageData | None]:
    """The data on every rank, rank 0 first (it alone fetches a missing data set)."""
    if distributed.is_main():
        loaded = load_data(config, download, device)
    distributed.barrier()
    if not distributed.is_main():
        loaded = load_data(config, False, device)
    return loaded


def check_runs_on(model: nn.Module, name: str, data: ImageData) -> None:
    """One line where ``model`` cannot take two of ``data``'s images (a user's model built for other shapes), or
    its feature layer does not run."""
    if not isinstance(model, ExternalModel):
        return
    x = data.train_x[:2].float()
    try:
        with torch.no_grad():
            model.eval().forward_features(x)
    except Exception as e:  # the user's model may fail in any way
        shape = "x".join(map(str, x.shape[1:]))
        raise RunError(f"model {name!r} does not run on {shape} images: {type(e).__name__}: {str(e)[:80]}") from None
    model.train()


def build_trainer(config: TrainConfig, teachers: list[LoadedModel], data: ImageData, transfer: ImageData | None,
                  device: torch.device) -> Trainer:
    """The student (seeded), its method around the frozen teachers, and the trainer."""
    method = METHODS[config.method]
    check_teachers(method, teachers, data)
    torch.manual_seed(config.seed)
    try:
        student = build(config.model, num_classes=data.num_classes, in_channels=data.in_channels,
                        feature_layer=config.feature_layer)
    except ValueError as e:
        raise RunError(str(e)) from None
    check_runs_on(student, config.model, data)
    distiller = method(student, [t.model for t in teachers], **config.params)
    return Trainer(config, distiller, data, transfer, device)


def open_run(run: RunDir, config: TrainConfig, trainer: Trainer, device: torch.device, resuming: bool) -> None:
    """Rank 0: drop metrics past the checkpoint being resumed, record the config and environment."""
    if resuming:
        run.truncate_metrics(trainer.epoch, trainer.last_row)
    run.start(config, {**environment(device), "world_size": trainer.world},
              resumed_at=trainer.epoch if resuming else None)


def init_stage(trainer: Trainer, run: RunDir, progress: Progress | None) -> None:
    """The method's initialisation stage (FT's paraphraser, FSP's student stages), before the first epoch: each
    init epoch logged to init.jsonl and saved in last.pt, so a stopped stage resumes from its last finished epoch."""
    n = trainer.distiller.init_epochs()
    while trainer.init_done < n:
        try:
            row = trainer.init_epoch()
        except Interrupted as e:
            kept = f"{run.last_path} holds init epoch {trainer.init_done}" if trainer.init_done else \
                "no init epoch finished"
            raise Interrupted(f"{e}; {kept}; continue with: realdata resume {run.path}") from None
        if distributed.is_main():
            run.append_init(row)
            atomic_save(trainer.state_dict(), run.last_path)
            if progress is not None:
                progress.update(f"init epoch {row['init_epoch']}/{n}: {trainer.distiller.NAME} initialisation loss "
                                f"{row['init_loss']:.4f}", force=True)
                progress.close()
        distributed.barrier()


def train_epoch_or_stop(trainer: Trainer, run: RunDir, progress: Progress | None) -> dict[str, Any]:
    """One epoch; a non-finite loss stops the run with a message naming the last good checkpoint."""
    try:
        return trainer.train_epoch(progress)
    except NonFiniteLoss as e:
        kept = f"last good checkpoint: {run.last_path} (epoch {trainer.epoch})" if trainer.epoch else \
            "no checkpoint was written"
        raise NonFiniteLoss(f"{e}; {kept}") from None
    except Interrupted as e:
        part = trainer.partial
        if distributed.is_main():
            atomic_save(trainer.state_dict(), run.last_path)
        kept = f"{run.last_path} holds epoch {trainer.epoch} and steps 1-{part['step']} of epoch {part['epoch']}"
        raise Interrupted(f"{e}; {kept}; continue with: realdata resume {run.path}") from None
    finally:
        if progress is not None:
            progress.close()


def tensorboard_writer(run: RunDir) -> Any:
    """A TensorBoard SummaryWriter into the run folder; a one-line ConfigError when tensorboard is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError("--tensorboard needs the tensorboard package: pip install '.[tensorboard]' (or pip install "
                          "tensorboard), or drop --tensorboard; metrics.csv holds the same numbers") from None
    return SummaryWriter(log_dir=str(run.path / "tensorboard"))


def log_scalars(writer: Any, row: dict[str, Any]) -> None:
    """One epoch's metrics as TensorBoard scalars."""
    for key in ("loss", "train_acc", "test_acc", "lr", "images_per_s", "seconds", "eval_seconds"):
        if key in row:
            writer.add_scalar(key, row[key], row["epoch"])
    for name, value in row.get("losses", {}).items():
        writer.add_scalar(f"losses/{name}", value, row["epoch"])
    for i, value in enumerate(row.get("kernel_distance", [])):
        writer.add_scalar(f"kernel_distance/teacher{i}", value, row["epoch"])
    writer.flush()


def end_epoch(trainer: Trainer, run: RunDir, row: dict[str, Any], progress: Progress | None = None) -> None:
    """Rank 0: evaluate, log the epoch's metrics, write best.pt (on improvement) and last.pt, atomically.

    With a validation split, ``val_acc`` is logged every epoch, "best" is the best validation accuracy (``best_acc``
    then holds it) and the test set is read at the last epoch only (``test_acc`` in the last row): it never chooses
    a checkpoint or a setting."""
    eval_start = time.perf_counter()
    has_val = trainer.data.val_x is not None
    read_test = not has_val or trainer.epoch >= trainer.config.epochs
    if progress is not None:
        split = f"{trainer.data.test_x.shape[0]} test images" if read_test else "the validation split"
        progress.update(f"epoch {row['epoch']}: evaluating on {split}", force=True)
    accs = {"test_acc": trainer.evaluate()} if read_test else {}
    if has_val:
        accs["val_acc"] = trainer.evaluate("val")
    alignment = trainer.kernel_alignment()
    if alignment:
        row["kernel_distance"] = alignment
    if progress is not None:
        progress.close()
    chosen = accs["val_acc"] if has_val else accs["test_acc"]
    improved = chosen > trainer.best_acc
    if improved:
        trainer.best_acc, trainer.best_epoch = chosen, trainer.epoch
    row.update(**accs, best_acc=trainer.best_acc, eval_seconds=time.perf_counter() - eval_start)
    trainer.last_row = row
    run.append_metrics(row)
    if improved:
        atomic_save(trainer.checkpoint(**accs), run.best_path)
    atomic_save(trainer.state_dict(), run.last_path)


def summarize(run: RunDir, config: TrainConfig) -> dict[str, Any]:
    """Last and best accuracy (the first epoch of the best) from the run's metrics: test accuracy, or with a
    validation split the validation accuracy (and the test accuracy at the last epoch)."""
    rows = run.read_metrics()
    key = "val_acc" if config.val_size is not None else "test_acc"
    best = max(rows, key=lambda r: r[key]) if rows else None
    out = {"out": str(run.path), "epochs": config.epochs, "selected_by": key,
           "last_acc": rows[-1][key] if rows else None, "best_acc": best[key] if best else None,
           "best_epoch": best["epoch"] if best else 0}
    if config.val_size is not None:
        out["last_test_acc"] = rows[-1]["test_acc"] if rows else None
    return out


class MeanLogits(nn.Module):
    """An ensemble's prediction: the mean of its members' logits (the target KD and DKD distil from)."""

    def __init__(self, models: Sequence[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(models)

    def forward(self, x: Tensor) -> Tensor:
        return torch.stack([m(x) for m in self.members]).mean(0)


@torch.no_grad()
def kernel_alignment(student: nn.Module, teachers: Sequence[nn.Module], data: ImageData,
                     memory_format: torch.memory_format = torch.contiguous_format, batch: int = 256) -> list[float]:
    """D(rho_S, rho_T) between the student's and each teacher's pooled features (B, C) on the first ``batch`` test
    images of ``data`` (a fixed batch, so epochs and runs compare); models in eval mode, each teacher fed the
    channels it was trained on."""
    x = normalize(data.test_x[:batch], data.mean, data.std).contiguous(memory_format=memory_format)
    h_s = student.forward_features(x)[1].float()
    return [float(fkd_loss(h_s, t.forward_features(resize_channels(x, in_channels_of(t)))[1].float()))
            for t in teachers]


def evaluate_checkpoint(path: str | Path | Sequence[str | Path], dataset: str | None = None, arch: str | None = None,
                        data_dir: str = "data", download: bool = False, device: str = "auto",
                        batch_size: int = 1000, kernel_to: Sequence[str | Path] = ()) -> dict[str, Any]:
    """Test accuracy (%) of checkpoint ``path`` on ``dataset`` (default: the data set the checkpoint records); a list
    of checkpoints is evaluated as an ensemble (mean logits), all of the same classes and input format. With
    ``kernel_to`` (teacher checkpoints), also the kernel-alignment monitor's D(rho_S, rho_T) between the (single)
    model and each of them, on the monitor's fixed batch: for a run that had no teacher, such as the student alone.

    The test images are brought to the channels and size the model was trained on (e.g. Fashion-MNIST for a
    model trained on it padded to 3x32x32 beside a CIFAR transfer set).
    """
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    if not paths:
        raise ConfigError("no checkpoint to evaluate")
    if kernel_to and len(paths) > 1:
        raise ConfigError("--kernel-to compares one checkpoint with its teachers; give one checkpoint, not an ensemble")
    dev = resolve_device(device)
    members = [load_model(p, arch) for p in paths]
    loaded = members[0]
    for p, m in zip(paths[1:], members[1:], strict=True):
        if (m.num_classes, m.in_channels, m.image_size, m.dataset) != (loaded.num_classes, loaded.in_channels,
                                                                      loaded.image_size, loaded.dataset):
            raise RunError(f"checkpoint {p} ({m.dataset}, {m.num_classes} classes, {m.in_channels}x{m.image_size}) "
                           f"cannot join an ensemble with {paths[0]} ({loaded.dataset}, {loaded.num_classes} classes, "
                           f"{loaded.in_channels}x{loaded.image_size})")
    name = dataset or loaded.dataset
    if name is None:
        raise ConfigError(f"checkpoint {paths[0]} does not record its data set; name it with --dataset")
    data = load_dataset(name, data_dir, download)
    if loaded.num_classes != data.num_classes:
        raise RunError(f"checkpoint {paths[0]} ({loaded.arch}) has {loaded.num_classes} classes, {data.name} has "
                       f"{data.num_classes}")
    size = loaded.image_size or data.image_size
    if (loaded.in_channels, size) != (data.in_channels, data.image_size):
        try:
            data = adapt(data, loaded.in_channels, size)
        except ValueError as e:
            raise RunError(f"{data.name} images ({data.in_channels}x{data.image_size}x{data.image_size}) cannot feed "
                           f"checkpoint {paths[0]}: {e}") from None
    data = data.to(dev)
    model = loaded.model if len(members) == 1 else MeanLogits([m.model for m in members])
    acc = evaluate(model.to(dev), data, batch_size)
    result = {"checkpoint": str(paths[0]) if len(paths) == 1 else [str(p) for p in paths],
              "arch": "+".join(m.arch for m in members), "dataset": data.name, "test_acc": acc,
              "images": int(data.test_x.shape[0]), "device": str(dev)}
    if kernel_to:
        teachers = [load_model(p) for p in kernel_to]
        for p, t in zip(kernel_to, teachers, strict=True):
            if (t.image_size or data.image_size) != data.image_size:
                raise RunError(f"teacher {p} takes {t.image_size}x{t.image_size} images, checkpoint {paths[0]} "
                               f"{data.image_size}x{data.image_size}: the kernel distance needs the same images")
        result["kernel_to"] = [str(p) for p in kernel_to]
        result["kernel_distance"] = kernel_alignment(model.eval(), [t.model.to(dev).eval() for t in teachers], data)
    return result
