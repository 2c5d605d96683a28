"""The ``realdata`` command line: train, distill, evaluate, report.

Every user error (unknown name, missing data, bad checkpoint, bad number, occupied --out, NaN loss) is a one-line
message, never a traceback.

``torchrun --nproc-per-node N -m realdata train|distill ...`` trains on N processes (DDP, one GPU each); rank 0 alone
prints and writes the run folder, and reports a user error (which every rank meets alike) for all of them.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from fkdapp.errors import ConfigError, OneLineGroup, user_errors
from fkdapp.jsonfile import short
from fkdapp.progress import Progress
from fkdapp.runtime import atomic_write_text, is_main
from fkdapp.settings import read_json_object
from realdata import distributed
from realdata import report as run_report
from realdata.checkpoints import RunError, belongs_to, read_checkpoint
from realdata.config import TrainConfig, code_in
from realdata.data import DATASETS
from realdata.engine import run_training
from realdata.evaluate import evaluate_checkpoint
from realdata.methods import METHODS
from realdata.methods.plan import method_class, resolve
from realdata.models import MODELS
from realdata.runs import RunDir

#: The recipe's defaults, read from the config dataclass: the one place they are written.
DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.default is not dataclasses.MISSING}


@click.group(cls=OneLineGroup, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Train teachers and distil students on images with FKD and its baselines.

    Several GPUs: torchrun --nproc-per-node N -m realdata distill ... (--batch-size is the global batch).
    """


def _default(name: str) -> str:
    return f" [default: {DEFAULTS[name]}]"


