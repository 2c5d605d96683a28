"""M two-layer smoothed-ReLU networks held as one weight tensor.

Network i has m neurons per class: F_i(X) = sum_r sum_p sReLU(<w_{i,r}, x_p>), the second layer fixed to ones.
Its features are h_{i,r}(X) = sum_p sReLU(<w_{i,r}, x_p>), so the logits are sums of m features each.
Weights: (M, k, m, d). Inputs: (N, P, d). Features: (M, N, k m). Logits: (M, N, k).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from multiview.config import Config


def smooth_relu(z: torch.Tensor, q: int, varrho: float) -> torch.Tensor:
    """0 for z <= 0; z^q / (q varrho^(q-1)) on [0, varrho]; z - (1 - 1/q) varrho above. Any shape.

    Written as relu(z - varrho) + u^q / (q varrho^(q-1)) with u = clamp(z, 0, varrho), which is the same function.
    """
    u = z.clamp(0.0, varrho)
    return (z - varrho).clamp_min(0.0) + u**q / (q * varrho ** (q - 1))


class _Features(torch.autograd.Function):
    """h = sum over patches of sReLU(x W), fused: few passes over the (M, N P, k m) activation.

    One batched GEMM per direction, network by network (bmm): each network's numbers are bit for bit those it
    gets when trained alone, whatever else shares its population. Forward saves only u^(q-1) (the derivative up
    to a constant), so the backward is one multiply and one GEMM.
    """

    @staticmethod
    def forward(ctx, x2: torch.Tensor, w: torch.Tensor, patches: int, q: int, varrho: float):  # type: ignore[override]
        z = torch.matmul(x2, w.transpose(1, 2))  # (M, N P, k m)
        u = z.clamp(0.0, varrho)
        slope = u ** (q - 1)
        z.sub_(varrho).clamp_min_(0.0).addcmul_(slope, u, value=1.0 / (q * varrho ** (q - 1)))
        ctx.save_for_backward(x2, slope)
        ctx.consts = (patches, varrho ** (q - 1))
        M, rows, km = z.shape
        return z.view(M, rows // patches, patches, km).sum(2)  # (M, N, k m)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        x2, slope = ctx.saved_tensors
        patches, scale = ctx.consts
        M, rows, km = slope.shape
        dz = slope.view(M, rows // patches, patches, km) * (grad / scale).unsqueeze(2)
        return None, dz.view(M, rows, km).transpose(1, 2) @ x2, None, None, None


def init_weights(cfg: Config, seeds: Sequence[int], device: torch.device | str = "cpu") -> torch.Tensor:
    """One network per seed, w ~ N(0, sigma_0^2), drawn on the CPU (same numbers on every device).  -> (M,k,m,d)."""
    ws = [torch.randn(cfg.k, cfg.m, cfg.d, generator=torch.Generator().manual_seed(int(s))) for s in seeds]
    return (cfg.sigma_0 * torch.stack(ws)).to(device)


def features(w: torch.Tensor, x: torch.Tensor, cfg: Config) -> torch.Tensor:
    """h (M, N, k m) for weights (M, k, m, d) and inputs (N, P, d): one batched GEMM for the whole population."""
    M, n, km = w.shape[0], x.shape[0], cfg.k * cfg.m
    return _Features.apply(x.reshape(n * cfg.P, cfg.d), w.reshape(M, km, cfg.d), cfg.P, cfg.q, cfg.varrho)


def logits(h: torch.Tensor, cfg: Config) -> torch.Tensor:
    """F (M, N, k) from features h (M, N, k m)."""
    return h.unflatten(-1, (cfg.k, cfg.m)).sum(-1)


@torch.no_grad()
def evaluate(w: torch.Tensor, x: torch.Tensor, cfg: Config, chunk: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """(features (M, N, k m), logits (M, N, k)) without gradients, in chunks of samples (bounded memory)."""
    hs = [features(w, x[i : i + chunk], cfg) for i in range(0, x.shape[0], chunk)]
    h = torch.cat(hs, dim=1)
    return h, logits(h, cfg)


def view_correlations(w: torch.Tensor, views: torch.Tensor, cfg: Config) -> torch.Tensor:
    """max_r <w_{j,r}, v_{j,l}> for every network, class and view.  (M,k,m,d), (2k,d) -> (M, k, 2)."""
    own = views.view(cfg.k, 2, cfg.d)  # (k, 2, d)
    return torch.einsum("ajrd,jld->ajrl", w, own).amax(dim=2)
