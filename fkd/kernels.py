"""Feature kernels and the kernel distance of Feature Kernel Distillation.

All functions take features of shape (..., B, D): B samples of D features, with any leading batch dims
(a population of M networks is (M, B, D)). Kernels have shape (..., B, B).
"""

from __future__ import annotations

import math

import torch

from fkd._checks import check_features, check_kernel, check_number, upcast

DEFAULT_EPS = 1e-6


def feature_kernel(h: torch.Tensor) -> torch.Tensor:
    """Raw feature kernel k(x_i, x_j) = <h_i, h_j>.  (..., B, D) -> (..., B, B)."""
    check_features(h, "h")
    return h @ h.transpose(-1, -2)


def unit_rows(h: torch.Tensor, eps: float = DEFAULT_EPS) -> torch.Tensor:
    """Rows scaled to unit length, h_i / sqrt(||h_i||^2 + eps^2).  (..., B, D) -> (..., B, D).

    The eps keeps the gradient bounded (by 1/eps) at tiny or zero rows; a zero row maps to zero.
    """
    if not isinstance(eps, float) or not 0.0 <= eps < math.inf:  # the hot path: one isinstance for a valid float
        check_number(eps, "eps")
    if not isinstance(h, torch.Tensor) or not h.dtype.is_floating_point:
        check_features(h, "h")
    h = upcast(h)
    return h * torch.rsqrt((h * h).sum(-1, keepdim=True) + eps * eps)


def normalized_kernel(h: torch.Tensor, eps: float = DEFAULT_EPS) -> torch.Tensor:
    """Cosine-normalised kernel rho(x_i, x_j) = k(x_i, x_j) / sqrt(k(x_i, x_i) k(x_j, x_j)).

    (..., B, D) -> (..., B, B). Off the diagonal, rho_ij = <h_i, h_j> / (n_i n_j) with n_i = sqrt(||h_i||^2 + eps^2),
    which is the exact cosine for rows with ||h|| >> eps. The diagonal is 1 by definition. A zero feature row gives
    rho = 0 against every other sample (and 1 on its diagonal), with finite gradients. Half-precision inputs are
    computed in float32.
    """
    check_features(h, "h")
    u = unit_rows(h, eps)
    rho = u @ u.transpose(-1, -2)
    eye = torch.eye(rho.shape[-1], dtype=torch.bool, device=rho.device)
    return torch.where(eye, torch.ones((), dtype=rho.dtype, device=rho.device), rho)


def _check_pair(k_s: torch.Tensor, k_t: torch.Tensor) -> None:
    check_kernel(k_s, "student kernel")
    check_kernel(k_t, "teacher kernel")
    if k_s.shape[-1] != k_t.shape[-1]:
        raise ValueError(
            f"kernels must have the same batch size B, got shapes {tuple(k_s.shape)} and {tuple(k_t.shape)}"
        )


def _off_diagonal_mean(sq: torch.Tensor) -> torch.Tensor:
    """(..., B, B) -> (...): the mean over the B(B-1) off-diagonal entries."""
    b = sq.shape[-1]
    off = ~torch.eye(b, dtype=torch.bool, device=sq.device)
    return torch.where(off, sq, torch.zeros((), dtype=sq.dtype, device=sq.device)).sum((-2, -1)) / (b * (b - 1))


def kernel_distance(k_s: torch.Tensor, k_t: torch.Tensor, include_diagonal: bool = False) -> torch.Tensor:
    """Mean squared difference of two kernels over the B(B-1) off-diagonal pairs.

    (..., B, B), (..., B, B) -> (...); leading dims broadcast (one teacher kernel against M students).
    With ``include_diagonal`` the mean runs over all B^2 entries (the raw-kernel ablation).
    """
    _check_pair(k_s, k_t)
    sq = (upcast(k_s) - upcast(k_t)).square()
    return sq.mean((-2, -1)) if include_diagonal else _off_diagonal_mean(sq)


def factored_kernel_distance(f_s: torch.Tensor, f_t: torch.Tensor, include_diagonal: bool = False) -> torch.Tensor:
    """kernel_distance(f_s f_s^T, f_t f_t^T) computed in feature space, in O(B D^2) instead of O(B^2 D).

    (..., B, D_s), (..., B, D_t) -> (...). Uses ||S - T||_F^2 = ||f_s^T f_s||^2 - 2 ||f_s^T f_t||^2 + ||f_t^T f_t||^2
    and subtracts the diagonal terms sum_i (||f_s,i||^2 - ||f_t,i||^2)^2 unless ``include_diagonal``. Pass unit rows
    (``unit_rows``) for the normalised kernel: its off-diagonal part is then the same as ``normalized_kernel``'s.
    Cheaper than the direct form when B > D_s + D_t (e.g. a whole training set against narrow features).
    """
    check_features(f_s, "f_s")
    check_features(f_t, "f_t")
    if f_s.shape[-2] != f_t.shape[-2]:
        raise ValueError(f"f_s and f_t must have the same batch size B (dim -2), got shapes {tuple(f_s.shape)} "
                         f"and {tuple(f_t.shape)}")
    f_s, f_t = upcast(f_s), upcast(f_t)
    b = f_s.shape[-2]
    ts = f_s.transpose(-1, -2)
    tt = f_t.transpose(-1, -2)
    sq = (ts @ f_s).square().sum((-2, -1)) - 2 * (ts @ f_t).square().sum((-2, -1)) + (tt @ f_t).square().sum((-2, -1))
    if include_diagonal:
        return sq / (b * b)
    diag = ((f_s * f_s).sum(-1) - (f_t * f_t).sum(-1)).square().sum(-1)
    return (sq - diag) / (b * (b - 1))


def feature_regularizer(h: torch.Tensor, power: int = 2) -> torch.Tensor:
    """Feature regularisation: mean over samples of ||h||^power (power 2: the squared norm, the method's form;
    1: the norm).  (..., B, D) -> (...). At a zero row the norm's gradient is taken as 0."""
    check_features(h, "h")
    if power not in (1, 2):
        raise ValueError(f"feature_regularizer power must be 1 or 2, got {power!r}")
    h = upcast(h)
    if power == 1:
        return torch.linalg.vector_norm(h, dim=-1).mean(-1)
    return (h * h).sum(-1).mean(-1)


def one_sided_kernel_distance(k_s: torch.Tensor, k_t: torch.Tensor) -> torch.Tensor:
    """Mean over the B(B-1) off-diagonal pairs of relu(k_t - k_s)^2: only pairs where the student is *less*
    similar than the target count, so the target can add similarity but never asks for it to be removed.

    (..., B, B), (..., B, B) -> (...); leading dims broadcast. Zero when k_s >= k_t everywhere off the diagonal.
    """
    _check_pair(k_s, k_t)
    return _off_diagonal_mean((upcast(k_t) - upcast(k_s)).clamp_min(0.0).square())


def max_kernel(kernels: torch.Tensor) -> torch.Tensor:
    """The most similar teacher per pair: the elementwise maximum of E kernels.  (E, ..., B, B) -> (..., B, B).

    A union target built from kernels alone: a pair that any teacher finds similar is similar in the target.
    """
    if not isinstance(kernels, torch.Tensor) or kernels.ndim < 3:
        raise ValueError(f"kernels must be a tensor of shape (E, ..., B, B), got "
                         f"{tuple(kernels.shape) if isinstance(kernels, torch.Tensor) else type(kernels).__name__}")
    check_kernel(kernels[0], "kernels[0]")
    return kernels.amax(0)
