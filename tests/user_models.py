"""Models of a user's own, for ``realdata --model package.module:factory`` in the tests."""

from collections import OrderedDict

from torch import nn


def small_cnn(num_classes: int) -> nn.Module:
    """(B, 3, H, W) -> logits; layers named body.conv, body.relu, pool, flatten, fc."""
    body = nn.Sequential(OrderedDict([("conv", nn.Conv2d(3, 8, 3, padding=1)), ("bn", nn.BatchNorm2d(8)),
                                      ("relu", nn.ReLU())]))
    return nn.Sequential(OrderedDict([("body", body), ("pool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten()),
                                      ("fc", nn.Linear(8, num_classes))]))


def grey_cnn(num_classes: int) -> nn.Module:
    """Takes 1-channel images only."""
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, num_classes))


def any_channels_cnn(num_classes: int, in_channels: int = 3) -> nn.Module:
    """Built for the data's channels (realdata passes in_channels to a factory that takes it)."""
    return nn.Sequential(nn.Conv2d(in_channels, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, num_classes))


def broken(num_classes: int) -> nn.Module:
    raise RuntimeError("this factory fails")


NOT_CALLABLE = 3


def tiny_datasets():
    """A user's Dataset factory: (train, val) of (uint8 (3, 8, 8) image, label), two classes (dark and bright)."""
    import torch

    def make(n):
        g = torch.Generator().manual_seed(n)
        labels = torch.arange(n) % 2
        images = (torch.rand(n, 3, 8, 8, generator=g) * 100 + labels[:, None, None, None] * 150).to(torch.uint8)
        return [(images[i], int(labels[i])) for i in range(n)]

    return make(16), make(8)


def not_datasets():
    return "nope"


def bad_items():
    return [(1, 2)], [(1, 2)]
