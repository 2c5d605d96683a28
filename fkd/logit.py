"""Logit objectives on (..., B, C) logits: KD, DKD, DIST, WTTM, logit standardisation, and CTKD's learned temperature.

An ensemble of teachers is the mean of their logits. Every function takes ``standardize`` where the logit
standardisation paper (Sun et al., CVPR 2024) applies it: both sides' logits z-scored per sample before the
temperature (:func:`standardize_logits`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from fkd._checks import check_features, check_number, check_same_batch, upcast
from fkd.relational import Features, _as_list


def standardize_logits(z: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Logit standardisation: (z - mean(z)) / (eps + std(z)) over the classes of each sample, with the unbiased std
    (as the reference code). (..., C) -> (..., C)."""
    z = upcast(z)
    return (z - z.mean(-1, keepdim=True)) / (eps + z.std(-1, keepdim=True))


def _teacher_logits(logits_s: torch.Tensor, logits_t: Features, temperature: float) -> torch.Tensor:
    """The (mean) teacher logits (..., B, C), after checking the temperature and the shapes against the student's."""
    if isinstance(temperature, torch.Tensor):  # a learned temperature (CTKD): a scalar tensor, kept in the graph
        if temperature.numel() != 1 or not temperature.dtype.is_floating_point:
            raise ValueError(f"a tensor temperature must be one floating-point value, got shape "
                             f"{tuple(temperature.shape)} and dtype {temperature.dtype}")
    else:
        check_number(temperature, "temperature", positive=True)
    check_features(logits_s, "logits_s")
    ts = _as_list(logits_t, "logits_t")
    for t in ts:
        if t.shape[-1] != logits_s.shape[-1]:
            raise ValueError(f"student and teacher logits need the same classes, got {tuple(logits_s.shape)} "
                             f"and {tuple(t.shape)}")
        check_same_batch(logits_s, t, ("logits_s", "logits_t"))
    return torch.stack([upcast(t) for t in ts]).mean(0) if len(ts) > 1 else upcast(ts[0])


