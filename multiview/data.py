"""The multi-view data distribution (Allen-Zhu & Li), generated as tensors, deterministically from a seed.

Shapes: inputs (N, P, d) (P patches in R^d), labels (N,), single-view flag (N,), view shown (N,) with values
0 or 1 for single-view samples and -1 for multi-view ones. Feature f = 2 j + l is view l of class j.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from fkdapp.errors import ConfigError
from fkdapp.runtime import available_memory
from multiview.config import Config

CHUNK = 4096  # samples generated at once: memory stays bounded for large N
#: the seed stream of the transfer set: derive_seed(seed, TRANSFER_STREAM); training and test data are stream 0
TRANSFER_STREAM = 4


def derive_seed(seed: int, *stream: int) -> int:
    """An independent 63-bit seed for a named stream of the experiment seed (data, teacher e, student, ...)."""
    return int(np.random.SeedSequence([seed, *stream]).generate_state(2, dtype=np.uint64)[0] >> np.uint64(1))


@dataclass(frozen=True)
class Samples:
    """A set of samples: x (N, P, d), y (N,), single (N,) bool, view (N,) long (-1 when both views show)."""

    x: torch.Tensor
    y: torch.Tensor
    single: torch.Tensor
    view: torch.Tensor

    def __len__(self) -> int:
        return self.y.shape[0]

    def to(self, device: torch.device | str) -> Samples:
        return Samples(*(t.to(device) for t in (self.x, self.y, self.single, self.view)))

    @staticmethod
    def cat(parts: Sequence[Samples]) -> Samples:
        """The samples of ``parts``, in order."""
        return Samples(*(torch.cat(t) for t in zip(*((p.x, p.y, p.single, p.view) for p in parts), strict=True)))


@dataclass(frozen=True)
class MultiViewData:
    """Features V (2k, d), orthonormal rows; a training set, single- and multi-view test sets, and the transfer set
    (unlabelled for the students: their distillation term only; None when the config asks for none)."""

    features: torch.Tensor
    train: Samples
    test_multi: Samples
    test_single: Samples
    transfer: Samples | None = None

    @cached_property
    def distill_x(self) -> torch.Tensor:
        """The inputs the distillation terms see: the training set, then the transfer set.  (N + N_tr, P, d)."""
        return self.train.x if self.transfer is None else torch.cat([self.train.x, self.transfer.x])

    @cached_property
    def distill_y(self) -> torch.Tensor:
        """Labels of :attr:`distill_x` as the students see them: the training labels, then -1 (unlabelled)."""
        if self.transfer is None:
            return self.train.y
        return torch.cat([self.train.y, torch.full_like(self.transfer.y, -1)])


def make_features(cfg: Config, generator: torch.Generator) -> torch.Tensor:
    """2k orthonormal feature vectors in a random basis of R^d.  -> (2k, d)."""
    q, r = torch.linalg.qr(torch.randn(cfg.d, cfg.n_features, generator=generator, dtype=torch.float64))
    return (q * torch.sign(torch.diagonal(r))).T.contiguous().float()


def _uniform(lo_hi: tuple[float, float], shape: tuple[int, ...], g: torch.Generator) -> torch.Tensor:
    lo, hi = lo_hi
    return lo + (hi - lo) * torch.rand(shape, generator=g)


def _coefficients(
    cfg: Config, y: torch.Tensor, single: torch.Tensor, view: torch.Tensor, g: torch.Generator
) -> torch.Tensor:
    """Feature coefficients per patch, (n, P, 2k): views of the label class and other-class features placed."""
    n, k, P, C = y.shape[0], cfg.k, cfg.P, cfg.C_p
    rows = torch.arange(n)
    coef = torch.zeros(n, P, 2 * k)
    slots = torch.argsort(torch.rand(n, P, generator=g), dim=1)  # slot s of sample i is patch slots[i, s]
    # the two views of the label class: view l on slots [l C_p, (l+1) C_p), total coefficient split evenly
    total = _uniform(cfg.view_coef, (n, 2), g)
    present = torch.stack([view != 1, view != 0], dim=1) | ~single[:, None]  # (n, 2): which views show fully
    total = torch.where(present, total, torch.full_like(total, cfg.rho))
    for l in range(2):
        patches = slots[:, l * C : (l + 1) * C]  # (n, C)
        coef[rows[:, None], patches, (2 * y + l)[:, None]] = (total[:, l] / C)[:, None]
    # other-class features: each present with probability s/k, one patch each, on the free slots in random order
    feat_class = torch.arange(2 * k) // 2
    own = feat_class[None, :] == y[:, None]
    shows = (torch.rand(n, 2 * k, generator=g) < cfg.s / k) & ~own
    keys = torch.where(shows, torch.rand(n, 2 * k, generator=g), torch.full((n, 2 * k), 2.0))
    rank = torch.argsort(torch.argsort(keys, dim=1), dim=1)  # 0.. for present features, in random order
    placed = shows & (rank < P - 2 * C)
    slot = (2 * C + rank).clamp(max=P - 1)
    patch = slots.gather(1, slot)  # (n, 2k)
    value = torch.where(
        single[:, None], _uniform(cfg.other_coef_single, (n, 2 * k), g), _uniform(cfg.other_coef_multi, (n, 2 * k), g)
    )
    feats = torch.arange(2 * k).expand(n, -1)
    coef[rows[:, None].expand(-1, 2 * k)[placed], patch[placed], feats[placed]] = value[placed]
    if cfg.gamma > 0:  # feature noise: alpha v' on every patch, alpha ~ U[0, gamma]
        coef += cfg.gamma * torch.rand(n, P, 2 * k, generator=g)
    return coef


def _draw(cfg: Config, features: torch.Tensor, n: int, mu: float, g: torch.Generator) -> Samples:
    y = torch.randint(cfg.k, (n,), generator=g)
    single = torch.rand(n, generator=g) < mu
    view = torch.where(single, torch.randint(2, (n,), generator=g), torch.full((n,), -1))
    x = _coefficients(cfg, y, single, view, g) @ features
    noise = cfg.sigma_p * torch.randn(n, cfg.P, cfg.d, generator=g)
    if cfg.noise_off_features:
        noise -= (noise @ features.T) @ features
    return Samples(x + noise, y, single, view)


def draw_samples(cfg: Config, features: torch.Tensor, n: int, mu: float, g: torch.Generator) -> Samples:
    """n samples, a fraction mu of them single-view, generated in chunks of CHUNK on the CPU."""
    return Samples.cat([_draw(cfg, features, min(CHUNK, n - i), mu, g) for i in range(0, n, CHUNK)])


def memory_estimate(cfg: Config) -> int:
    """Bytes a seed needs at least (float32): its samples (N, P, d), one network's per-patch activations kept for
    the backward (k m, N P) and a distillation kernel over the training and transfer sets (N', N')."""
    distill = cfg.n_train + cfg.transfer_single + cfg.transfer_multi
    samples = distill + 2 * cfg.n_test
    kernel = (cfg.kernel_batch or distill) ** 2
    return 4 * (samples * cfg.P * cfg.d + 2 * cfg.k * cfg.m * distill * cfg.P + 4 * kernel)


def check_memory(cfg: Config) -> None:
    """A one-line ConfigError, before anything runs, where a seed of ``cfg`` cannot fit in this machine's memory."""
    need, have = memory_estimate(cfg), available_memory()
    if have is not None and need > have:
        raise ConfigError(f"this config needs at least {need / 2**30:.1f} GiB per seed (n_train {cfg.n_train}, n_test "
                          f"{cfg.n_test}, P {cfg.P}, d {cfg.d}) and this machine has {have / 2**30:.1f} GiB free; "
                          "use smaller sizes")


