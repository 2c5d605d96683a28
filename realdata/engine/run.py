"""One run: its data, teachers and folder, the initialisation stage, the epochs with their checkpoints and metrics,
resumption, and the summary (the trainer itself: :mod:`realdata.engine.trainer`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fkdapp.errors import ConfigError
from fkdapp.lock import FolderLock
from fkdapp.progress import Progress
from fkdapp.runtime import atomic_save, environment, write_json
from realdata import distributed
from realdata.checkpoints import LoadedModel, RunError, belongs_to, load_teachers, nonfinite_entries, read_checkpoint
from realdata.config import TrainConfig
from realdata.data import (
    ImageData,
    adapt,
    load_dataset,
    split_pool,
)
from realdata.data.stream import materialize
from realdata.engine.trainer import Interrupted, NonFiniteLoss, StopNow, Trainer, _StopSignal
from realdata.methods.plan import RunPlan, resolve
from realdata.models import ExternalModel, build
from realdata.runs import RunDir


def load_data(config: TrainConfig, download: bool, device: torch.device) -> tuple[ImageData, ImageData | None]:
    """The labelled data set and the transfer set (if any), on ``device``; with a transfer set both are brought to
    the larger of their channel counts and image sizes (1 channel repeated, zero padding), so that the student can
    take both in one batch."""
    data, unlabelled = split_pool(load_dataset(config.dataset, config.data_dir, download,
                                               image_size=config.image_size, skip_bad=config.skip_bad_images,
                                               stream=config.stream, workers=config.data_workers),
                                  config.train_size, config.val_size, config.part(), config.transfer_size)
    if config.transfer_data is None:
        return data.to(device), None if unlabelled is None else unlabelled.to(device)
    transfer = load_dataset(config.transfer_data, config.data_dir, download)
    channels = max(data.in_channels, transfer.in_channels)
    size = max(data.image_size, transfer.image_size)
    return adapt(data, channels, size).to(device), adapt(transfer, channels, size).to(device)


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
    plan = resolve(config)  # the method, its parameters and needs, decided once; plan.config is what the run records
    fresh = not Path(out).exists()
    try:
        with FolderLock(out, f"--out {out}"):
            return _run_locked(plan, RunDir(out), device, teachers, resume, download, progress, on_epoch_end)
    except BaseException:
        if fresh and distributed.is_main() and Path(out).is_dir() and not any(Path(out).iterdir()):
            Path(out).rmdir()  # an early error (a missing data set, a bad teacher) leaves no empty run folder
        raise


def _run_locked(plan: RunPlan, run: RunDir, device: torch.device, teachers: list[LoadedModel], resume: bool,
                download: bool, progress: Progress | None,
                on_epoch_end: Callable[[dict[str, Any]], None] | None) -> dict[str, Any]:
    """run_training's body, with the run folder locked."""
    main, config = distributed.is_main(), plan.config
    resuming = run.check_start(config, resume)
    if resuming and main:
        run.remove_orphans()
    data, transfer = load_data_once(config, download, device)
    trainer = build_trainer(plan, teachers, data, transfer, device)
    if resuming and run.last_path.is_file():
        state = read_checkpoint(run.last_path)
        if not belongs_to(state, config):
            raise RunError(f"{run.last_path} is another run's checkpoint (its config differs from {run.config_path}); "
                           "put this run's last.pt back, or start afresh with another --out")
        trainer.load_state_dict(state)
    distributed.barrier()  # every rank has read the run folder before rank 0 writes to it
    writer = tensorboard_writer(run) if main and config.tensorboard else None
    if main:
        open_run(run, config, trainer, device, resuming)
    with _StopSignal() as trainer.stop:
        try:
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
        except StopNow as e:
            if progress is not None:
                progress.close()
            kept = f"{run.last_path} holds the last saved state" if run.last_path.is_file() else "nothing was saved"
            raise Interrupted(f"stopped at once by a second signal {e.args[0]}; {kept}; continue with: realdata "
                              f"resume {run.path}", e.args[0]) from None
    return summarize(run, config)


def check_weights(trainer: Trainer, run: RunDir) -> None:
    """Before an epoch's checkpoints are written: every tensor of the student and its heads finite, else a
    NonFiniteLoss naming the tensor and the epoch (the previous last.pt is kept, whole, as the last good one)."""
    heads = trainer.distiller.heads.state_dict()
    state = {**trainer.student.state_dict(), **{f"heads.{k}": v for k, v in heads.items()}}
    bad = nonfinite_entries(state)
    if bad:
        kept = f"last good checkpoint: {run.last_path} (epoch {trainer.epoch - 1})" if trainer.epoch > 1 else \
            "no checkpoint was written"
        raise NonFiniteLoss(f"epoch {trainer.epoch} ended with NaN or infinite weights in {len(bad)} tensor(s) (e.g. "
                            f"{bad[0]}); not saved; {kept}; lower the learning rate")


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
    x = materialize(data.train_x[:2]).float()
    try:
        with torch.no_grad():
            model.eval().forward_features(x)
    except Exception as e:  # the user's model may fail in any way
        shape = "x".join(map(str, x.shape[1:]))
        raise RunError(f"model {name!r} does not run on {shape} images: {type(e).__name__}: {str(e)[:80]}") from None
    model.train()