def _common_options(f: Callable) -> Callable:
    """The options every training command shares. Each defaults to None ("not given"): the run's value comes from
    --config if that file sets it, else from TrainConfig (the standard CIFAR-100 recipe), shown in --help."""
    options = [
        click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
                     help="JSON file of TrainConfig fields (a run's config.json works); options given here win."),
        click.option("--dataset", default=None, help=f"One of: {', '.join(DATASETS)}; your own images: folder:PATH "
                     "(PATH/train/<class>/*, PATH/val/<class>/*); or your own Datasets: package.module:factory "
                     "(returning (train, val)) (required, here or in --config)."),
        click.option("--image-size", type=int, default=None,
                     help="Class folders: resize every image to N x N [default: their size, where they share one]."),
        click.option("--stream/--no-stream", default=None,
                     help="Class folders: keep the images as files, decoded and augmented per batch by worker "
                          "processes (data larger than memory: ImageNet); needs --image-size" + _default("stream")),
        click.option("--data-workers", type=int, default=None,
                     help="Streamed data: the DataLoader's worker processes" + _default("data_workers")),
        click.option("--skip-bad-images/--no-skip-bad-images", default=None,
                     help="Class folders: leave unreadable images out (counted in the run's classes.json) instead of "
                          "stopping" + _default("skip_bad_images")),
        click.option("--data-dir", default=None, help="Where the data sets are (or go)" + _default("data_dir")),
        click.option("--download", is_flag=True, help="Fetch a missing data set."),
        click.option("--train-size", type=int, default=None,
                     help="Train on a class-balanced subset of this many training images, the same for every seed "
                          "[default: all]; the test set is always whole."),
        click.option("--feature-layer", default=None, metavar="NAME",
                     help="For a package.module:factory model: the layer whose output FKD and the other feature "
                          "methods read, e.g. layer4 or avgpool [default: the input of its last nn.Linear]."),
        click.option("--train-part", default=None, metavar="I/N",
                     help="Train on the I-th of N disjoint class-balanced parts of the training images (teachers "
                          "that saw different data) [default: all]."),
        click.option("--val-size", type=int, default=None,
                     help="Hold out this many class-balanced training images outside the training subset as a "
                          "validation split, the same for every seed; val_acc every epoch, best.pt chosen by it, "
                          "the test set read at the last epoch only [default: none]."),
        click.option("--epochs", type=int, default=None,
                     help="Epochs; the lr milestones scale with it (round(m * epochs / 240) for m = 150, 180, 210)"
                          + _default("epochs")),
        click.option("--batch-size", type=int, default=None,
                     help="The global batch: under torchrun split evenly over the processes (it must divide); the "
                          "relational losses (FKD, SP, PKT, RKD) see all of it" + _default("batch_size")),
        click.option("--lr", type=float, default=None,
                     help="Learning rate for the global batch [default: 0.05; 0.01 for MobileNetV2, ShuffleV1, "
                          "ShuffleV2, both for batch 64]. Not scaled automatically: with a larger --batch-size, the "
                          "linear scaling rule gives lr x batch-size / 64."),
        click.option("--milestones", default=None,
                     help="Comma-separated epochs where lr is multiplied by --lr-decay [default: scaled 150,180,210]."),
        click.option("--lr-decay", type=float, default=None, help="Factor at each milestone" + _default("lr_decay")),
        click.option("--weight-decay", type=float, default=None, help="SGD weight decay" + _default("weight_decay")),
        click.option("--momentum", type=float, default=None, help="SGD momentum" + _default("momentum")),
        click.option("--optimizer", type=click.Choice(["sgd", "dot"]), default=None,
                     help="sgd, or dot: DOT's separate momenta for CE's and the distillation gradients (momentum -/+ "
                          "--dot-delta)" + _default("optimizer")),
        click.option("--dot-delta", type=float, default=None, help="DOT's delta" + _default("dot_delta")),
        click.option("--strong-view/--no-strong-view", default=None,
                     help="Accepted and ignored: a method that trains on two views (mlkd) gets a strong view of every "
                          "image (RandAugment and Cutout on the device) without it, and no other method uses one"),
        click.option("--seed", type=int, default=None, help="Seed of the initialisation and data" + _default("seed")),
        click.option("--device", default=None,
                     help="auto, cpu, cuda or cuda:N (under torchrun: cuda:LOCAL_RANK with NCCL, or cpu with gloo)"
                          + _default("device")),
        click.option("--amp/--no-amp", default=None, help="bf16 autocast (CUDA only)" + _default("amp")),
        click.option("--channels-last/--no-channels-last", default=None,
                     help="channels_last tensors (CUDA only)" + _default("channels_last")),
        click.option("--compile/--no-compile", "compile", default=None,
                     help="torch.compile the training step" + _default("compile")),
        click.option("--eval-batch-size", type=int, default=None, help="Batch of the test pass"
                     + _default("eval_batch_size")),
        click.option("--eval-every", type=int, default=None, help="Evaluate every N epochs (the last always)"
                     + _default("eval_every")),
        click.option("--test-size", type=int, default=None,
                     help="Evaluate the epochs before the last on a seeded subset of N test images (logged as "
                          "test_acc_subset; the last epoch reads the whole test set) [default: the whole set, or as "
                          "many test images as training images where the training set is the smaller]"),
        click.option("--tensorboard/--no-tensorboard", default=None,
                     help="Also write TensorBoard event files into the run folder (pip install '.[tensorboard]')"
                          + _default("tensorboard")),
        click.option("--out", type=click.Path(path_type=Path), default=None,
                     help="Run folder [default: runs/<dataset>-<model>-<method>-s<seed>]."),
        click.option("--resume", is_flag=True, help="Continue the run in --out from its last.pt."),
        click.option("--progress/--no-progress", default=None,
                     help="Progress on stderr: a live line on a terminal, a line every 10 s in a log [default: on]."),
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


#: Command-line options that are not TrainConfig fields.
RUN_OPTIONS = ("config_file", "download", "out", "resume", "progress", "allow_code")


def base_fields(opts: dict[str, Any]) -> dict[str, Any]:
    """The fields the options start from: the recorded config of the run in --out when resuming, updated with
    --config's fields."""
    base = {}
    if opts.get("resume") and opts.get("out") and RunDir(opts["out"]).is_run():
        base = RunDir(opts["out"]).config().to_dict()
    if opts.get("config_file"):
        base.update(read_json_object(opts["config_file"]))
    return base


def build_config(fields: dict[str, Any], opts: dict[str, Any]) -> TrainConfig:
    """The run's config: :func:`base_fields`, then the options given (not None), then ``fields`` (model,
    method...); resolved at once (:func:`realdata.methods.plan.resolve`), so a method the run cannot use is one line
    before anything is read."""
    base = base_fields(opts)
    given = {k: v for k, v in opts.items() if k not in RUN_OPTIONS and v is not None}
    if "milestones" in given:
        given["milestones"] = _milestones(given["milestones"])
    merged = {**base, **given, **{k: v for k, v in fields.items() if v is not None}}
    if "dataset" not in merged:
        raise ConfigError("no data set: give --dataset (or a --config that sets it)")
    check_code_named(base, opts)
    return resolve(TrainConfig.from_dict(merged)).config


