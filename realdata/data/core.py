"""The labelled image data set as tensors, and the one-line error for data problems."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from fkdapp.errors import UserError


class DataError(UserError):
    """A data set is missing, corrupt or misnamed; the message is one line meant for the user."""


def channel_stats(train_x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std (floored at 1e-3) of uint8 images ``(N, C, H, W)`` read as [0, 1]."""
    x = train_x.float().div_(255.0)
    return tuple(float(v) for v in x.mean((0, 2, 3))), tuple(max(float(v), 1e-3) for v in x.std((0, 2, 3)))


@dataclass(frozen=True)
class ImageData:
    """A labelled image data set: uint8 images ``(N, C, H, W)``, int64 labels ``(N,)``, per-channel stats."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    val_x: torch.Tensor | None = None  # a validation split taken from the training pool (None: none)
    val_y: torch.Tensor | None = None
    classes: tuple[str, ...] | None = None  # class names in label order, where the data names them (class folders)
    skipped: tuple[str, ...] = ()  # files left out as unreadable (--skip-bad-images)
    source: str | None = None  # the folder the images were read from (a system folder, the data_dir, class folders)

    def to(self, device: torch.device | str) -> ImageData:
        """The same data with every tensor moved to ``device``."""
        return dataclasses.replace(
            self,
            train_x=self.train_x.to(device),
            train_y=self.train_y.to(device),
            test_x=self.test_x.to(device),
            test_y=self.test_y.to(device),
            val_x=None if self.val_x is None else self.val_x.to(device),
            val_y=None if self.val_y is None else self.val_y.to(device),
        )

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The images and labels of the "test" or "val" split."""
        x, y = (self.val_x, self.val_y) if name == "val" else (self.test_x, self.test_y)
        if x is None or y is None:
            raise DataError(f"{self.name} has no {name} split here; give --val-size N to take one")
        return x, y

    @property
    def streamed(self) -> bool:
        """The images are files decoded per batch (:mod:`realdata.data.stream`), not a resident tensor."""
        return not isinstance(self.train_x, torch.Tensor)

    @property
    def in_channels(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.train_x.shape[-1])
