"""Relational objectives: what compares samples with each other, on (..., B, D) features, as pure functions.

FKD's kernel loss (the normalised kernels of student and teacher, an ensemble's target), SP, PKT, RKD and CC. Every
objective reduces the last two dims (samples, features) and keeps any leading dims, so a population of M students
is one call. Teacher tensors are used as given: freezing the teacher is the caller's job.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from fkd._checks import check_feature_pair, check_features, check_same_batch, upcast
from fkd.kernels import DEFAULT_EPS, factored_kernel_distance, feature_kernel, kernel_distance, unit_rows

Features = torch.Tensor | Sequence[torch.Tensor]


ENSEMBLE_MODES = ("mean", "concat")


def _as_list(h: Features, name: str) -> list[torch.Tensor]:
    hs = [h] if isinstance(h, torch.Tensor) else list(h)
    if not hs:
        raise ValueError(f"{name} is an empty sequence: give at least one teacher tensor")
    for i, t in enumerate(hs):
        check_features(t, f"{name}[{i}]" if len(hs) > 1 else name)
        check_same_batch(hs[0], t, (f"{name}[0]", f"{name}[{i}]"))
    return hs


def teacher_factor(
    h_t: Features, normalize: bool = True, ensemble: str = "mean", eps: float = DEFAULT_EPS
) -> torch.Tensor:
    """Features F (..., B, D_F) whose kernel F F^T is the target kernel of one teacher or an ensemble.

    ``ensemble="mean"``: the mean of the teachers' (normalised) kernels, F = [u_1, ..., u_E] / sqrt(E) with u_e the
    unit rows (or raw features) of teacher e. ``ensemble="concat"``: the kernel of the concatenated features, each
    teacher's block first divided by its root-mean-square row norm over the batch, so every teacher weighs the same
    on average while a sample with stronger features in one teacher leans on that teacher.
    """
    hs = _as_list(h_t, "h_t")
    if ensemble not in ENSEMBLE_MODES:
        raise ValueError(f"ensemble must be one of {ENSEMBLE_MODES}, got {ensemble!r}")
    if ensemble == "concat" and len(hs) > 1:
        blocks = [upcast(h) * torch.rsqrt((upcast(h) ** 2).sum(-1).mean(-1)[..., None, None] + eps**2) for h in hs]
        cat = torch.cat(blocks, dim=-1)
        return unit_rows(cat, eps) if normalize else cat
    parts = [unit_rows(h, eps) if normalize else upcast(h) for h in hs]
    return torch.cat(parts, dim=-1) / len(parts) ** 0.5 if len(parts) > 1 else parts[0]


def teacher_kernel(
    h_t: Features, normalize: bool = True, ensemble: str = "mean", eps: float = DEFAULT_EPS
) -> torch.Tensor:
    """The target kernel of one teacher or an ensemble (see ``teacher_factor``).  E x (..., B, D_e) -> (..., B, B).

    With ``normalize`` the diagonal is 1, as for ``normalized_kernel``.
    """
    f = teacher_factor(h_t, normalize, ensemble, eps)
    k = feature_kernel(f)
    if not normalize:
        return k
    eye = torch.eye(k.shape[-1], dtype=torch.bool, device=k.device)
    return torch.where(eye, torch.ones((), dtype=k.dtype, device=k.device), k)


def fkd_loss(
    h_s: torch.Tensor,
    h_t: Features,
    normalize: bool = True,
    ensemble: str = "mean",
    eps: float = DEFAULT_EPS,
) -> torch.Tensor:
    """Feature-kernel distance between student and teacher(s).  (B, D_s) or (M, B, D_s), E x (B, D_e) or E x (M, B, D_e)
    -> () or (M,); another shape (a (B, C, H, W) map, (B, T, D) tokens) is a ValueError saying to pool it.

    ``normalize=True``: off-diagonal mean squared difference of the cosine-normalised kernels (the method).
    ``normalize=False``: the raw-kernel ablation, mean over all B^2 entries, diagonal included.
    Computed in feature space when that is cheaper (B > D_s + D_t), as B x B kernels otherwise: same value.
    """
    check_features(h_s, "h_s")
    hs = _as_list(h_t, "h_t")
    for i, t in enumerate(hs):
        check_feature_pair(h_s, t, ("h_s", "h_t" if len(hs) == 1 else f"h_t[{i}]"))
    f_t = teacher_factor(hs, normalize, ensemble, eps)
    f_s = unit_rows(h_s, eps) if normalize else upcast(h_s)
    if f_s.shape[-2] > f_s.shape[-1] + f_t.shape[-1]:
        return factored_kernel_distance(f_s, f_t, include_diagonal=not normalize)
    return kernel_distance(feature_kernel(f_s), feature_kernel(f_t), include_diagonal=not normalize)


def _pair(f_s: torch.Tensor, f_t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    check_features(f_s, "f_s")
    check_features(f_t, "f_t")
    check_same_batch(f_s, f_t, ("f_s", "f_t"))
    return upcast(f_s), upcast(f_t)


def sp_loss(f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
    """Similarity-Preserving KD (Tung & Mori): ||row-normalised G_s - row-normalised G_t||_F^2 / B^2.

    (..., B, D_s), (..., B, D_t) -> (...); G = F F^T; flatten feature maps to (B, C*H*W) first.
    """
    f_s, f_t = _pair(f_s, f_t)
    b = f_s.shape[-2]
    g_s = F.normalize(f_s @ f_s.transpose(-1, -2), dim=-1)
    g_t = F.normalize(f_t @ f_t.transpose(-1, -2), dim=-1)
    return (g_s - g_t).square().sum((-2, -1)) / (b * b)


def pkt_loss(f_s: torch.Tensor, f_t: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Probabilistic Knowledge Transfer (Passalis & Tefas), as in the CRD code.  -> (...).

    Cosine kernels mapped to [0, 1], rows normalised to probabilities, then the mean over all B^2 entries of
    p_t log((p_t + eps) / (p_s + eps)).
    """
    f_s, f_t = _pair(f_s, f_t)

    def probs(f: torch.Tensor) -> torch.Tensor:
        f = f / (f.norm(dim=-1, keepdim=True) + eps)
        sim = (f @ f.transpose(-1, -2) + 1.0) / 2.0
        return sim / sim.sum(-1, keepdim=True)

    p_s, p_t = probs(f_s), probs(f_t)
    return (p_t * torch.log((p_t + eps) / (p_s + eps))).mean((-2, -1))