def check_code_named(base: dict[str, Any], opts: dict[str, Any]) -> None:
    """A file never chooses code to run: every package.module:factory a --config file or a resumed run's config.json
    names must also be named on this command line (--model, --student, --dataset, --teacher-arch, CKPT:ARCH or, for
    resume, --allow-code); else one line naming it."""
    ctx = click.get_current_context(silent=True)
    named: set[str] = set(opts.get("allow_code") or ())
    for value in (ctx.params.values() if ctx is not None else ()):
        for v in value if isinstance(value, (tuple, list)) else (value,):
            if isinstance(v, str):
                named.update((v, v.partition(":")[2]))  # a spec, or the ARCH of CKPT:ARCH
    unnamed = [spec for spec in code_in(base) if spec not in named]
    if unnamed:
        where = opts.get("config_file") or Path(opts.get("out") or ".") / "config.json"
        raise ConfigError(f"{where} names code to import ({short(unnamed[0], 60)}); a file never chooses code to run: "
                          f"name it on the command line too (--model/--student, --dataset, --teacher-arch; resume: "
                          f"--allow-code {unnamed[0][:60]})")


def _train(fields: dict[str, Any], opts: dict[str, Any]) -> None:
    """Build the config from --config and the options, run it, print a summary.

    A worker that torchrun restarts (``--max-restarts``, after another worker died) resumes the run by itself."""
    if int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) > 0:
        opts = {**opts, "resume": True}
    with user_errors():
        config = build_config(fields, opts)
        out = opts["out"] or Path("runs") / f"{config.dataset}-{config.model}-{config.method}-s{config.seed}"
        show = opts["progress"] is not False

        def log(row: dict[str, Any]) -> None:
            named = ", ".join(f"{k} {v:.4f}" for k, v in row["losses"].items())
            val = f"val {row['val_acc']:.2f}% " if "val_acc" in row else ""
            test = f"test {row['test_acc']:.2f}% " if "test_acc" in row else \
                f"test {row['test_acc_subset']:.2f}% ({row['test_images']} images) " if "test_acc_subset" in row else ""
            click.echo(f"epoch {row['epoch']}/{config.epochs} loss {row['loss']:.4f} ({named}) train "
                       f"{row['train_acc']:.2f}% {val}{test}"
                       + (f"(best {row['best_acc']:.2f}%) " if "best_acc" in row else "(not evaluated) ") +
                       f"{row['images_per_s']:.0f} img/s, train {row['seconds']:.1f}s + eval "
                       f"{row.get('eval_seconds', 0.0):.1f}s", err=True)

        summary = run_training(config, out, resume=opts["resume"], download=opts["download"],
                               progress=Progress() if show else None, on_epoch_end=log)
        distributed.shutdown(wait=True)  # every rank finished: leave the process group together
    if not is_main():
        return
    split = "validation" if summary["selected_by"] == "val_acc" else "test"
    test = f", test {summary['last_test_acc']:.2f}% at the last epoch" if "last_test_acc" in summary else ""
    click.echo(f"{config.model} ({config.method}) on {config.dataset}: {split} last {summary['last_acc']:.2f}%, best "
               f"{summary['best_acc']:.2f}% (epoch {summary['best_epoch']}){test}; run folder {summary['out']}")


@main.command()
@click.option("--model", default=None, help=f"Architecture: {', '.join(MODELS)}, or your own as package.module:factory "
              "(called with num_classes) (required, here or in --config).")
@_common_options
def train(model: str | None, **opts: Any) -> None:
    """Train a network with cross-entropy alone (a teacher, or a student without distillation)."""
    _train({"model": model, "method": "ce"}, opts)


def _param_default(method: str, param: str) -> str:
    return f"{method_class(method).PARAMS[param]:g}"


