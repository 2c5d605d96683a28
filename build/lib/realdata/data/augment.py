"""Batches on the tensors' device: seeded index batches, random crop and flip, normalisation."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch


def augment(x: torch.Tensor, generator: torch.Generator, pad: int = 4, flip: bool = True) -> torch.Tensor:
    """Random crop after zero padding by ``pad`` plus random horizontal flip, for a whole ``(B, C, H, W)`` batch.

    Each sample gets its own offsets ``(dy, dx)`` in ``[0, 2 pad]`` and, if ``flip``, a fair coin for mirroring;
    all are drawn from ``generator`` (on ``x``'s device), in that order, so the result is a function of the seed.
    Done as one gather on the device: no loop over samples.
    """
    if x.dim() != 4:
        raise ValueError(f"augment expects a (B, C, H, W) batch, got shape {tuple(x.shape)}")
    if pad < 0:
        raise ValueError(f"pad must be >= 0, got {pad}")
    b, c, h, w = x.shape
    dev = x.device
    if pad:
        padded = x.new_zeros(b, c, h + 2 * pad, w + 2 * pad)
        padded[:, :, pad : pad + h, pad : pad + w] = x
    else:
        padded = x
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator, device=dev)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator, device=dev)
    rows = dy[:, None] + torch.arange(h, device=dev)  # (B, H)
    cols = dx[:, None] + torch.arange(w, device=dev)  # (B, W)
    if flip:
        mirror = torch.randint(0, 2, (b,), generator=generator, device=dev).bool()
        cols = torch.where(mirror[:, None], cols.flip(1), cols)
    batch = torch.arange(b, device=dev)[:, None, None]
    # advanced indices around a slice put the indexed dims first: (B, H, W, C)
    out = padded[batch, :, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous()


def normalize(
    x: torch.Tensor, mean: Sequence[float], std: Sequence[float], dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """``(x / 255 - mean) / std`` per channel for uint8 images ``(..., C, H, W)``, as ``dtype``."""
    c = x.shape[-3]
    if len(mean) != c or len(std) != c:
        raise ValueError(f"mean/std have {len(mean)}/{len(std)} entries for {c} channels")
    m = torch.tensor(mean, dtype=dtype, device=x.device).view(c, 1, 1)
    s = torch.tensor(std, dtype=dtype, device=x.device).view(c, 1, 1)
    return (x.to(dtype) / 255 - m) / s


def batches(n: int, batch_size: int, generator: torch.Generator, drop_last: bool = True) -> Iterator[torch.Tensor]:
    """One epoch: a random permutation of ``range(n)`` (on ``generator``'s device) cut into index batches."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    perm = torch.randperm(n, generator=generator, device=generator.device)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        yield perm[start : start + batch_size]


def eval_batches(n: int, batch_size: int, device: torch.device | str = "cpu") -> Iterator[torch.Tensor]:
    """``range(n)`` in order, as index tensors of at most ``batch_size`` (the last one may be shorter)."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    for start in range(0, n, batch_size):
        yield torch.arange(start, min(start + batch_size, n), device=device)
