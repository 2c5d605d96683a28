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


CPU_CHUNK = 64  # samples per chunk on the CPU: one network's activations (k m x 64 P floats) stay in cache


class _Features(torch.autograd.Function):
    """h = sum over patches of sReLU(x W), fused and chunked over samples.

    Per chunk: one GEMM W (M k m, d) @ x_c^T (d, rows) for the whole population, the smoothed ReLU in a few passes
    while the chunk is in cache, the sum over patches. Only u^(q-1) (the derivative up to a constant) is kept for
    the backward, which is one multiply and one GEMM per chunk. The chunking does not depend on M, so a network's
    numbers do not depend on what else shares its population.
    """

    @staticmethod
    def forward(ctx, x2: torch.Tensor, w: torch.Tensor, patches: int, q: int, varrho: float):  # type: ignore[override]
        M, km, d = w.shape
        n = x2.shape[0] // patches
        w2 = w.reshape(M * km, d)
        chunk = CPU_CHUNK if x2.device.type == "cpu" else n
        slope = torch.empty(M * km, n * patches, dtype=x2.dtype, device=x2.device)
        h = torch.empty(M, km, n, dtype=x2.dtype, device=x2.device)
        for s in range(0, n, chunk):
            e = min(n, s + chunk)
            z = w2 @ x2[s * patches : e * patches].T  # (M k m, rows)
            u = z.clamp(0.0, varrho)
            sl = u ** (q - 1)
            slope[:, s * patches : e * patches] = sl
            z.sub_(varrho).clamp_min_(0.0).addcmul_(sl, u, value=1.0 / (q * varrho ** (q - 1)))
            h[:, :, s:e] = z.view(M, km, e - s, patches).sum(-1)
        ctx.save_for_backward(x2, slope)
        ctx.consts = (patches, varrho ** (q - 1), chunk, M, km)
        return h.transpose(1, 2)  # (M, N, k m)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        x2, slope = ctx.saved_tensors
        patches, scale, chunk, M, km = ctx.consts
        n = x2.shape[0] // patches
        g = (grad / scale).transpose(1, 2).reshape(M * km, n)  # (M k m, N)
        gw = torch.zeros(M * km, x2.shape[1], dtype=x2.dtype, device=x2.device)
        for s in range(0, n, chunk):
            e = min(n, s + chunk)
            dz = slope[:, s * patches : e * patches].view(M * km, e - s, patches) * g[:, s:e, None]
            gw.addmm_(dz.view(M * km, -1), x2[s * patches : e * patches])
        return None, gw.view(M, km, -1), None, None, None


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
    """(features (M, N, k m), logits (M, N, k)) without gradients: each network alone (its numbers never depend on
    the others of ``w``), in chunks of samples (bounded memory)."""
    h = torch.stack([torch.cat([features(w[a : a + 1], x[i : i + chunk], cfg)[0] for i in range(0, x.shape[0], chunk)])
                     for a in range(w.shape[0])])
    return h, logits(h, cfg)


def view_correlations(w: torch.Tensor, views: torch.Tensor, cfg: Config) -> torch.Tensor:
    """max_r <w_{j,r}, v_{j,l}> for every network, class and view, each network alone.  (M,k,m,d), (2k,d) -> (M,k,2)."""
    own = views.view(cfg.k, 2, cfg.d)  # (k, 2, d)
    return torch.stack([torch.einsum("jrd,jld->jrl", wa, own).amax(dim=1) for wa in w])


def union_network(w: torch.Tensor, learned: torch.Tensor) -> torch.Tensor:
    """An oracle teacher that holds every view some network of ``w`` holds: per class j, block l (m neurons) is the
    class-j neurons of the first network that learned view l (zeros where none did, and for view 2 where that
    network is the one already taken for view 1, so no neuron counts twice). Uses the simulation's knowledge of
    views: a probe, not a method. (E, k, m, d), learned (E, k, 2) bool -> (1, k, 2m, d)."""
    E, k, m, d = w.shape
    out = torch.zeros(k, 2, m, d, dtype=w.dtype, device=w.device)
    has = learned.any(0)  # (k, 2)
    first = learned.to(torch.int8).argmax(0)  # (k, 2): the first network holding each view
    same = first[:, 0] == first[:, 1]
    rows = torch.arange(k, device=w.device)
    for view in range(2):
        take = has[:, view] & ((view == 0) | ~same | ~has[:, 0])
        out[rows[take], view] = w[first[take, view], rows[take]]
    return out.reshape(1, k, 2 * m, d)
