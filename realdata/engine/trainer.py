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

import math
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from fkd import DOT
from fkdapp.errors import ConfigError, Stopped, UserError
from fkdapp.progress import Progress, clock
from realdata import distributed
from realdata.checkpoints import model_checkpoint
from realdata.config import TrainConfig
from realdata.data import (
    ImageData,
    augment,
    normalize,
    rand_augment,
)
from realdata.data.stream import train_batches
from realdata.evaluate import evaluate, kernel_alignment
from realdata.methods import Distiller


class Interrupted(Stopped):
    """SIGINT / SIGTERM: the run stopped after its current step (or at once, on a second signal); the message says
    how to continue."""


class StopNow(BaseException):
    """A second SIGINT / SIGTERM: raised from the signal handler, so the run stops wherever it is (an evaluation
    included) without writing anything; the last checkpoint on disk, written atomically, is intact."""


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
        if self.received is not None:
            raise StopNow(signum)
        self.received = signum
        again = "Ctrl-C" if signum == signal.SIGINT else "the signal"
        print(f"\nstopping after this step ({again} again to stop now)", file=sys.stderr, flush=True)

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
        self.dot = config.optimizer == "dot"
        if self.dot and self.world > 1:
            raise ConfigError("optimizer 'dot' runs in one process (its two backward passes per step do not go "
                              "through DDP); drop torchrun or use the default optimizer")
        self.optimizer = DOT(params, lr=config.lr, momentum=config.momentum, delta=config.dot_delta,
                             weight_decay=config.weight_decay) if self.dot else \
            torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
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
        self.eval_seconds = 0.0  # the last evaluation's wall time (the ETA counts the evaluations to come)
        self.best_epoch = 0

    def _shard(self, t: Tensor) -> Tensor:
        """This rank's slice of a global batch (all of it in one process)."""
        n = t.shape[0] // self.world
        return t[self.rank * n : (self.rank + 1) * n]

    def _images(self, x: Tensor, data: ImageData) -> Tensor:
        if data.streamed:  # this rank's views, decoded, cropped and flipped by the loader: (B / W, V, C, S, S)
            x = normalize(x[:, 0].to(self.device, non_blocking=True), data.mean, data.std)
        else:  # the whole global batch is augmented on every rank, so that the generator stays in step across ranks
            x = normalize(self._shard(augment(x, self.generator)), data.mean, data.std)
        return x.contiguous(memory_format=self.memory_format)

    def _strong_images(self, x: Tensor) -> Tensor:
        """The batch's strong view: its own crop and flip, then RandAugment and Cutout (drawn after the weak view's,
        for the whole global batch on every rank; streamed: the loader's second view, this rank's shard),
        normalised, this rank's shard."""
        if self.data.streamed:
            strong = rand_augment(x[:, 1].to(self.device, non_blocking=True), self.generator)
        else:
            strong = self._shard(rand_augment(augment(x, self.generator), self.generator))
        strong = normalize(strong, self.data.mean, self.data.std)
        return strong.contiguous(memory_format=self.memory_format)

    def _epoch_draws(self) -> tuple[Tensor, int | None]:
        """An epoch's batch order and, on streamed data, the seed of its images' augmentation, from the run's
        generator (so a resumed run, whose generator state is in last.pt, draws them again the same)."""
        g = self.generator
        order = torch.randperm(self.data.train_x.shape[0], generator=g, device=g.device)
        seed = int(torch.randint(0, 2**62, (1,), generator=g, device=g.device)) if self.data.streamed else None
        return order, seed

    def _batches(self, order: Tensor, epoch_seed: int | None, first: int
                 ) -> Callable[[int], tuple[Tensor, Tensor, Tensor]]:
        """step -> (the step's uint8 images: the global batch on the resident path, this rank's decoded views when
        streamed; the global batch's labels; its indices into the training set), for steps ``first``.. in order."""
        data, bs = self.data, self.config.batch_size
        stream = None
        if data.streamed:
            stream = train_batches(data.train_x, order.cpu(), epoch_seed, bs, first, self.distiller.NEEDS.views,
                                   (self.rank, self.world), pin=self.device.type == "cuda")

        def get(step: int) -> tuple[Tensor, Tensor, Tensor]:
            idx = order[(step - 1) * bs : step * bs]
            return (next(stream) if stream is not None else data.train_x[idx]), data.train_y[idx], idx

        return get

    def train_step(self, x: Tensor, y: Tensor, transfer_x: Tensor | None = None,
                   indices: Tensor | None = None, step: int = 0) -> dict[str, Tensor]:
        """One SGD step of epoch ``self.epoch + 1`` on a uint8 global batch (this rank trains on its shard of it;
        ``indices``: the global batch's indices into the training set, for CRD's memory); returns this rank's named
        losses, their ``total`` and the number ``correct`` (detached, on the device, not synced)."""
        images = self._images(x, self.data)
        strong = self._strong_images(x) if self.distiller.NEEDS.views == 2 else None  # the method's need
        y = self._shard(y)
        transfer = None if transfer_x is None else self._images(transfer_x, self.transfer)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            logits, losses = self.forward(images, y, transfer, indices, self.epoch + 1, step, strong)
        total = torch.stack(list(losses.values())).sum()
        self.optimizer.zero_grad(set_to_none=True)
        if self.dot:  # DOT: the distillation terms' gradient first, kept apart, then CE's
            torch.stack([v for k, v in losses.items() if k != "ce"]).sum().backward(retain_graph=True)
            self.optimizer.step_kd()
            self.optimizer.zero_grad(set_to_none=True)
            losses["ce"].backward()
        else:
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

    def _run_steps(self, first: int, step: Callable[[int], dict[str, Tensor]], sums: dict[str, float],
                   check: Callable[[dict[str, Tensor], int], None],
                   report: Callable[[int], None] | None = None) -> int | None:
        """The one step loop of both stages: steps ``first``..steps_per_epoch of ``step`` (named detached values),
        synced to the host every ``sync_every`` steps (few host syncs on a GPU), each synced block ``check``-ed
        (block, its first step) and added into ``sums``, then ``report``-ed (the last step); returns the step after
        which a stop signal ended the loop, or None when it ran to the end."""
        pending: list[dict[str, Tensor]] = []
        for i in range(first, self.steps_per_epoch + 1):
            pending.append(step(i))
            stopping = self.stop is not None and self.stop.received is not None
            if len(pending) == self.sync_every or i == self.steps_per_epoch or stopping:
                block = self._sync(pending)
                check(block, i - len(pending) + 1)
                for name, values in block.items():
                    sums[name] = sums.get(name, 0.0) + float(values.sum())
                pending = []
                if report is not None:
                    report(i)
            if stopping:
                return i
        return None

    def train_epoch(self, progress: Progress | None = None) -> dict[str, Any]:
        """One pass over the training set; returns the epoch's lr, mean losses, train accuracy (%) and speed.

        A stop signal ends the epoch after the current step: :attr:`partial` then holds where it stopped (the
        epoch's batch order, the steps done, the running sums), which the next call (after a resume) continues
        from, to the same numbers as an uninterrupted epoch."""
        cfg = self.config
        epoch = self.epoch + 1
        self.distiller.train()
        lr = self.optimizer.param_groups[0]["lr"]
        steps, bs = self.steps_per_epoch, cfg.batch_size
        part, self.partial = self.partial, None
        if part is None or part["epoch"] != epoch:
            transfer_order = None if self.transfer is None else self._transfer_order(steps)
            order, epoch_seed = self._epoch_draws()
            done, sums, seconds_before = 0, {}, 0.0
        else:
            order, transfer_order, epoch_seed = part["order"].to(self.device), part["transfer_order"], \
                part.get("epoch_seed")
            transfer_order = None if transfer_order is None else transfer_order.to(self.device)
            done, sums, seconds_before = part["step"], dict(part["sums"]), part["seconds"]
        start = time.perf_counter()
        batch = self._batches(order, epoch_seed, done + 1)

        def one(step: int) -> dict[str, Tensor]:
            x, y, idx = batch(step)
            transfer_x = None if transfer_order is None else \
                self.transfer.train_x[transfer_order[(step - 1) * bs : step * bs]]
            return self.train_step(x, y, transfer_x, idx, step)

        def report(step: int) -> None:
            if progress is not None:
                elapsed = time.perf_counter() - start
                left = (steps - step + (cfg.epochs - epoch) * steps) * elapsed / (step - done)
                evals = sum(1 for e in range(epoch, cfg.epochs + 1) if e % cfg.eval_every == 0 or e == cfg.epochs)
                left += evals * self.eval_seconds  # the evaluations to come, at the last one's cost
                progress.update(f"epoch {epoch}/{cfg.epochs} step {step}/{steps} loss {sums['total'] / step:.4f} "
                                f"acc {100 * sums['correct'] / (step * bs):.2f}% "
                                f"{(step - done) * bs / elapsed:.0f} img/s, ETA {clock(left)}",
                                force=step == steps)

        stopped = self._run_steps(done + 1, one, sums, lambda block, first: self._check_finite(block, epoch, first),
                                  report)
        if stopped is not None:
            self.partial = {"epoch": epoch, "step": stopped, "order": order.cpu(), "sums": sums,
                            "epoch_seed": epoch_seed,
                            "transfer_order": None if transfer_order is None else transfer_order.cpu(),
                            "seconds": seconds_before + time.perf_counter() - start}
            raise Interrupted(f"stopped by signal {self.stop.received} at epoch {epoch}, step {stopped}/{steps}",
                              self.stop.received)
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

    def evaluate(self, split: str = "test", subset: Tensor | None = None) -> float:
        return evaluate(self.student, self.data, self.config.eval_batch_size, self.amp, self.memory_format, split,
                        subset)

    def test_subset(self) -> Tensor | None:
        """The seeded test images the epochs before the last are evaluated on (None: the whole test set):
        ``test_size`` of them, or by default as many as the training images where the training set is the smaller
        (so a small run does not spend most of its time evaluating)."""
        n_test, n_train = self.data.test_x.shape[0], self.data.train_x.shape[0]
        size = self.config.test_size if self.config.test_size is not None else (n_train if n_train < n_test else None)
        if size is None or size >= n_test:
            return None
        g = torch.Generator().manual_seed(self.config.seed + 7919)  # its own stream: training's RNG untouched
        return torch.randperm(n_test, generator=g)[:size].sort().values

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
                                method=self.config.method, epoch=self.epoch, run_identity=self.config.digest(),
                                **extra)

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
        if self.init_done >= self.init_epochs:
            self.distiller.end_init()

    @property
    def init_epochs(self) -> int:
        """Epochs of the method's initialisation stage (0: none)."""
        return self.distiller.init.epochs if self.distiller.init is not None else 0

    def _init_optimizer(self) -> torch.optim.Optimizer:
        if self.init_optimizer is None:
            self.init_optimizer = torch.optim.SGD(self.distiller.init_parameters(), lr=self.distiller.init.lr,
                                                  momentum=self.config.momentum,
                                                  weight_decay=self.config.weight_decay)
        return self.init_optimizer

    def init_epoch(self) -> dict[str, Any]:
        """One epoch of the method's initialisation stage (its modules trained on its init loss with their own SGD,
        no schedule, in the training set's batches); a stop signal ends it after the step (the stage then resumes
        from the last finished init epoch, to the same numbers)."""
        data, opt = self.data, self._init_optimizer()
        epoch = self.init_done + 1
        self.distiller.train()
        batch = self._batches(*self._epoch_draws(), 1)
        params = [p for g in opt.param_groups for p in g["params"]]
        sums: dict[str, float] = {}
        start = time.perf_counter()

        def one(step: int) -> dict[str, Tensor]:
            images = self._images(batch(step)[0], data)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                loss = self.distiller.init_loss(images)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            distributed.average_grads(params)  # the stage runs outside DDP: one all-reduce of its gradients
            opt.step()
            return {"init_loss": loss.detach().float()}

        def check(block: dict[str, Tensor], first: int) -> None:
            bad = (~torch.isfinite(block["init_loss"])).nonzero()
            if len(bad):
                raise NonFiniteLoss(f"the {self.distiller.NAME} initialisation loss is "
                                    f"{float(block['init_loss'][bad[0]])} at init epoch {epoch}, step "
                                    f"{first + int(bad[0])}")

        stopped = self._run_steps(1, one, sums, check)
        if stopped is not None:
            raise Interrupted(f"stopped by signal {self.stop.received} in init epoch {epoch}, step {stopped}",
                              self.stop.received)
        self.init_done = epoch
        if epoch >= self.init_epochs:
            self.distiller.end_init()
        return {"init_epoch": epoch, "init_loss": sums["init_loss"] / self.steps_per_epoch,
                "seconds": time.perf_counter() - start}


