"""Subsets and shapes of a data set: a class-balanced training subset; channels and sizes brought together."""

from __future__ import annotations

import dataclasses

import torch

from realdata.data.core import DataError, ImageData


def balanced_subset(data: ImageData, size: int, seed: int = 0) -> ImageData:
    """``data`` with a class-balanced subset of ``size`` training images (the test set is kept whole).

    Each class gives ``size // num_classes`` images (the first ``size % num_classes`` classes one more): the first
    ones of that class in a permutation drawn with ``seed``, kept in their original order. The subset depends only
    on ``seed`` and the data, so teachers and students of one study share it.
    """
    n, c = len(data.train_y), data.num_classes
    if not 1 <= size <= n:
        raise DataError(f"train_size must be in 1..{n} for {data.name}, got {size}")
    y = data.train_y.cpu()
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    labels = y[perm]
    counts = torch.bincount(labels, minlength=c)
    quota = torch.full((c,), size // c, dtype=torch.long)
    quota[: size % c] += 1
    short = (counts < quota).nonzero().flatten().tolist()
    if short:
        raise DataError(f"train_size {size} needs {int(quota[short[0]])} images of class {short[0]} but "
                        f"{data.name} has {int(counts[short[0]])}; pick a smaller train_size")
    by_class = torch.argsort(labels, stable=True)  # positions in perm, grouped by class, in perm order
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty(n, dtype=torch.long)
    rank[by_class] = torch.arange(n) - starts[labels[by_class]]
    keep = perm[rank < quota[labels]].sort().values.to(data.train_y.device)
    return dataclasses.replace(data, train_x=data.train_x[keep], train_y=data.train_y[keep])






def resize_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """``(..., C, H, W)`` with ``C`` either ``channels`` (returned as is) or 1 (repeated ``channels`` times)."""
    c = x.shape[-3]
    if c == channels:
        return x
    if c != 1:
        raise ValueError(f"cannot turn {c}-channel images into {channels} channels (only 1 -> C is supported)")
    return x.expand(*x.shape[:-3], channels, *x.shape[-2:]).contiguous()


def pad_to(x: torch.Tensor, size: int) -> torch.Tensor:
    """Zero-pad ``(..., H, W)`` images to ``size x size``, centred (an odd remainder goes bottom/right)."""
    h, w = x.shape[-2:]
    if h > size or w > size:
        raise ValueError(f"cannot pad {h}x{w} images to {size}x{size}")
    if h == size and w == size:
        return x
    top, left = (size - h) // 2, (size - w) // 2
    out = x.new_zeros(*x.shape[:-2], size, size)
    out[..., top : top + h, left : left + w] = x
    return out


def adapt(data: ImageData, channels: int, size: int) -> ImageData:
    """``data`` reshaped to feed a model for ``channels x size x size`` inputs (e.g. Fashion-MNIST -> 3x32x32).

    Channels are repeated (with the mean/std) and images zero-padded; the stats are kept from the original data.
    """
    c = data.in_channels
    reps = channels if c == 1 and channels != 1 else 1
    return dataclasses.replace(
        data,
        train_x=pad_to(resize_channels(data.train_x, channels), size),
        test_x=pad_to(resize_channels(data.test_x, channels), size),
        mean=tuple(data.mean) * reps,
        std=tuple(data.std) * reps,
    )
