"""Pairwise feature losses against each teacher, averaged over the teachers: SP, PKT and RKD."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from fkd import (
    pkt_loss,
    rkd_loss,
    sp_loss,
)
from fkdapp.params import Param
from multiview.methods.base import Batch, StudentMethod, Targets


class Relational(StudentMethod):
    """A pairwise feature loss against each teacher, averaged over the E teachers (as on the image side), with
    weight = ``weight`` * E * k / 10 (the rule of FKD: the mean over teachers dilutes each teacher's signal)."""

    FAMILY = "relational"
    WEIGHT = "weight"

    def weight(self, teachers: int, k: int) -> float:
        return self.params["weight"] * teachers * k / 10.0

    def pair_loss(self, h_s: torch.Tensor, h_t: torch.Tensor) -> torch.Tensor:
        """(G, B, D_s), (G, B, D_t) -> (G,)"""
        raise NotImplementedError

    def prepare(self, targets: Targets, counts: Sequence[int]) -> torch.Tensor:
        return targets.h

    def loss(self, batch: Batch, prepared: Any, weights: torch.Tensor, counts: Sequence[int]) -> torch.Tensor:
        total = torch.zeros_like(weights)
        e = torch.tensor(counts, device=weights.device)
        for t in range(max(counts)):
            idx = (e > t).nonzero().flatten()
            h_t = prepared[t][batch.sub].expand(len(idx), -1, -1)
            total = total.index_add(0, idx, self.pair_loss(batch.h_sub[idx], h_t))
        return weights * total / e.clamp_min(1)


class SP(Relational):
    """Similarity-preserving KD on the features (row-normalised Gram matrices); published weight 3000."""

    NAME, LABEL, COLOR = "sp", "sp student", "C4"
    SPEC = {"weight": Param(3000.0)}

    def pair_loss(self, h_s: torch.Tensor, h_t: torch.Tensor) -> torch.Tensor:
        return sp_loss(h_s, h_t)


class PKT(Relational):
    """Probabilistic knowledge transfer (cosine kernels as probabilities); published weight 30000."""

    NAME, LABEL, COLOR = "pkt", "pkt student", "C6"
    SPEC = {"weight": Param(30000.0)}

    def pair_loss(self, h_s: torch.Tensor, h_t: torch.Tensor) -> torch.Tensor:
        return pkt_loss(h_s, h_t)


class RKD(Relational):
    """Relational KD: w_d x distances (on the batch) + w_a x angles (on its first ``angle_samples`` samples: the
    angle term is cubic in the batch); published weights 1, 25, 50."""

    NAME, LABEL, COLOR = "rkd", "rkd student", "C8"
    SPEC = {"weight": Param(1.0), "w_d": Param(25.0), "w_a": Param(50.0),
            "angle_samples": Param(64.0, positive=True, whole=True)}

    def pair_loss(self, h_s: torch.Tensor, h_t: torch.Tensor) -> torch.Tensor:
        n = int(self.params["angle_samples"])
        dist = rkd_loss(h_s, h_t, w_d=self.params["w_d"], w_a=0.0)
        return dist + rkd_loss(h_s[:, :n], h_t[:, :n], w_d=0.0, w_a=self.params["w_a"])
