"""Logit methods: KD and DKD against the mean teacher logits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from fkd import (
    dkd_loss,
    kd_loss,
)
from fkdapp.params import Param
from multiview.methods.base import Batch, StudentMethod, Targets, with_teachers


class KD(StudentMethod):
    """CE + kd_weight * T^2 KL(softened ensemble || softened student); the ensemble is the mean teacher logits."""

    NAME, LABEL, COLOR, FAMILY = "kd", "kd student", "C1", "logit"
    SPEC = {"kd_weight": Param(3.0), "temperature": Param(4.0, positive=True)}
    WEIGHT = "kd_weight"

    def weight(self, teachers: int, k: int) -> float:
        return self.params["kd_weight"] if teachers else 0.0

    def prepare(self, targets: Targets, counts: Sequence[int]) -> torch.Tensor | None:
        return torch.stack([targets.logits[:e].mean(0) for e in counts if e]) if any(counts) else None

    def loss(self, batch: Batch, prepared: Any, weights: torch.Tensor, counts: Sequence[int]) -> torch.Tensor:
        used = with_teachers(counts, weights.device)
        if not len(used):
            return torch.zeros_like(weights)
        kl = kd_loss(batch.f[used], prepared[:, batch.index], self.params["temperature"])
        return torch.zeros_like(weights).index_add(0, used, weights[used] * kl)


class DKD(KD):
    """CE + alpha TCKD + beta NCKD (decoupled KD) against the mean teacher logits, T = 4; the weight does not grow
    with E. Published CIFAR-100 values alpha = 1, beta = 8; no warm-up here (full-batch steps, not epochs)."""

    NAME, LABEL, COLOR = "dkd", "dkd student", "C5"
    SPEC = {"weight": Param(1.0), "alpha": Param(1.0), "beta": Param(8.0), "temperature": Param(4.0, positive=True)}
    WEIGHT = "weight"

    def weight(self, teachers: int, k: int) -> float:
        return self.params["weight"] if teachers else 0.0

    def loss(self, batch: Batch, prepared: Any, weights: torch.Tensor, counts: Sequence[int]) -> torch.Tensor:
        used = with_teachers(counts, weights.device)
        if not len(used):
            return torch.zeros_like(weights)
        p = self.params
        teacher = prepared[:, batch.index]
        labels = batch.labels
        if bool((labels < 0).any()):  # transfer samples: the teachers' prediction stands in for the label
            labels = torch.where(labels >= 0, labels, teacher.argmax(-1))
        d = dkd_loss(batch.f[used], teacher, labels, p["alpha"], p["beta"], p["temperature"])
        return torch.zeros_like(weights).index_add(0, used, weights[used] * d)
