"""A user's own data set as code the user names on the command line: ``--dataset package.module:factory``, where
``factory()`` returns ``(train, val)``, two ``torch.utils.data.Dataset`` of ``(image, label)``: the image a uint8
``(C, H, W)`` tensor, a float one in [0, 1], or a PIL image, the label an int. The items are read once into the
device-resident uint8 path (so the set must fit the device's memory), with per-channel statistics from the training
split. Whatever the factory returns that is not that is one line saying what it got.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from realdata.data.core import DataError, ImageData, channel_stats
from realdata.models.external import SPEC, load_factory


def is_dataset_spec(name: str) -> bool:
    return bool(SPEC.match(name))


def _image(x: Any, where: str) -> torch.Tensor:
    """One item's image as uint8 (C, H, W)."""
    if not isinstance(x, torch.Tensor):
        try:
            from PIL import Image

            if isinstance(x, Image.Image):
                arr = np.asarray(x.convert("L" if x.mode in ("L", "1") else "RGB"), dtype=np.uint8)
                x = torch.from_numpy(arr[..., None] if arr.ndim == 2 else arr).permute(2, 0, 1)
        except ImportError:
            pass
    if not isinstance(x, torch.Tensor) or x.ndim != 3:
        what = f"a tensor of shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise DataError(f"{where}: the image is {what}; give a (C, H, W) tensor (uint8, or float in [0, 1]) or a PIL "
                        "image")
    if x.dtype == torch.uint8:
        return x
    if x.is_floating_point():
        return (x.clamp(0, 1) * 255).round().to(torch.uint8)
    raise DataError(f"{where}: the image has dtype {x.dtype}; give uint8, or float in [0, 1]")


def _split(ds: Any, name: str, spec: str) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        n = len(ds)
    except TypeError:
        raise DataError(f"dataset {spec!r}: its {name} split is a {type(ds).__name__}, not a Dataset with a length; "
                        "return (train, val) Datasets of (image, label)") from None
    if n == 0:
        raise DataError(f"dataset {spec!r}: its {name} split is empty")
    images, labels = [], []
    for i in range(n):
        item = ds[i]
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise DataError(f"dataset {spec!r}: {name}[{i}] is a {type(item).__name__}, not an (image, label) pair")
        image, label = item
        images.append(_image(image, f"dataset {spec!r}: {name}[{i}]"))
        if isinstance(label, torch.Tensor) and label.numel() == 1:
            label = int(label)
        if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or label < 0:
            raise DataError(f"dataset {spec!r}: {name}[{i}]'s label is {label!r}; give a class index (int >= 0)")
        labels.append(int(label))
    shapes = {tuple(x.shape) for x in images}
    if len(shapes) > 1:
        raise DataError(f"dataset {spec!r}: its {name} images have {len(shapes)} shapes ({sorted(shapes)[:2]}...); "
                        "give them one (C, H, W)")
    return torch.stack(images), torch.tensor(labels)


def load_user_dataset(spec: str) -> ImageData:
    """``spec``'s (train, val) read into uint8 tensors; classes are 0..max label."""
    try:
        factory = load_factory(spec)
    except ValueError as e:
        raise DataError(str(e).replace("model ", "dataset ", 1)) from None
    try:
        made = factory()
    except Exception as e:  # the user's code may fail in any way; one line says where
        raise DataError(f"dataset {spec!r} failed: {type(e).__name__}: {str(e)[:80]}") from None
    if not (isinstance(made, (tuple, list)) and len(made) == 2):
        raise DataError(f"dataset {spec!r} returned a {type(made).__name__}; return (train, val), two Datasets")
    (train_x, train_y), (val_x, val_y) = _split(made[0], "train", spec), _split(made[1], "val", spec)
    if train_x.shape[1:] != val_x.shape[1:]:
        raise DataError(f"dataset {spec!r}: train images are {tuple(train_x.shape[1:])}, val images "
                        f"{tuple(val_x.shape[1:])}; give both one shape")
    mean, std = channel_stats(train_x)
    num_classes = int(max(train_y.max(), val_y.max())) + 1
    return ImageData(spec, train_x, train_y, val_x, val_y, num_classes=num_classes, mean=mean, std=std)


__all__ = ["is_dataset_spec", "load_user_dataset"]
