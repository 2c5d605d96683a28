"""The ``realdata`` command line: train, distill, evaluate, report.

Every user error (unknown name, missing data, bad checkpoint, bad number, occupied --out, NaN loss) is a one-line
message, never a traceback.

``torchrun --nproc-per-node N -m realdata train|distill ...`` trains on N processes (DDP, one GPU each); rank 0 alone
prints and writes the run folder, and reports a user error (which every rank meets alike) for all of them.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from fkd.runtime import DeviceError
from realdata import distributed
from realdata import runs as runs_module
from realdata.config import ConfigError, TrainConfig
from realdata.data import DATASETS, DataError
from realdata.methods import METHODS
from realdata.models import MODELS
from realdata.plot import plot_curves
from realdata.runs import RunError
from realdata.train import NonFiniteLoss, Progress, evaluate_checkpoint, run_training

USER_ERRORS = (ConfigError, RunError, DataError, NonFiniteLoss, DeviceError)


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """Turn the package's one-line errors into click errors (printed as ``Error: ...``, exit status 1)."""
    try:
        yield
    except USER_ERRORS as e:
        if not distributed.is_main():  # under torchrun rank 0 reports it
            raise click.exceptions.Exit(1) from None
        raise click.ClickException(str(e)) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Train teachers and distil students on images with FKD and its baselines.

    Several GPUs: torchrun --nproc-per-node N -m realdata distill ... (--batch-size is the global batch).
    """


def _common_options(f: Callable) -> Callable:
    """The options every training command shares (defaults: the standard CIFAR-100 recipe)."""
    options = [
        click.option("--dataset", required=True, help=f"One of: {', '.join(DATASETS)}."),
        click.option("--data-dir", default="data", show_default=True, help="Where the data sets are (or go)."),
        click.option("--download", is_flag=True, help="Fetch a missing data set."),
        click.option("--train-size", type=int, default=None,
                     help="Train on a class-balanced subset of this many training images, the same for every seed "
                          "[default: all]; the test set is always whole."),
        click.option("--epochs", type=int, default=240, show_default=True,
                     help="Epochs; the lr milestones scale with it (round(m * epochs / 240) for m = 150, 180, 210)."),
        click.option("--batch-size", type=int, default=64, show_default=True,
                     help="The global batch: under torchrun split evenly over the processes (it must divide); the "
                          "relational losses (FKD, SP, PKT, RKD) see all of it."),
        click.option("--lr", type=float, default=None,
                     help="Learning rate for the global batch [default: 0.05; 0.01 for MobileNetV2, ShuffleV1, "
                          "ShuffleV2, both for batch 64]. Not scaled automatically: with a larger --batch-size, the "
                          "linear scaling rule gives lr x batch-size / 64."),
        click.option("--milestones", default=None,
                     help="Comma-separated epochs where lr is multiplied by --lr-decay [default: scaled 150,180,210]."),
        click.option("--lr-decay", type=float, default=0.1, show_default=True),
        click.option("--weight-decay", type=float, default=5e-4, show_default=True),
        click.option("--momentum", type=float, default=0.9, show_default=True),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option("--device", default="auto", show_default=True,
                     help="auto, cpu, cuda or cuda:N (under torchrun: cuda:LOCAL_RANK with NCCL, or cpu with gloo)."),
        click.option("--amp/--no-amp", default=True, show_default=True, help="bf16 autocast (CUDA only)."),
        click.option("--channels-last/--no-channels-last", default=True, show_default=True, help="(CUDA only)."),
        click.option("--compile", "compile_", is_flag=True, help="torch.compile the training step."),
        click.option("--eval-batch-size", type=int, default=1000, show_default=True),
        click.option("--out", type=click.Path(path_type=Path), default=None,
                     help="Run folder [default: runs/<dataset>-<model>-<method>-s<seed>]."),
        click.option("--resume", is_flag=True, help="Continue the run in --out from its last.pt."),
        click.option("--progress/--no-progress", default=None,
                     help="Progress line on stderr [default: when stderr is a terminal]."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _milestones(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(int(m) for m in text.replace(" ", "").split(",") if m)
    except ValueError:
        raise ConfigError(f"--milestones must be comma-separated integers, got {text!r}") from None


def _train(model: str, method: str, teachers: tuple[str, ...], teacher_archs: tuple[str | None, ...],
           params: dict[str, float], transfer_data: str | None, opts: dict[str, Any]) -> None:
    """Build the config from the options, run it, print a summary."""
    with _user_errors():
        config = TrainConfig(
            model=model, dataset=opts["dataset"], method=method, teachers=teachers, teacher_archs=teacher_archs,
            params=params, transfer_data=transfer_data, train_size=opts["train_size"], epochs=opts["epochs"],
            batch_size=opts["batch_size"],
            lr=opts["lr"], momentum=opts["momentum"], weight_decay=opts["weight_decay"],
            milestones=_milestones(opts["milestones"]), lr_decay=opts["lr_decay"], seed=opts["seed"],
            amp=opts["amp"], channels_last=opts["channels_last"], data_dir=opts["data_dir"], device=opts["device"],
            compile=opts["compile_"], eval_batch_size=opts["eval_batch_size"],
        )
        out = opts["out"] or Path("runs") / f"{config.dataset}-{config.model}-{config.method}-s{config.seed}"
        show = sys.stderr.isatty() if opts["progress"] is None else opts["progress"]

        def log(row: dict[str, Any]) -> None:
            named = ", ".join(f"{k} {v:.4f}" for k, v in row["losses"].items())
            click.echo(f"epoch {row['epoch']}/{config.epochs} loss {row['loss']:.4f} ({named}) train "
                       f"{row['train_acc']:.2f}% test {row['test_acc']:.2f}% (best {row['best_acc']:.2f}%) "
                       f"{row['images_per_s']:.0f} img/s {row['seconds']:.1f}s", err=True)

        summary = run_training(config, out, resume=opts["resume"], download=opts["download"],
                               progress=Progress() if show else None, on_epoch_end=log)
    if not distributed.is_main():
        return
    click.echo(f"{config.model} ({config.method}) on {config.dataset}: last {summary['last_acc']:.2f}%, best "
               f"{summary['best_acc']:.2f}% (epoch {summary['best_epoch']}); run folder {summary['out']}")


@main.command()
@click.option("--model", required=True, help=f"Architecture: {', '.join(MODELS)}.")
@_common_options
def train(model: str, **opts: Any) -> None:
    """Train a network with cross-entropy alone (a teacher, or a student without distillation)."""
    _train(model, "ce", (), (), {}, None, opts)


def _default(method: str, param: str) -> str:
    return f"{METHODS[method].PARAMS[param]:g}"


def _split_teacher(value: str) -> tuple[str, str | None]:
    """``CKPT`` or ``CKPT:ARCH`` -> (path, arch or None)."""
    path, sep, arch = value.rpartition(":")
    if sep and arch in MODELS:
        return path, arch
    return value, None


@main.command()
@click.option("--teacher", "teachers", multiple=True, required=True, metavar="CKPT[:ARCH]",
              help="Teacher checkpoint; repeat for an ensemble. ':ARCH' names the architecture of a checkpoint "
                   "that does not record it (a published CRD checkpoint).")
@click.option("--teacher-arch", "teacher_archs", multiple=True,
              help="Architecture of checkpoints that do not record it: once for all teachers, or once per teacher.")
@click.option("--student", required=True, help=f"Student architecture: {', '.join(MODELS)}.")
@click.option("--method", default="fkd", show_default=True, help=f"One of: {', '.join(METHODS)}.")
@click.option("--lambda", "lambda_", type=float, default=None,
              help=f"FKD: weight of the kernel distance [default: {_default('fkd', 'lambda')}].")
@click.option("--beta", type=float, default=None,
              help=f"FKD: weight of the feature regulariser [default: {_default('fkd', 'beta')}]; SP / PKT / RKD: "
                   f"weight of their loss [defaults: {_default('sp', 'beta')} / {_default('pkt', 'beta')} / "
                   f"{_default('rkd', 'beta')}].")
@click.option("--temperature", type=float, default=None,
              help=f"KD: softmax temperature [default: {_default('kd', 'temperature')}].")
@click.option("--param", "param_list", multiple=True, metavar="NAME=VALUE",
              help="Any weight of the method (e.g. ce_weight=1, kd_weight=0.9, w_d=25); repeatable.")
@click.option("--transfer-data", default=None,
              help="Compute the distillation terms on this data set's images (labels unused); CE keeps --dataset.")
@_common_options
def distill(teachers: tuple[str, ...], teacher_archs: tuple[str, ...], student: str, method: str,
            lambda_: float | None, beta: float | None, temperature: float | None, param_list: tuple[str, ...],
            transfer_data: str | None, **opts: Any) -> None:
    """Distil a student from one teacher or an ensemble."""
    with _user_errors():
        paths, archs = zip(*map(_split_teacher, teachers), strict=True)
        if teacher_archs:
            if len(teacher_archs) not in (1, len(paths)):
                raise ConfigError(f"--teacher-arch given {len(teacher_archs)} times for {len(paths)} teachers; give it "
                                  f"once (for all) or once per teacher")
            given = teacher_archs * len(paths) if len(teacher_archs) == 1 else teacher_archs
            archs = tuple(a or g for a, g in zip(archs, given, strict=True))
        params = {k: v for k, v in (("lambda", lambda_), ("beta", beta), ("temperature", temperature)) if v is not None}
        for item in param_list:
            name, sep, value = item.partition("=")
            try:
                params[name.strip()] = float(value)
            except ValueError:
                raise ConfigError(f"--param wants NAME=VALUE with a number, got {item!r}") from None
            if not sep:
                raise ConfigError(f"--param wants NAME=VALUE, got {item!r}")
    _train(student, method, paths, archs, params, transfer_data, opts)


@main.command()
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("--dataset", default=None, help="Data set to test on [default: the one the checkpoint records].")
@click.option("--arch", default=None, help="Architecture, for a checkpoint that does not record it.")
@click.option("--data-dir", default="data", show_default=True)
@click.option("--download", is_flag=True, help="Fetch a missing data set.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--batch-size", type=int, default=1000, show_default=True)
@click.option("--json", "json_out", type=click.Path(path_type=Path), default=None,
              help="Also write the result to this JSON file.")
def evaluate(checkpoint: Path, dataset: str | None, arch: str | None, data_dir: str, download: bool, device: str,
             batch_size: int, json_out: Path | None) -> None:
    """Print the test accuracy of a checkpoint (writes nothing unless --json is given)."""
    with _user_errors():
        result = evaluate_checkpoint(checkpoint, dataset, arch, data_dir, download, device, batch_size)
    click.echo(f"{checkpoint}: {result['arch']} on {result['dataset']} test: {result['test_acc']:.2f}% top-1 "
               f"({result['images']} images)")
    if json_out is not None:
        json_out.write_text(json.dumps(result, indent=2) + "\n")


@main.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--output", type=click.Path(path_type=Path), default=None, help="Also write the table to this file.")
def report(runs: tuple[Path, ...], output: Path | None) -> None:
    """A Markdown table of run folders (or folders holding them): last and best test accuracy over seeds."""
    with _user_errors():
        table = runs_module.report(runs)
    click.echo(table)
    if output is not None:
        output.write_text(table + "\n")


@main.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="Figure file (.png, .pdf, .svg).")
@click.option("--title", default=None, help="Title of the figure [default: the data set].")
def plot(runs: tuple[Path, ...], output: Path, title: str | None) -> None:
    """Test accuracy per epoch of run folders (or folders holding them): mean ± std over seeds per run group."""
    with _user_errors():
        groups = plot_curves(runs, output, title)
    click.echo(f"wrote {output} ({len(groups)} run groups)")
