"""Feature-map objectives on (B, C, H, W) maps, as pure functions: AT and NST, and the CRD benchmark's FT, AB, FSP,
VID, with OFD's margin and ReviewKD's HCL. Where two maps of different sizes meet, the larger is average-pooled to
the smaller (as the benchmark does). Computed in float32 or float64 (half inputs are upcast).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from fkd._checks import upcast


def _maps(*maps: torch.Tensor, what: str = "feature maps") -> None:
    for m in maps:
        if m.ndim != 4:
            raise ValueError(f"{what} must be (B, C, H, W), got shape {tuple(m.shape)}")
    if len({m.shape[0] for m in maps}) > 1:
        raise ValueError(f"{what} must share the batch size, got {[tuple(m.shape) for m in maps]}")


def pool_pair(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two (B, C, H, W) maps with the larger average-pooled to the smaller's size (the benchmark's rule)."""
    ha, hb = a.shape[-2], b.shape[-2]
    if ha > hb:
        a = F.adaptive_avg_pool2d(a, b.shape[-2:])
    elif hb > ha:
        b = F.adaptive_avg_pool2d(b, a.shape[-2:])
    return a, b


def attention_map(fmap: torch.Tensor, p: float = 2.0) -> torch.Tensor:
    """(..., C, H, W) -> (..., H W): the channel mean of |f|^p, flattened, L2-normalised per sample."""
    return F.normalize(upcast(fmap).abs().pow(p).mean(-3).flatten(-2), dim=-1)


def at_loss(fmap_s: torch.Tensor, fmap_t: torch.Tensor, p: float = 2.0) -> torch.Tensor:
    """Attention transfer (Zagoruyko & Komodakis) for one stage: the mean squared difference of the attention maps.

    (..., B, C_s, H_s, W_s), (..., B, C_t, H_t, W_t) -> (...): channel counts may differ; the larger map is
    average-pooled to the smaller's size first (RepDistiller's code pools in the same way).
    """
    if fmap_s.shape[:-3] != fmap_t.shape[:-3]:
        raise ValueError(f"student and teacher maps need the same batch, got {tuple(fmap_s.shape)} and "
                         f"{tuple(fmap_t.shape)}")
    hs, ht = fmap_s.shape[-1], fmap_t.shape[-1]

    def pooled(f: torch.Tensor, size: int) -> torch.Tensor:
        if f.shape[-1] == size:
            return f
        flat = f.reshape(-1, *f.shape[-3:])
        return F.adaptive_avg_pool2d(flat, size).reshape(*f.shape[:-2], size, size)

    a_s, a_t = attention_map(pooled(fmap_s, min(hs, ht)), p), attention_map(pooled(fmap_t, min(hs, ht)), p)
    return (a_s - a_t).square().mean((-2, -1))


def nst_loss(fmap_s: torch.Tensor, fmap_t: torch.Tensor) -> torch.Tensor:
    """Neuron selectivity transfer (Huang & Wang, 2017): the squared MMD with the degree-2 polynomial kernel
    k(a, b) = <a, b>^2 between the channels of the two maps, each channel's map L2-normalised over its positions:
    mean k(t, t') + mean k(s, s') - 2 mean k(s, t).  (B, C_s, H, W), (B, C_t, H', W') -> ()."""
    _maps(fmap_s, fmap_t)
    s, t = pool_pair(upcast(fmap_s), upcast(fmap_t))
    s, t = F.normalize(s.flatten(2), dim=2), F.normalize(t.flatten(2), dim=2)

    def k(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a @ b.transpose(1, 2)).pow(2).mean()

    return k(t, t) + k(s, s) - 2 * k(s, t)


