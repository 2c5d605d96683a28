"""Subsets and shapes of a data set: a class-balanced training subset; channels and sizes brought together."""

from __future__ import annotations

import dataclasses

import torch

from realdata.data.core import DataError, ImageData


def balanced_indices(y: torch.Tensor, num_classes: int, size: int, seed: int, what: str, source: str,
                     pool: torch.Tensor | None = None) -> torch.Tensor:
    """Sorted indices (into ``y``) of a class-balanced sample of ``size`` among the indices ``pool`` (default: all).

    Each class gives ``size // num_classes`` images (the first ``size % num_classes`` classes one more): the first
    ones of that class in a permutation of ``pool`` drawn with ``seed``. It depends only on ``seed``, ``pool`` and
    the labels. ``what`` names the setting and ``source`` the pool in the one-line error when the pool is too small.
    """
    y = y.cpu()
    pool = torch.arange(len(y)) if pool is None else pool.cpu()
    n, c = len(pool), num_classes
    if not 1 <= size <= n:
        raise DataError(f"{what} must be in 1..{n} for {source}, got {size}")
    perm = pool[torch.randperm(n, generator=torch.Generator().manual_seed(seed))]
    labels = y[perm]
    counts = torch.bincount(labels, minlength=c)
    quota = torch.full((c,), size // c, dtype=torch.long)
    quota[: size % c] += 1
    short = (counts < quota).nonzero().flatten().tolist()
    if short:
        raise DataError(f"{what} {size} needs {int(quota[short[0]])} images of class {short[0]} but {source} has "
                        f"{int(counts[short[0]])}; pick a smaller {what}")
    by_class = torch.argsort(labels, stable=True)  # positions in perm, grouped by class, in perm order
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty(n, dtype=torch.long)
    rank[by_class] = torch.arange(n) - starts[labels[by_class]]
    return perm[rank < quota[labels]].sort().values


def balanced_subset(data: ImageData, size: int, seed: int = 0) -> ImageData:
    """``data`` with a class-balanced subset of ``size`` training images (the test set is kept whole): the first
    images of each class in a permutation drawn with ``seed`` (:func:`balanced_indices`), in their original order.
    The subset depends only on ``seed`` and the data, so teachers and students of one study share it."""
    keep = balanced_indices(data.train_y, data.num_classes, size, seed, "train_size", data.name)
    keep = keep.to(data.train_y.device)
    return dataclasses.replace(data, train_x=data.train_x[keep], train_y=data.train_y[keep])


#: The seeds of the fixed draws of a study's splits (distinct from the training subset's 0): the validation split,
#: the teachers' parts and the unlabelled transfer images.
VAL_SEED, PART_SEED, TRANSFER_SEED = 1, 2, 3


def _others(n: int, *chosen: torch.Tensor | None) -> torch.Tensor:
    """The indices in 0..n-1 not in any of ``chosen``, in order."""
    keep = torch.ones(n, dtype=torch.bool)
    for c in chosen:
        if c is not None:
            keep[c] = False
    return keep.nonzero().flatten()


def part_indices(y: torch.Tensor, num_classes: int, part: int, parts: int, pool: torch.Tensor) -> torch.Tensor:
    """Sorted indices of part ``part`` (1-based) of ``parts`` disjoint class-balanced parts of ``pool``: each class's
    images, in a permutation drawn with PART_SEED, cut into ``parts`` near-equal consecutive runs."""
    y, pool = y.cpu(), pool.cpu()
    perm = pool[torch.randperm(len(pool), generator=torch.Generator().manual_seed(PART_SEED))]
    labels = y[perm]
    counts = torch.bincount(labels, minlength=num_classes)
    by_class = torch.argsort(labels, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty(len(perm), dtype=torch.long)
    rank[by_class] = torch.arange(len(perm)) - starts[labels[by_class]]
    return perm[rank * parts // counts[labels] == part - 1].sort().values


def split_pool(data: ImageData, train_size: int | None = None, val_size: int | None = None,
               train_part: tuple[int, int] | None = None,
               transfer_size: int | None = None) -> tuple[ImageData, ImageData | None]:
    """The training pool of ``data`` split into disjoint sets, each a function of the data and the sizes only (never
    of a run's seed): the training images (all; ``train_size`` class-balanced ones drawn with seed 0, the same as
    :func:`balanced_subset`; or part ``i`` of ``n`` class-balanced parts, ``train_part=(i, n)``), a validation split
    of ``val_size`` (drawn after a ``train_size`` subset, else first) and ``transfer_size`` unlabelled transfer
    images from what is left. -> (``data`` with its training and validation images, the transfer set or None)."""
    y, c, n = data.train_y, data.num_classes, len(data.train_y)
    train = None if train_size is None else balanced_indices(y, c, train_size, 0, "train_size", data.name)
    val = None
    if val_size is not None:
        source = data.name if train is None else f"{data.name} outside the training subset"
        val = balanced_indices(y, c, val_size, VAL_SEED, "val_size", source, pool=_others(n, train))
    if train is None:
        rest = _others(n, val)
        train = rest if train_part is None else part_indices(y, c, *train_part, rest)
    transfer = None
    if transfer_size is not None:
        transfer = balanced_indices(y, c, transfer_size, TRANSFER_SEED, "transfer_size",
                                    f"{data.name} outside the training and validation images",
                                    pool=_others(n, train, val)).to(y.device)
    train = train.to(y.device)
    out = dataclasses.replace(data, train_x=data.train_x[train], train_y=y[train])
    if val is not None:
        val = val.to(y.device)
        out = dataclasses.replace(out, val_x=data.train_x[val], val_y=y[val])
    unlabelled = None if transfer is None else dataclasses.replace(
        data, train_x=data.train_x[transfer], train_y=y[transfer])
    return out, unlabelled


def train_val_split(data: ImageData, train_size: int | None, val_size: int) -> ImageData:
    """``data`` with a class-balanced validation split of ``val_size`` images from the training pool, disjoint from
    the training images: with ``train_size``, the training subset is :func:`balanced_subset`'s (unchanged by the
    split) and the validation images come from the rest; without, the validation images are drawn first and the
    training set is all the others (:func:`split_pool`)."""
    return split_pool(data, train_size, val_size)[0]


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
        val_x=None if data.val_x is None else pad_to(resize_channels(data.val_x, channels), size),
        mean=tuple(data.mean) * reps,
        std=tuple(data.std) * reps,
    )
