"""Evaluation: top-1 accuracy of a model or an ensemble (mean logits), the kernel-alignment monitor, and a
checkpoint evaluated from its file (``realdata evaluate``)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from fkd import fkd_loss
from fkdapp.errors import ConfigError
from fkdapp.runtime import resolve_device
from realdata.checkpoints import RunError, load_model
from realdata.data import (
    ImageData,
    adapt,
    eval_batches,
    load_dataset,
    normalize,
    resize_channels,
)
from realdata.data.stream import ImageFiles, materialize
from realdata.data.stream import eval_batches as file_batches
from realdata.methods import in_channels_of
from realdata.models import ZooModel, is_spec


@torch.no_grad()
def evaluate(model: nn.Module, data: ImageData, batch_size: int = 1000, amp: bool = False,
             memory_format: torch.memory_format = torch.contiguous_format, split: str = "test",
             subset: torch.Tensor | None = None) -> float:
    """Top-1 accuracy (%) of ``model`` on ``data``'s ``split`` ("test" or "val"), on the data's device; ``subset``:
    only those indices of the split.

    On a CPU a zoo model given ``memory_format`` contiguous (the default) is evaluated as a channels-last copy
    (1.4-1.8x faster there, ``benchmarks/bench_eval_layout.py``, which passes ``torch.preserve_format`` to time the
    model as it is); the model itself, and so training, is untouched."""
    model.eval()
    images, labels = data.split(split)
    if isinstance(images, ImageFiles):
        return _evaluate_files(model, data, images, labels, batch_size, amp, memory_format, subset)
    if subset is not None:
        images, labels = images[subset.to(images.device)], labels[subset.to(images.device)]
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


def _evaluate_files(model: nn.Module, data: ImageData, files: ImageFiles, labels: Tensor, batch_size: int, amp: bool,
                    memory_format: torch.memory_format, subset: Tensor | None) -> float:
    """:func:`evaluate` on streamed images: their evaluation views, decoded by the loader's workers."""
    device = next(model.parameters()).device
    positions = torch.arange(len(files)) if subset is None else subset.cpu()
    correct, seen = torch.zeros((), dtype=torch.long, device=device), 0
    for x in file_batches(files, batch_size, positions, pin=device.type == "cuda"):
        y = labels[positions[seen: seen + x.shape[0]].to(labels.device)].to(device)
        x = normalize(x.to(device, non_blocking=True), data.mean, data.std).contiguous(memory_format=memory_format)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            correct += (model(x).argmax(1) == y).sum()
        seen += x.shape[0]
    return 100.0 * correct.item() / len(positions)


def _zoo_only(model: nn.Module) -> bool:
    """Whether ``model`` is a zoo model or a mean of them (their layers take channels-last input)."""
    members = model.members if isinstance(model, MeanLogits) else [model]
    return all(isinstance(m, ZooModel) for m in members)


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
    x = normalize(materialize(data.test_x[:batch]), data.mean, data.std).contiguous(memory_format=memory_format)
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
    if dataset is None and is_spec(name):
        raise ConfigError(f"checkpoint {paths[0]} was trained on your own data {name[:60]}; a file never chooses code "
                          f"to run: name it with --dataset {name[:60]}")
    folder = name.startswith("folder:")  # class folders are read as files (any size fits): RGB at the model's size
    stream = folder and loaded.in_channels == 3 and loaded.image_size is not None
    data = load_dataset(name, data_dir, download, image_size=loaded.image_size if folder else None, stream=stream,
                        workers=4)
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
