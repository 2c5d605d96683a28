"""The shared base of the CIFAR zoo: one forward pass gives logits, the pooled penultimate feature and the last map."""

from abc import ABC, abstractmethod
from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor, nn

from fkd.kernels import unit_rows


class ZooModel(nn.Module, ABC):
    """A classifier split into a convolutional body, global average pooling and a linear head.

    Subclasses give `feature_map` (the body) and `classify` (the head); pooling is adaptive, so any input size
    that survives the body's downsampling works (CRD's fixed 8x8 / 4x4 pools equal it on 32x32 inputs).

    With ``unit_features`` True the head reads the pooled features scaled to unit length (a choice of some FKD
    recipes: FKD's ``norm_head``); the pooled features returned for distillation stay as they are. Checkpoints record
    it (:func:`realdata.checkpoints.model_checkpoint`), so a rebuilt model computes the same logits.
    """

    unit_features: bool = False
    #: What the model gives a distillation method (realdata.methods.base.gives): logits, pooled features and the
    #: last map ("pooled"), the maps after every stage ("stages"); models with ``preact_stages`` (and
    #: ``preact_bns``, the BatchNorm each pre-activation map comes out of) add "preact".
    GIVES: ClassVar[frozenset[str]] = frozenset({"pooled", "stages"})

    def __init__(self, arch: str, penultimate_dim: int) -> None:
        super().__init__()
        self.arch = arch
        self.penultimate_dim = penultimate_dim

    @abstractmethod
    def feature_stages(self, x: Tensor) -> list[Tensor]:
        """(B, in_channels, H, W) images -> the feature map after each stage, (B, C_i, H_i, W_i); the last is the
        map that is pooled (what AT and FitNet compare, as CRD's zoo returns them)."""

    def feature_map(self, x: Tensor) -> Tensor:
        """(B, in_channels, H, W) images -> (B, C, H', W'), the last feature map before pooling."""
        return self.feature_stages(x)[-1]

    @abstractmethod
    def classify(self, pooled: Tensor) -> Tensor:
        """(B, penultimate_dim) pooled features -> (B, num_classes) logits."""

    def forward_features(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(B, in_channels, H, W) -> logits (B, num_classes), pooled (B, penultimate_dim), fmap (B, C, H', W')."""
        fmap = self.feature_map(x)
        pooled = F.adaptive_avg_pool2d(fmap, 1).flatten(1)
        return self.head(pooled), pooled, fmap

    def forward_stages(self, x: Tensor) -> tuple[Tensor, Tensor, list[Tensor]]:
        """(B, in_channels, H, W) -> logits, pooled, the maps after every stage (the last one is ``fmap``)."""
        stages = self.feature_stages(x)
        pooled = F.adaptive_avg_pool2d(stages[-1], 1).flatten(1)
        return self.head(pooled), pooled, stages

    def forward_preact(self, x: Tensor) -> tuple[Tensor, Tensor, list[Tensor]]:
        """For models with ``preact_stages`` ("preact" in GIVES): logits, pooled and the stages' pre-activation maps
        in one pass (the last map's ReLU is the pooled ``fmap``)."""
        pre = self.preact_stages(x)
        pooled = F.adaptive_avg_pool2d(pre[-1].relu(), 1).flatten(1)
        return self.head(pooled), pooled, pre

    def head(self, pooled: Tensor) -> Tensor:
        """(B, penultimate_dim) pooled features -> (B, num_classes) logits, through unit length if
        ``unit_features``."""
        return self.classify(unit_rows(pooled).to(pooled.dtype) if self.unit_features else pooled)

    def forward(self, x: Tensor) -> Tensor:
        """(B, in_channels, H, W) -> logits (B, num_classes)."""
        return self.forward_features(x)[0]


def kaiming_init(model: nn.Module) -> None:
    """He-normal (fan-out, ReLU) conv weights and zero conv biases; BatchNorm to the identity affine map."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """(B, C, H, W) -> (B, C, H, W) with channels reordered from (groups, C/groups) to (C/groups, groups)."""
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)