def build_trainer(plan: RunPlan, teachers: list[LoadedModel], data: ImageData, transfer: ImageData | None,
                  device: torch.device) -> Trainer:
    """The student (seeded), its method around the frozen teachers (the models checked against the plan's needs,
    once), and the trainer."""
    config = plan.config
    plan.needs.check_teachers(config.method, teachers, data.num_classes, data.in_channels, data.name)
    torch.manual_seed(config.seed)
    try:
        student = build(config.model, num_classes=data.num_classes, in_channels=data.in_channels,
                        feature_layer=config.feature_layer)
    except ValueError as e:
        raise RunError(str(e)) from None
    check_runs_on(student, config.model, data)
    distiller = plan.distiller(student, [t.model for t in teachers])
    return Trainer(config, distiller, data, transfer, device)


def open_run(run: RunDir, config: TrainConfig, trainer: Trainer, device: torch.device, resuming: bool) -> None:
    """Rank 0: drop metrics past the checkpoint being resumed, record the config and environment."""
    if resuming:
        run.truncate_metrics(trainer.epoch, trainer.last_row)
    effective = {"amp": trainer.amp, "channels_last": trainer.memory_format == torch.channels_last}  # CUDA only
    run.start(config, {**environment(device), "world_size": trainer.world, "effective": effective,
                       "data_source": trainer.data.source},
              resumed_at=trainer.epoch if resuming else None)
    data = trainer.data
    if data.classes is not None:  # a user's class folders: the label -> name map, and what was left out
        write_json(run.path / "classes.json", {"classes": list(data.classes), "image_size": data.image_size,
                                                "channels": data.in_channels, "mean": list(data.mean),
                                                "std": list(data.std), "skipped": list(data.skipped)})


def init_stage(trainer: Trainer, run: RunDir, progress: Progress | None) -> None:
    """The method's initialisation stage (FT's paraphraser, FSP's student stages), before the first epoch: each
    init epoch logged to init.jsonl and saved in last.pt, so a stopped stage resumes from its last finished epoch."""
    n = trainer.init_epochs
    while trainer.init_done < n:
        try:
            row = trainer.init_epoch()
        except Interrupted as e:
            kept = f"{run.last_path} holds init epoch {trainer.init_done}" if trainer.init_done else \
                "no init epoch finished"
            raise Interrupted(f"{e}; {kept}; continue with: realdata resume {run.path}", e.signum) from None
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
        raise Interrupted(f"{e}; {kept}; continue with: realdata resume {run.path}", e.signum) from None
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
    """Rank 0: evaluate (every ``eval_every`` epochs and the last), log the epoch's metrics, write best.pt (on
    improvement) and last.pt, atomically.

    With a validation split, ``val_acc`` is logged, "best" is the best validation accuracy (``best_acc`` then holds
    it) and the test set is read at the last epoch only (``test_acc`` in the last row): it never chooses a checkpoint
    or a setting. Without one, the epochs before the last may read a seeded subset of the test set
    (:meth:`Trainer.test_subset`: ``test_acc_subset`` and ``test_images`` in their rows); the last reads it whole."""
    check_weights(trainer, run)
    config, last = trainer.config, trainer.epoch >= trainer.config.epochs
    if not (last or trainer.epoch % config.eval_every == 0):
        trainer.last_row = row
        run.append_metrics(row)
        atomic_save(trainer.state_dict(), run.last_path)
        return
    eval_start = time.perf_counter()
    has_val = trainer.data.val_x is not None
    subset = None if last or has_val else trainer.test_subset()
    if progress is not None:
        n = trainer.data.test_x.shape[0] if subset is None else len(subset)
        split = f"{n} test images" if last or not has_val else "the validation split"
        progress.update(f"epoch {row['epoch']}: evaluating on {split}", force=True)
    accs: dict[str, Any] = {}
    if subset is not None:
        accs.update(test_acc_subset=trainer.evaluate("test", subset), test_images=len(subset))
    elif last or not has_val:
        accs["test_acc"] = trainer.evaluate()
    if has_val:
        accs["val_acc"] = trainer.evaluate("val")
    alignment = trainer.kernel_alignment()
    if alignment:
        row["kernel_distance"] = alignment
    if progress is not None:
        progress.close()
    chosen = accs["val_acc"] if has_val else accs.get("test_acc", accs.get("test_acc_subset"))
    improved = chosen > trainer.best_acc
    if improved:
        trainer.best_acc, trainer.best_epoch = chosen, trainer.epoch
    trainer.eval_seconds = time.perf_counter() - eval_start
    row.update(**accs, best_acc=trainer.best_acc, eval_seconds=trainer.eval_seconds)
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
    read = [r for r in rows if key in r]  # epochs evaluated (every eval_every, the last always)
    best = max(read, key=lambda r: r[key]) if read else None
    out = {"out": str(run.path), "epochs": config.epochs, "selected_by": key,
           "last_acc": rows[-1].get(key) if rows else None, "best_acc": best[key] if best else None,
           "best_epoch": best["epoch"] if best else 0}
    if config.val_size is not None:
        out["last_test_acc"] = rows[-1]["test_acc"] if rows else None
    return out


