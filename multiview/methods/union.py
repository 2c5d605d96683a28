"""Objectives that aim at the union of the student's own views and its teachers' (issue 41's moonshot), each built
from a mechanism the simulation measured:

- ``kd-max``: the teachers' ensemble fails near 2 L(E) because the mean of E teachers' logits dilutes a view only
  one of them holds; per class, the largest of the teachers' logits keeps it (a union of evidence), and cross-entropy
  keeps the student's own views.
- ``fkd-class``: the whole-network kernel is view-blind on multi-view data (both views of a class make the same
  similarity); per class, the kernel of that class's neurons says which samples share the view those neurons learned.
  The target is, per class and pair, the most similar teacher (a union), and the distance is one-sided, so the
  student's own views, which no teacher may hold, are not unlearned (the two-sided distance erased them).
- ``fkd-kdmax``: FKD as shipped plus ``kd-max``: the kernel's structure with the logits' union.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from fkd import factored_kernel_distance, max_kernel, normalized_kernel, one_sided_kernel_distance, unit_rows
from fkdapp.params import Param
from multiview.methods.base import Batch, StudentMethod, Targets, with_teachers
from multiview.methods.fkd import KernelFamily, factor_targets
from multiview.methods.logit import KD


class KDMax(KD):
    """CE + kd_weight * T^2 KL(softmax(max_e z_e / T) || softmax(z_S / T)): per class the largest teacher logit."""

    NAME, LABEL, COLOR = "kd-max", "kd toward the teachers' max logits", "C6"
    SPEC = {"kd_weight": Param(1.0), "temperature": Param(4.0, positive=True)}

    def prepare(self, targets: Targets, counts: Sequence[int]) -> torch.Tensor | None:
        return torch.stack([targets.logits[:e].amax(0) for e in counts if e]) if any(counts) else None


def class_kernels(h: torch.Tensor, k: int, eps: float) -> torch.Tensor:
    """Per class, the normalised kernel of that class's neurons.  (..., N, k m) -> (..., k, N, N)."""
    per_class = h.unflatten(-1, (k, -1)).movedim(-2, -3)  # (..., k, N, m)
    return normalized_kernel(per_class, eps)


class FKDClass(StudentMethod):
    """CE + lambda_E mean over classes j of the one-sided distance between the student's class-j kernel and, per
    pair, the most similar teacher's class-j kernel; lambda_E = lambda * E * k / 10 as FKD's."""

    NAME, LABEL, COLOR, FAMILY = "fkd-class", "fkd per class toward the teachers' max", "C8", "relational"
    SPEC = {"lambda": Param(10.0), "eps": Param(1.0)}
    WEIGHT = "lambda"

    def weight(self, teachers: int, k: int) -> float:
        return self.params["lambda"] * teachers * k / 10.0

    def prepare(self, targets: Targets, counts: Sequence[int]) -> torch.Tensor | None:
        """Per student with teachers, its target class kernels on every sample: (G', k, N, N)."""
        k = targets.logits.shape[-1]
        kernels = class_kernels(targets.h, k, self.params["eps"])  # (E_max, k, N, N)
        out = [max_kernel(kernels[:e]) for e in counts if e]
        return torch.stack(out) if out else None

    def loss(self, batch: Batch, prepared: Any, weights: torch.Tensor, counts: Sequence[int]) -> torch.Tensor:
        used = with_teachers(counts, weights.device)
        if not len(used):
            return torch.zeros_like(weights)
        target = prepared[:, :, batch.sub][..., batch.sub]  # (G', k, B', B')
        student = class_kernels(batch.h_sub[used], batch.f.shape[-1], self.params["eps"])
        dist = one_sided_kernel_distance(student, target).mean(-1)  # mean over classes
        return torch.zeros_like(weights).index_add(0, used, weights[used] * dist)


class FKDKDMax(KernelFamily):
    """FKD's term (lambda, eps, the mean of the teachers' normalised kernels) + ``kd-max`` at ``kd_weight``: the
    kernel's structure with the union of the teachers' logits."""

    NAME, LABEL, COLOR = "fkd-kdmax", "fkd + kd toward the max logits", "C4"
    SPEC = {"lambda": Param(10.0), "eps": Param(1.0), "kd_weight": Param(1.0),
            "temperature": Param(4.0, positive=True)}

    def _kd(self) -> KDMax:
        return KDMax(kd_weight=self.params["kd_weight"], temperature=self.params["temperature"])

    def prepare(self, targets: Targets, counts: Sequence[int]) -> Any:
        return factor_targets(targets, counts, True, "mean", self.params["eps"]), self._kd().prepare(targets, counts)

    def distance(self, h_sub: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return factored_kernel_distance(unit_rows(h_sub, self.params["eps"]), target)

    def loss(self, batch: Batch, prepared: Any, weights: torch.Tensor, counts: Sequence[int]) -> torch.Tensor:
        factors, logits = prepared
        kd = self._kd()
        kd_weights = torch.tensor([kd.weight(e, 0) for e in counts], device=weights.device, dtype=weights.dtype)
        return super().loss(batch, factors, weights, counts) + kd.loss(batch, logits, kd_weights, counts)


__all__ = ["FKDClass", "FKDKDMax", "KDMax", "class_kernels"]