def _param_value(text: str) -> float | str | bool:
    """A --param value as the method's parameter reads it: a number, true/false (a switch), else the text (a named
    choice, such as fkd-add's target=max); the method refuses what it does not take, in one line."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return float(text)
    except ValueError:
        return text


def _split_teacher(value: str) -> tuple[str, str | None]:
    """``CKPT`` or ``CKPT:ARCH`` -> (path, arch or None)."""
    path, sep, arch = value.rpartition(":")
    if sep and arch in MODELS:
        return path, arch
    return value, None


@main.command()
@click.option("--teacher", "teachers", multiple=True, metavar="CKPT[:ARCH]",
              help="Teacher checkpoint; repeat for an ensemble. ':ARCH' names the architecture of a checkpoint "
                   "that does not record it (a published CRD checkpoint).")
@click.option("--teacher-arch", "teacher_archs", multiple=True,
              help="Architecture of checkpoints that do not record it: once for all teachers, or once per teacher.")
@click.option("--student", default=None, help=f"Student architecture: {', '.join(MODELS)}, or package.module:factory "
              "(required, here or in "
              "--config).")
@click.option("--method", default=None, help=f"One of: {', '.join(METHODS)}, or any of them with KD added: NAME+kd "
              "(e.g. crd+kd) [default: fkd].")
@click.option("--kd-weight", type=float, default=None,
              help="The KD term's weight: a method without one of its own gets a KD term (T 4) added, and runs as "
                   "NAME+kd.")
@click.option("--lambda", "lambda_", type=float, default=None,
              help=f"FKD: weight of the kernel distance [default: {_param_default('fkd', 'lambda')}].")
@click.option("--feature-reg", type=float, default=None,
              help=f"FKD: weight of the feature regulariser [default: {_param_default('fkd', 'feature_reg')}].")
@click.option("--temperature", type=float, default=None,
              help=f"KD: softmax temperature [default: {_param_default('kd', 'temperature')}].")
@click.option("--param", "param_list", multiple=True, metavar="NAME=VALUE",
              help="Any parameter of the method, repeatable, e.g. --param beta=8 (dkd), --param logit_stand=true; a "
                   "name the method does not have is refused with the names it has; every method's parameters and "
                   "defaults: docs/methods.md.")
@click.option("--transfer-data", default=None,
              help="Compute the distillation terms on this data set's images (labels unused); CE keeps --dataset.")
@click.option("--transfer-size", type=int, default=None,
              help="Compute the distillation terms also on this many unlabelled training images outside the "
                   "--train-size subset and the validation split; CE keeps the labelled subset.")
@_common_options
def distill(teachers: tuple[str, ...], teacher_archs: tuple[str, ...], student: str, method: str,
            kd_weight: float | None, lambda_: float | None, feature_reg: float | None, temperature: float | None,
            param_list: tuple[str, ...], transfer_data: str | None, transfer_size: int | None, **opts: Any) -> None:
    """Distil a student from one teacher or an ensemble."""
    with user_errors():
        base = base_fields(opts)
        if not teachers and not base:
            raise ConfigError("no teacher: give --teacher CKPT (repeat it for an ensemble)")
        paths, archs = zip(*map(_split_teacher, teachers), strict=True) if teachers else ((), ())
        if teacher_archs:
            if len(teacher_archs) not in (1, len(paths)):
                raise ConfigError(f"--teacher-arch given {len(teacher_archs)} times for {len(paths)} teachers; give it "
                                  f"once (for all) or once per teacher")
            given = teacher_archs * len(paths) if len(teacher_archs) == 1 else teacher_archs
            archs = tuple(a or g for a, g in zip(archs, given, strict=True))
        config_archs = tuple(base.get("teacher_archs") or ())
        if paths and len(config_archs) == len(paths):  # a --config's teachers name their archs: they still hold
            archs = tuple(a or c for a, c in zip(archs, config_archs, strict=True))
        params = {k: v for k, v in (("lambda", lambda_), ("feature_reg", feature_reg), ("temperature", temperature))
                  if v is not None}
        for item in param_list:
            name, sep, value = item.partition("=")
            if not (sep and name.strip() and value.strip()):
                raise ConfigError(f"--param wants NAME=VALUE, got {item!r}")
            params[name.strip()] = _param_value(value.strip())
        method = method or base.get("method") or "fkd"
        if kd_weight is not None:
            params["kd_weight"] = kd_weight  # beside a method without a KD term, the run's plan adds one (NAME+kd)
        if params:
            params = {**(base.get("params") or {}), **params}
    _train({"model": student, "method": method, "teachers": paths or None, "teacher_archs": archs or None,
            "params": params or None, "transfer_data": transfer_data, "transfer_size": transfer_size}, opts)


@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--device", default=None, help="Where to continue [default: as recorded].")
@click.option("--data-dir", default=None, help="Where the data sets are [default: as recorded].")
@click.option("--progress/--no-progress", default=None,
              help="Progress on stderr: a live line on a terminal, a line every 10 s in a log [default: on].")
@click.option("--allow-code", multiple=True, metavar="SPEC",
              help="A package.module:factory the run's config.json names (your model, data or teacher): a file "
                   "never chooses code to run, so name it here (repeatable).")
def resume(run_dir: Path, device: str | None, data_dir: str | None, progress: bool | None,
           allow_code: tuple[str, ...]) -> None:
    """Continue a killed or stopped run from its folder alone (its recorded config and last.pt)."""
    with user_errors():
        RunDir(run_dir).config()  # a one-line error where RUN_DIR holds no run
    opts = {"config_file": None, "dataset": None, "device": device, "data_dir": data_dir, "out": run_dir,
            "resume": True, "download": False, "progress": progress, "allow_code": allow_code}
    _train({}, opts)  # everything else comes from the run's recorded config (base_fields)


@main.command()
@click.argument("checkpoints", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--dataset", default=None, help="Data set to test on [default: the one the checkpoint records].")
@click.option("--arch", default=None, help="Architecture, for a checkpoint that does not record it, or your own "
              "model (package.module:factory) that made it: a checkpoint never chooses code to run.")
@click.option("--data-dir", default=None,
              help="Where the data sets are [default: the one the checkpoint's run recorded, else data].")
@click.option("--download", is_flag=True, help="Fetch a missing data set.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--batch-size", type=int, default=1000, show_default=True)
@click.option("--kernel-to", multiple=True, type=click.Path(path_type=Path),
              help="A teacher checkpoint (repeatable): also print the kernel distance D(rho_S, rho_T) to it on the "
                   "kernel-alignment monitor's fixed test batch.")
@click.option("--json", "json_out", type=click.Path(path_type=Path), default=None,
              help="Also write the result to this JSON file.")
def evaluate(checkpoints: tuple[Path, ...], dataset: str | None, arch: str | None, data_dir: str | None,
             download: bool, device: str, batch_size: int, kernel_to: tuple[Path, ...], json_out: Path | None) -> None:
    """Print the test accuracy of a checkpoint, or of several as an ensemble (mean logits); writes nothing unless
    --json is given."""
    with user_errors():
        run = RunDir(Path(checkpoints[0]).parent)
        ckpt = Path(checkpoints[0])
        if run.is_run() and ckpt.is_file() and not belongs_to(read_checkpoint(ckpt),
                                                                          run.config()):  # a checkpoint knows its run
            raise RunError(f"{ckpt} is another run's checkpoint than {run.config_path} says; evaluate it outside "
                           "that folder, or put the run's own checkpoint back")
        if data_dir is None:
            data_dir = run.config().data_dir if run.is_run() else DEFAULTS["data_dir"]
        result = evaluate_checkpoint(checkpoints, dataset, arch, data_dir, download, device, batch_size, kernel_to)
    what = str(checkpoints[0]) if len(checkpoints) == 1 else f"ensemble of {len(checkpoints)} (mean logits)"
    click.echo(f"{what}: {result['arch']} on {result['dataset']} test: {result['test_acc']:.2f}% top-1 "
               f"({result['images']} images)")
    for teacher, d in zip(kernel_to, result.get("kernel_distance", []), strict=True):
        click.echo(f"kernel distance D(rho_S, rho_T) to {teacher}: {d:.4f}")
    if json_out is not None:
        with user_errors():
            atomic_write_text(json_out, json.dumps(result, indent=2) + "\n")


@main.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--output", type=click.Path(path_type=Path), default=None, help="Also write the table to this file.")
def report(runs: tuple[Path, ...], output: Path | None) -> None:
    """A Markdown table of run folders (or folders holding them): last and best test accuracy over seeds."""
    with user_errors():
        table = run_report.report(runs)
    click.echo(table)
    if output is not None:
        with user_errors():
            atomic_write_text(output, table + "\n")


@main.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="Figure file (.png, .pdf, .svg).")
@click.option("--title", default=None, help="Title of the figure [default: the data set].")
def plot(runs: tuple[Path, ...], output: Path, title: str | None) -> None:
    """Test accuracy per epoch of run folders (or folders holding them): mean ± std over seeds per run group."""
    with user_errors():
        from realdata.plot import plot_curves  # matplotlib only for this command

        groups = plot_curves(runs, output, title)
    click.echo(f"wrote {output} ({len(groups)} run groups)")