def vid_loss(pred_mean: torch.Tensor, target: torch.Tensor, log_scale: torch.Tensor, eps: float = 1e-5
             ) -> torch.Tensor:
    """Variational information distillation (Ahn et al., CVPR 2019): the Gaussian negative log-likelihood
    0.5 ((mu - t)^2 / var + log var), var = softplus(log_scale) + eps per channel, averaged over all elements.
    (B, C, ...) predicted means and targets, (C,) log scales -> ()."""
    if pred_mean.shape != target.shape or pred_mean.ndim < 2 or log_scale.shape != (pred_mean.shape[1],):
        raise ValueError(f"vid_loss needs means and targets of one (B, C, ...) shape and (C,) log scales, got "
                         f"{tuple(pred_mean.shape)}, {tuple(target.shape)}, {tuple(log_scale.shape)}")
    var = (F.softplus(upcast(log_scale)) + eps).view(-1, *([1] * (pred_mean.ndim - 2)))
    return (0.5 * ((upcast(pred_mean) - upcast(target)) ** 2 / var + torch.log(var))).mean()


def ft_factor(fmap: torch.Tensor, p1: float = 2.0) -> torch.Tensor:
    """FT's factor of a map: the channel mean of its p1-th power, flattened and L2-normalised.  (B, C, H, W) ->
    (B, H W)."""
    return F.normalize(upcast(fmap).pow(p1).mean(1).flatten(1), dim=1)


def ft_loss(factor_s: torch.Tensor, factor_t: torch.Tensor, p1: float = 2.0, p2: float = 1.0) -> torch.Tensor:
    """Factor transfer (Kim et al., NeurIPS 2018), the benchmark's form: the mean |difference|^p2 (p2 = 1: the mean
    absolute difference) of the two maps' factors (:func:`ft_factor`).  (B, C_s, H, W), (B, C_t, H', W') -> ()."""
    _maps(factor_s, factor_t, what="factors")
    s, t = pool_pair(upcast(factor_s), upcast(factor_t))
    diff = ft_factor(s, p1) - ft_factor(t, p1)
    return diff.abs().mean() if p2 == 1 else diff.pow(p2).mean()


def ab_loss(maps_s: Sequence[torch.Tensor], maps_t: Sequence[torch.Tensor], margin: float = 1.0) -> torch.Tensor:
    """Activation boundaries (Heo et al., AAAI 2019), the benchmark's form, per paired stage i of n: the sum over
    elements of (s + m)^2 where s > -m and t <= 0, plus (s - m)^2 where s <= m and t > 0 (s: the student's
    connected pre-activation map, t: the teacher's), weighted 2^(i - n + 1), divided by B and scaled by 3 / 1000.
    Sequences of n (B, C, H, W) maps of equal shapes pairwise -> (n,) the per-stage terms."""
    if len(maps_s) != len(maps_t) or not maps_s:
        raise ValueError(f"ab_loss needs as many student as teacher maps (>= 1), got {len(maps_s)} and {len(maps_t)}")
    n, out = len(maps_s), []
    for i, (s, t) in enumerate(zip(maps_s, maps_t, strict=True)):
        if s.shape != t.shape:
            raise ValueError(f"ab_loss pairs maps of one shape, got {tuple(s.shape)} and {tuple(t.shape)} at stage "
                             f"{i}; connect the student's map to the teacher's first")
        s, t = upcast(s), upcast(t)
        off = (s + margin).pow(2) * ((s > -margin) & (t <= 0)) + (s - margin).pow(2) * ((s <= margin) & (t > 0))
        out.append(2.0 ** (i - n + 1) * off.sum() / s.shape[0] * 3 / 1000)
    return torch.stack(out)


def ofd_margin(bn_weight: torch.Tensor, bn_bias: torch.Tensor) -> torch.Tensor:
    """OFD's margin per channel (Heo et al., ICCV 2019) from the BatchNorm before a teacher's ReLU: with s = |weight|
    and m = bias, the mean of the negative part of N(m, s^2), m - s phi(m / s) / Phi(-m / s), where Phi(-m / s) >
    0.001, else -3 s. (C,), (C,) -> (C,) in the inputs' dtype (computed in float64)."""
    s, m = bn_weight.detach().double().abs(), bn_bias.detach().double()
    tail = torch.special.ndtr(-m / s)
    gauss = torch.exp(-((m / s) ** 2) / 2) / (2 * torch.pi) ** 0.5
    margin = torch.where(tail > 0.001, m - s * gauss / tail.clamp_min(0.001), -3 * s)
    return margin.to(bn_weight.dtype)