def make_data(cfg: Config, seed: int, device: torch.device | str = "cpu") -> MultiViewData:
    """Features, a training set (fraction cfg.mu single-view) and two test sets, all on ``device``.

    Drawn on the CPU from ``seed`` so that every device gets the same numbers.
    """
    g = torch.Generator().manual_seed(derive_seed(seed, 0))
    features = make_features(cfg, g)
    train = draw_samples(cfg, features, cfg.n_train, cfg.mu, g)
    test_multi = draw_samples(cfg, features, cfg.n_test, 0.0, g)
    test_single = draw_samples(cfg, features, cfg.n_test, 1.0, g)
    transfer = transfer_set(cfg, features, seed)
    return MultiViewData(features.to(device), train.to(device), test_multi.to(device), test_single.to(device),
                         transfer.to(device) if transfer is not None else None)


def transfer_set(cfg: Config, features: torch.Tensor, seed: int) -> Samples | None:
    """``cfg.transfer_single`` single-view samples, then ``cfg.transfer_multi`` multi-view ones, from a generator of
    their own (stream :data:`TRANSFER_STREAM` of ``seed``): the training and test sets are the same with or without
    them. None when both counts are 0."""
    if cfg.transfer_single + cfg.transfer_multi == 0:
        return None
    g = torch.Generator().manual_seed(derive_seed(seed, TRANSFER_STREAM))
    return Samples.cat([draw_samples(cfg, features, n, mu, g) for n, mu in ((cfg.transfer_single, 1.0),
                                                                          (cfg.transfer_multi, 0.0)) if n])