def _pairwise_distance(f: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Euclidean distances (..., B, B) with a zero diagonal, as RKD's pdist."""
    sq = (f * f).sum(-1)
    d2 = (sq[..., :, None] + sq[..., None, :] - 2 * f @ f.transpose(-1, -2)).clamp_min(eps)
    eye = torch.eye(f.shape[-2], dtype=torch.bool, device=f.device)
    return torch.where(eye, torch.zeros((), dtype=f.dtype, device=f.device), d2.sqrt())


def _angles(f: torch.Tensor) -> torch.Tensor:
    """cos of the angle at anchor i between x_j and x_k: (..., B, B, B) indexed [i, j, k]."""
    diff = F.normalize(f[..., None, :, :] - f[..., :, None, :], p=2, dim=-1)
    return diff @ diff.transpose(-1, -2)


def rkd_loss(f_s: torch.Tensor, f_t: torch.Tensor, w_d: float = 25.0, w_a: float = 50.0) -> torch.Tensor:
    """Relational KD (Park et al.): w_d * Huber(distances / their mean) + w_a * Huber(angles).  -> (...).

    Distances are divided by their mean over the B(B-1) off-diagonal pairs; Huber is smooth L1 with beta 1,
    averaged over all entries, as in the authors' code.
    """
    f_s, f_t = _pair(f_s, f_t)
    b = f_s.shape[-2]

    def scaled(f: torch.Tensor) -> torch.Tensor:
        d = _pairwise_distance(f)
        return d / (d.sum((-2, -1), keepdim=True) / (b * (b - 1)))

    def huber(a: torch.Tensor, c: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
        return F.smooth_l1_loss(a, c, reduction="none").mean(dims)

    zero = f_s.new_zeros(f_s.shape[:-2])
    loss_d = huber(scaled(f_s), scaled(f_t), (-2, -1)) if w_d else zero
    loss_a = huber(_angles(f_s), _angles(f_t), (-3, -2, -1)) if w_a else zero  # (..., B, B, B): skipped when unused
    return w_d * loss_d + w_a * loss_a


def cc_loss(emb_s: torch.Tensor, emb_t: torch.Tensor) -> torch.Tensor:
    """Correlation congruence (Peng et al., ICCV 2019), the benchmark's form: with d = |e_s - e_t| per sample, the
    mean over consecutive samples i of <d_i, d_{i+1}>.  (B, D), (B, D) -> (); B >= 2."""
    if emb_s.ndim != 2 or emb_s.shape != emb_t.shape or emb_s.shape[0] < 2:
        raise ValueError(f"cc_loss needs two (B, D) embeddings of one shape with B >= 2, got {tuple(emb_s.shape)} "
                         f"and {tuple(emb_t.shape)}")
    d = (upcast(emb_s) - upcast(emb_t)).abs()
    return (d[:-1] * d[1:]).sum(1).mean()
