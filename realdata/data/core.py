"""The labelled image data set as tensors, and the one-line error for data problems."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from fkdapp.errors import UserError


class DataError(UserError):
    """A data set is missing, corrupt or misnamed; the message is one line meant for the user."""


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

    def to(self, device: torch.device | str) -> ImageData:
        """The same data with every tensor moved to ``device``."""
        return dataclasses.replace(
            self,
            train_x=self.train_x.to(device),
            train_y=self.train_y.to(device),
            test_x=self.test_x.to(device),
            test_y=self.test_y.to(device),
        )

    @property
    def in_channels(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.train_x.shape[-1])
