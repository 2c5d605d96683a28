"""Shape checks shared by the loss functions: one ValueError that names the shapes."""

from __future__ import annotations

import torch


def check_features(h: torch.Tensor, name: str = "features") -> None:
    """Require ``h`` of shape (..., B, D) with B >= 2."""
    if not isinstance(h, torch.Tensor):
        raise ValueError(f"{name} must be a tensor of shape (..., B, D), got {type(h).__name__}")
    if h.ndim < 2:
        raise ValueError(f"{name} must have shape (..., B, D) with at least 2 dims, got shape {tuple(h.shape)}")
    if h.shape[-2] < 2:
        raise ValueError(f"{name} needs a batch of B >= 2 samples (shape (..., B, D)), got shape {tuple(h.shape)}")


def check_same_batch(a: torch.Tensor, b: torch.Tensor, names: tuple[str, str]) -> None:
    """Require the same batch size B (dim -2) on both sides."""
    if a.shape[-2] != b.shape[-2]:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same batch size B (dim -2), "
            f"got shapes {tuple(a.shape)} and {tuple(b.shape)}"
        )


def check_kernel(k: torch.Tensor, name: str) -> None:
    """Require a square kernel (..., B, B) with B >= 2."""
    if k.ndim < 2 or k.shape[-1] != k.shape[-2] or k.shape[-1] < 2:
        raise ValueError(f"{name} must be a square kernel of shape (..., B, B) with B >= 2, got {tuple(k.shape)}")


def upcast(x: torch.Tensor) -> torch.Tensor:
    """Half-precision inputs are computed in float32 (eps and squares underflow in fp16)."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