def ofd_loss(s: torch.Tensor, t: torch.Tensor, margin: torch.Tensor) -> torch.Tensor:
    """OFD's partial L2 distance: with the teacher's map raised to the margin, t' = max(t, margin), the squared
    difference (s - t')^2 where s > t' or t' > 0 (a student value below a teacher's negative response costs
    nothing), summed over channels and positions and averaged over the batch. (B, C, H, W) connected student map,
    (B, C, H, W) teacher pre-activation map, (C,) margin -> scalar."""
    if s.shape != t.shape or s.dim() != 4 or margin.shape != (s.shape[1],):
        raise ValueError(f"ofd_loss pairs (B, C, H, W) maps of one shape with a (C,) margin, got {tuple(s.shape)}, "
                         f"{tuple(t.shape)} and {tuple(margin.shape)}; connect the student's map first")
    s, t = upcast(s), upcast(t)
    t = torch.maximum(t, margin.to(t.dtype).view(1, -1, 1, 1))
    return ((s - t).pow(2) * ((s > t) | (t > 0))).sum() / s.shape[0]


def fsp_matrices(maps: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """FSP matrices of consecutive maps: for (bottom, top), the mean over positions of bottom_c * top_c'
    (the larger map pooled to the smaller first).  n maps (B, C_i, H_i, W_i) -> n - 1 (B, C_{i+1}, C_i)."""
    _maps(*maps)
    out = []
    for bot, top in zip(maps[:-1], maps[1:], strict=True):
        bot, top = pool_pair(upcast(bot), upcast(top))
        out.append(top.flatten(2) @ bot.flatten(2).transpose(1, 2) / bot[0, 0].numel())
    return out


def fsp_loss(maps_s: Sequence[torch.Tensor], maps_t: Sequence[torch.Tensor]) -> torch.Tensor:
    """FSP (Yim et al., CVPR 2017): the mean squared difference of the student's and the teacher's FSP matrices,
    per consecutive pair of stages. n maps each, with the same channel counts pairwise (else a ValueError) -> (n-1,)."""
    if len(maps_s) != len(maps_t) or len(maps_s) < 2:
        raise ValueError(f"fsp_loss needs as many student as teacher maps (>= 2), got {len(maps_s)} and "
                         f"{len(maps_t)}")
    cs, ct = [m.shape[1] for m in maps_s], [m.shape[1] for m in maps_t]
    if cs != ct:
        raise ValueError(f"FSP needs the student's and the teacher's stages to have the same channels, got {cs} and "
                         f"{ct}")
    return torch.stack([(s - t).pow(2).mean() for s, t in zip(fsp_matrices(maps_s), fsp_matrices(maps_t),
                                                               strict=True)])


def hcl_loss(fs: Sequence[torch.Tensor], ft: Sequence[torch.Tensor]) -> torch.Tensor:
    """ReviewKD's hierarchical context loss (Chen et al., CVPR 2021), summed over the paired levels: per level the
    mean squared error of the full maps plus the MSE of their adaptive-average-pooled 4x4, 2x2 and 1x1 versions
    (each level of pooling smaller than the map, at weights 1/2, 1/4, 1/8), divided by the sum of the weights used.
    E.g. an 8x8 level: (MSE + MSE_4/2 + MSE_2/4 + MSE_1/8) / 1.875. Lists of (B, C, H, W) maps -> ()."""
    if len(fs) != len(ft) or not fs:
        raise ValueError(f"hcl_loss needs as many student as teacher maps (at least one), got {len(fs)} and {len(ft)}")
    total = torch.zeros((), dtype=torch.float32, device=fs[0].device)
    for s, t in zip(fs, ft, strict=True):
        if s.shape != t.shape or s.ndim != 4:
            raise ValueError(f"hcl_loss pairs maps of one shape (B, C, H, W), got {tuple(s.shape)}, {tuple(t.shape)}")
        s, t = upcast(s), upcast(t)
        loss, weight, total_weight = F.mse_loss(s, t), 1.0, 1.0
        for size in (4, 2, 1):
            if size >= s.shape[-2]:
                continue
            weight /= 2
            loss = loss + weight * F.mse_loss(F.adaptive_avg_pool2d(s, size), F.adaptive_avg_pool2d(t, size))
            total_weight += weight
        total = total + loss / total_weight
    return total
