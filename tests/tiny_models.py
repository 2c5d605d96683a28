"""Tiny models and distillers for the image-method tests: seeded resnets, a method around them, a batch of four."""

from __future__ import annotations

import torch

from realdata.data import ImageData
from realdata.methods import METHODS, Distiller
from realdata.models import build


def net(arch: str = "resnet8", seed: int = 0, in_channels: int = 3) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build(arch, num_classes=10, in_channels=in_channels)


def make(method: str, teachers: list[torch.nn.Module] | None = None, **params: float) -> Distiller:
    teachers = ([net(seed=1)] if METHODS[method].NEEDS.teacher else []) if teachers is None else teachers
    return METHODS[method](net(seed=0), teachers, **params)


def four_images() -> tuple[torch.Tensor, torch.Tensor, ImageData]:
    """A batch of 4 random (normalised) 32x32 images, their labels, and a data set to size heads from."""
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    return x, y, ImageData("cifar10", torch.zeros(4, 3, 32, 32, dtype=torch.uint8), y,
                           torch.zeros(2, 3, 32, 32, dtype=torch.uint8), y[:2], 10, (0.5,) * 3, (0.5,) * 3)