def _pair(logits_s: torch.Tensor, logits_t: Features, temperature: float, standardize: bool
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Student and (mean) teacher logits, checked, upcast and z-scored when ``standardize``."""
    lt = _teacher_logits(logits_s, logits_t, temperature)
    ls = upcast(logits_s)
    return (standardize_logits(ls), standardize_logits(lt)) if standardize else (ls, lt)


def kd_loss(logits_s: torch.Tensor, logits_t: Features, temperature: float = 4.0,
            standardize: bool = False) -> torch.Tensor:
    """Hinton KD: T^2 KL(p_t || p_s) of the softened outputs, summed over classes and averaged over the batch.

    (..., B, C), E x (..., B, C) -> (...). An ensemble of teachers is the mean of their logits; ``standardize``:
    both z-scored first (logit standardisation).
    """
    ls, lt = _pair(logits_s, logits_t, temperature, standardize)
    log_ps = F.log_softmax(ls / temperature, dim=-1)
    log_pt = F.log_softmax(lt / temperature, dim=-1)
    kl = (log_pt.exp() * (log_pt - log_ps)).sum(-1)
    return kl.mean(-1) * temperature**2


def dkd_loss(
    logits_s: torch.Tensor,
    logits_t: Features,
    labels: torch.Tensor,
    alpha: float = 1.0,
    beta: float = 8.0,
    temperature: float = 4.0,
    standardize: bool = False,
) -> torch.Tensor:
    """Decoupled KD (Zhao et al., CVPR 2022): alpha TCKD + beta NCKD, each T^2-scaled and averaged over the batch.

    (..., B, C) logits, E x (..., B, C) teacher logits (an ensemble: their mean), labels (B,) or (..., B) -> (...).
    TCKD is the KL divergence between the binary distributions (target class, all others) of teacher and student;
    NCKD the KL divergence between their distributions over the non-target classes (softmax with the target class
    masked out by subtracting 1000 from its logit, as in the authors' code). ``standardize``: both sides' logits
    z-scored first (logit standardisation).
    """
    check_number(alpha, "alpha")
    check_number(beta, "beta")
    ls, lt = _pair(logits_s, logits_t, temperature, standardize)
    lt = lt / temperature
    if not isinstance(labels, torch.Tensor) or labels.dtype not in (torch.int64, torch.int32, torch.int16,
                                                                   torch.int8, torch.uint8):
        raise TypeError(f"labels must be an integer tensor of class indices, got "
                        f"{labels.dtype if isinstance(labels, torch.Tensor) else type(labels).__name__}")
    if labels.shape not in (logits_s.shape[-2:-1], logits_s.shape[:-1]):
        raise ValueError(f"labels must have shape ({logits_s.shape[-2]},) or {tuple(logits_s.shape[:-1])}, got "
                         f"{tuple(labels.shape)}")
    ls = ls / temperature
    gt = F.one_hot(labels, ls.shape[-1]).to(torch.bool).expand_as(ls)
    p_s, p_t = ls.softmax(-1), lt.softmax(-1)

    def binary(p: torch.Tensor) -> torch.Tensor:
        target = (p * gt).sum(-1, keepdim=True)
        return torch.cat([target, (p * ~gt).sum(-1, keepdim=True)], -1)

    b_s, b_t = binary(p_s), binary(p_t)
    tckd = (torch.xlogy(b_t, b_t) - b_t * b_s.log()).sum(-1).mean(-1)  # 0 log 0 = 0, as F.kl_div (the reference)
    log_q_s = (ls - 1000.0 * gt).log_softmax(-1)
    q_t = (lt - 1000.0 * gt).softmax(-1)
    nckd = (q_t * (torch.log(q_t.clamp_min(1e-30)) - log_q_s)).sum(-1).mean(-1)
    return (alpha * tckd + beta * nckd) * temperature**2




def _pearson(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Pearson correlation along the last dim.  (..., N), (..., N) -> (...)."""
    a, b = a - a.mean(-1, keepdim=True), b - b.mean(-1, keepdim=True)
    return (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1) + eps)


def dist_loss(logits_s: torch.Tensor, logits_t: Features, beta: float = 1.0, gamma: float = 1.0,
              temperature: float = 4.0, standardize: bool = False) -> torch.Tensor:
    """DIST (Huang et al., NeurIPS 2022): beta T^2 (1 - inter) + gamma T^2 (1 - intra), where inter is the mean
    over samples of the Pearson correlation of the softened outputs p = softmax(z / T) across classes, and intra the
    mean over classes of their correlation across the batch.  (..., B, C), E x (..., B, C) -> (...)."""
    check_number(beta, "beta")
    check_number(gamma, "gamma")
    ls, lt = _pair(logits_s, logits_t, temperature, standardize)
    p_s, p_t = (ls / temperature).softmax(-1), (lt / temperature).softmax(-1)
    inter = 1 - _pearson(p_s, p_t).mean(-1)
    intra = 1 - _pearson(p_s.transpose(-1, -2), p_t.transpose(-1, -2)).mean(-1)
    return temperature**2 * (beta * inter + gamma * intra)


def wttm_loss(logits_s: torch.Tensor, logits_t: Features, gamma: float = 0.2) -> torch.Tensor:
    """Weighted transformed teacher matching (Zheng & Yang, ICLR 2024): the mean over samples of
    U KL(q || softmax(z_s)), with q = p_t^gamma / U the power-transformed teacher (softmax(gamma z_t)) and
    U = sum_c p_t,c^gamma its sample weight; the student is not softened and there is no T^2.
    (..., B, C), E x (..., B, C) -> (...)."""
    check_number(gamma, "gamma", positive=True)
    lt = _teacher_logits(logits_s, logits_t, 1.0)
    log_u = torch.logsumexp(gamma * lt.log_softmax(-1), -1)  # log sum_c p_c^gamma
    log_q = gamma * lt.log_softmax(-1) - log_u[..., None]
    kl = (log_q.exp() * (log_q - upcast(logits_s).log_softmax(-1))).sum(-1)
    return (log_u.exp() * kl).mean(-1)


class _GradientReversal(torch.autograd.Function):
    """Identity forward; the backward multiplies the gradient by ``scale`` (CTKD's lambda, <= 0: reversed)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:  # type: ignore[override]
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return ctx.scale * grad, None


def ctkd_temperature(raw: torch.Tensor, reversal: float, t_start: float = 1.0, t_range: float = 20.0
                     ) -> torch.Tensor:
    """CTKD's learned temperature (Li et al., AAAI 2023): T = t_start + t_range sigmoid(GRL(raw)), the gradient
    reaching ``raw`` multiplied by ``reversal`` (the curriculum's lambda: 0 .. -1, so the temperature is trained to
    make the distillation *harder*). raw: a scalar parameter (1 at the start: T = 15.62)."""
    return t_start + t_range * torch.sigmoid(_GradientReversal.apply(raw, float(reversal)))


def ctkd_reversal(epoch: int, epochs: int = 10, low: float = -1.0, high: float = 0.0) -> float:
    """CTKD's cosine curriculum of the reversal strength lambda: from ``high`` (0) at epoch 0 to ``low`` (-1) at
    ``epochs`` (10), then held: low + (high - low) (cos(pi min(e, N) / N) + 1) / 2."""
    e = min(max(epoch, 0), epochs)
    return low + (high - low) * (math.cos(math.pi * e / epochs) + 1) / 2


def _gram_distance(p_s: torch.Tensor, p_t: torch.Tensor, dim: int) -> torch.Tensor:
    """MLKD's class-level (``dim`` 0: the (C, C) Gram matrices P^T P) or batch-level (``dim`` 1: the (B, B) P P^T)
    term: the summed squared difference of the teacher's and the student's, over the matrices' side."""
    g_s = p_s.T @ p_s if dim == 0 else p_s @ p_s.T
    g_t = p_t.T @ p_t if dim == 0 else p_t @ p_t.T
    return (g_t - g_s).pow(2).sum() / g_s.shape[0]


def mlkd_terms(logits_s: torch.Tensor, logits_t: torch.Tensor, strong_s: torch.Tensor, strong_t: torch.Tensor,
               temperature: float = 4.0, kd_weight: float = 0.9, standardize: bool = False) -> dict[str, torch.Tensor]:
    """Multi-level logit distillation (Jin et al., CVPR 2023) as its reference code computes it, on the weak view's
    (B, C) logits of student and teacher and the strong view's: at the temperatures (``temperature``, 3, 5, 2, 6),

    - ``kd``: the weak view's instance-level KD (:func:`kd_loss`) at every temperature times m, plus the strong
      view's at ``temperature``, 3 and 5 and the weak view's again at 2 and 6 (unmasked);
    - ``cc``: the weak view's class-level Gram distance at every temperature times c;
    - ``bc``: the weak view's batch-level Gram distance at every temperature times m;

    each times ``kd_weight``. m and c are the fractions of samples and classes whose teacher confidence (the max
    softmax probability; the class's summed probability over the batch) is at most its median: the reference
    multiplies a scalar loss by a 0/1 mask and averages, so its confidence mask acts as these constant factors.
    ``standardize`` z-scores the logits of the instance-level terms only (as the logit-standardisation code's MLKD
    does; the masks and the Gram terms keep the raw logits). -> {"kd", "cc", "bc"} scalars."""
    for name, z in (("logits_s", logits_s), ("strong_s", strong_s), ("strong_t", strong_t)):
        check_same_batch(logits_t, z, ("logits_t", name))
    zs, zt, ss, st = (upcast(z) for z in (logits_s, logits_t, strong_s, strong_t))
    with torch.no_grad():
        p = F.softmax(zt, -1)
        conf, class_conf = p.max(-1).values, p.sum(0)
        m = (conf <= torch.quantile(conf, 0.5)).float().mean()
        c = (class_conf <= torch.quantile(class_conf, 0.5)).float().mean()
    temps = (temperature, 3.0, 5.0, 2.0, 6.0)
    def inst(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
        return kd_loss(a, b, t, standardize=standardize)

    kd = sum(m * inst(zs, zt, t) for t in temps) + sum(inst(ss, st, t) for t in temps[:3]) + \
        sum(inst(zs, zt, t) for t in temps[3:])
    probs = [(F.softmax(zs / t, -1), F.softmax(zt / t, -1)) for t in temps]
    cc = sum(c * _gram_distance(a, b, 0) for a, b in probs)
    bc = sum(m * _gram_distance(a, b, 1) for a, b in probs)
    return {"kd": kd_weight * kd, "cc": kd_weight * cc, "bc": kd_weight * bc}
