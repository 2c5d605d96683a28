"""Argument checks shared by the loss functions, where the user passes them: a TypeError or ValueError that names
the argument and what it must be (shapes, dtypes, eps and weights). Values inside tensors are not checked: a NaN in
the features propagates to the loss, as in torch's own losses."""

from __future__ import annotations

import math

import torch


def check_features(h: torch.Tensor, name: str = "features") -> None:
    """Require ``h`` of shape (..., B, D) with B >= 2."""
    if not isinstance(h, torch.Tensor):
        raise ValueError(f"{name} must be a tensor of shape (..., B, D), got {type(h).__name__}")
    if not h.dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating-point tensor (features or logits), got dtype {h.dtype}; "
                        "convert it with .float()")
    if h.ndim < 2:
        raise ValueError(f"{name} must have shape (..., B, D) with at least 2 dims, got shape {tuple(h.shape)}")
    if h.shape[-2] < 2:
        raise ValueError(f"{name} needs a batch of B >= 2 samples (shape (..., B, D)), got shape {tuple(h.shape)}")


def check_feature_pair(h_s: torch.Tensor, h_t: torch.Tensor, names: tuple[str, str]) -> None:
    """Features for a kernel loss: (B, D), or (M, B, D) for M students at once (the teacher's (B, D) shared, or its
    own (M, B, D)); anything else (a feature map, tokens) is a ValueError naming the shape and the fix."""
    for h, name in ((h_s, names[0]), (h_t, names[1])):
        if h.ndim not in (2, 3):
            raise ValueError(f"{name} must be features of shape (B, D) or (M, B, D), got shape {tuple(h.shape)}: pool "
                             "a (B, C, H, W) map first (x.mean((-2, -1))) or tap pooled features with fkd.FeatureTap")
    if h_t.ndim == 3 and (h_s.ndim != 3 or h_s.shape[0] != h_t.shape[0]):
        raise ValueError(f"{names[1]} of shape {tuple(h_t.shape)} needs {names[0]} of shape ({h_t.shape[0]}, B, D), "
                         f"got {tuple(h_s.shape)}")
    check_same_batch(h_s, h_t, names)


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


def check_number(value: object, name: str, positive: bool = False) -> float:
    """A finite real number >= 0 (> 0 with ``positive``), e.g. an eps, a weight or a temperature: ValueError (or
    TypeError for a non-number) naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or (value <= 0 if positive else value < 0):
        raise ValueError(f"{name} must be a finite number {'> 0' if positive else '>= 0'}, got {value!r}")
    return float(value)
