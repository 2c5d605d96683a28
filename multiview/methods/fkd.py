"""The feature-kernel family, by composition: each member of :class:`KernelFamily` is its target and its distance
(FKD, its raw-kernel ablation, the objective that only adds (fkd-add), the oracle union target (a probe)), each with
its own parameters; and FKD after a KD warm start."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from fkd import (
    factored_kernel_distance,
    feature_regularizer,
    max_kernel,
    normalized_kernel,
    one_sided_kernel_distance,
    teacher_factor,
    unit_rows,
)
from fkd.relational import ENSEMBLE_MODES
from fkdapp.errors import ConfigError
from fkdapp.params import Param
from multiview.methods.base import CE, Batch, StudentMethod, Targets, with_teachers
from multiview.methods.logit import KD


def factor_targets(targets: Targets, counts: Sequence[int], normalize: bool, ensemble: str, eps: float
                   ) -> torch.Tensor | None:
    """Per student with teachers, features whose kernel is its teachers' target kernel (the mean of their normalised
    kernels, or of their concatenated features), zero-padded to E_max D: (G', N, W)."""
    h_t = list(targets.h)
    width = len(h_t) * targets.h.shape[-1]
    fs = [teacher_factor(h_t[:e], normalize, ensemble, eps) for e in counts if e]
    return torch.stack([F.pad(f, (0, width - f.shape[-1])) for f in fs]) if fs else None


class KernelFamily(StudentMethod):
    """What the feature-kernel methods share: CE + lambda_E D(student, target) over the students that have teachers,
    lambda_E = lambda * E * k / 10. A member is composed of its target (:meth:`prepare`, once per training, and
    :meth:`target`, its rows for a batch) and its distance (:meth:`distance`), each reading only the parameters its
    own SPEC declares."""

    FAMILY, WEIGHT = "relational", "lambda"

    def weight(self, teachers: int, k: int) -> float:
        return self.params["lambda"] * teachers * k / 10.0

    def target(self, prepared: Any, batch: Batch) -> torch.Tensor:
        """The prepared targets' rows (G', B', W) for the batch's kernel samples."""
        return prepared[:, batch.sub]

    def distance(self, h_sub: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """(G', B', D) student features, the batch's targets -> (G',) distances."""
        raise NotImplementedError

    def loss(self, batch: Batch, prepared: Any, weights: torch.Tensor, counts: Sequence[int]) -> torch.Tensor:
        out = torch.zeros_like(weights)
        used = with_teachers(counts, weights.device)
        if len(used):
            dist = self.distance(batch.h_sub[used], self.target(prepared, batch))
            out = out.index_add(0, used, weights[used] * dist)
        return out


class FKD(KernelFamily):
    """CE + lambda_E D(rho_S, rho_T) + feature_reg * mean ||h_S||^2, lambda_E = lambda * E * k / 10.

    rho is the cosine-normalised kernel with ``eps`` inside the norms (``fkd.unit_rows``); rho_T the mean of the
    teachers' normalised kernels (``ensemble="mean"``) or the kernel of their concatenated, RMS-scaled features
    (``"concat"``). With ``feature_reg`` > 0 the regulariser also acts without teachers, so the student's own
    lottery is this method at E = 0.

    Variants that make the kernel act while the lottery is decided (all off by default):
    ``eps_rel`` > 0: the student's eps is eps_rel x the root-mean-square feature norm of the batch (per student,
    not differentiated), so rho_S is scale-free from step 0. ``balance`` c > 0: every step, the term's gradient is
    rescaled to c times the norm of CE's (lambda then only sets nothing but the sign), until step ``balance_until``
    (0: always), after which the fixed lambda_E applies. ``kernel_only`` T > 0: no cross-entropy for the first T
    steps (the kernel term alone).
    """

    NAME, LABEL, COLOR = "fkd", "fkd student", "C0"
    SPEC = {"lambda": Param(10.0), "feature_reg": Param(0.0), "eps": Param(0.1),
            "ensemble": Param("mean", choices=ENSEMBLE_MODES), "eps_rel": Param(0.0), "balance": Param(0.0),
            "balance_until": Param(0.0), "kernel_only": Param(0.0)}

    def balance(self, teachers: int, step: int) -> float:
        until = self.params["balance_until"]
        on = teachers > 0 and (until == 0 or step < until)
        return self.params["balance"] if on else 0.0

    def ce_scale(self, step: int) -> float:
        return 0.0 if step < self.params["kernel_only"] else 1.0

    def own_lottery(self) -> StudentMethod:
        return self if self.params["feature_reg"] > 0 else CE()

    def prepare(self, targets: Targets, counts: Sequence[int]) -> torch.Tensor | None:
        return factor_targets(targets, counts, True, self.params["ensemble"], self.params["eps"])

    def distance(self, h_sub: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        rel = self.params["eps_rel"]
        if rel > 0:  # eps relative to the batch's RMS feature norm: rho_S is then scale-free
            eps2 = rel**2 * h_sub.detach().square().sum(-1).mean(-1, keepdim=True)  # (G, 1)
            u = h_sub * torch.rsqrt(h_sub.square().sum(-1) + eps2)[..., None]
            return factored_kernel_distance(u, target)
        return factored_kernel_distance(unit_rows(h_sub, self.params["eps"]), target)

    def loss(self, batch: Batch, prepared: Any, weights: torch.Tensor, counts: Sequence[int]) -> torch.Tensor:
        out = super().loss(batch, prepared, weights, counts)
        if self.params["feature_reg"] > 0:
            out = out + self.params["feature_reg"] * feature_regularizer(batch.h)
        return out


class FKDRaw(KernelFamily):
    """The paper's ablation: CE + lambda_E D(k_S, k_T) on raw kernels, diagonal included, lambda_E = lambda E k / 10
    (the target: the mean of the teachers' raw kernels)."""

    NAME, LABEL, COLOR = "fkd-raw", "fkd-raw student", "C2"
    SPEC = {"lambda": Param(0.01)}

    def prepare(self, targets: Targets, counts: Sequence[int]) -> torch.Tensor | None:
        return factor_targets(targets, counts, False, "mean", 0.0)

    def distance(self, h_sub: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return factored_kernel_distance(h_sub, target, include_diagonal=True)


class FKDAdd(KernelFamily):
    """An objective that adds and never removes: CE + lambda_E mean over pairs of relu(rho_T - rho_S)^2, so a pair
    counts only where the student is less similar than the target. ``target="mean"``: the mean of the teachers'
    normalised kernels; ``"max"``: per pair the most similar teacher (a union target built from kernels alone,
    no knowledge of views). Computed as B x B kernels (the max is not a Gram matrix)."""

    NAME, LABEL, COLOR = "fkd-add", "fkd one-sided student", "C3"
    SPEC = {"lambda": Param(10.0), "eps": Param(0.1), "target": Param("mean", choices=("mean", "max"))}

    def prepare(self, targets: Targets, counts: Sequence[int]) -> torch.Tensor | None:
        """Per student with teachers, its target kernel on every sample: (G', N, N)."""
        eps = self.params["eps"]
        kernels = [normalized_kernel(h, eps) for h in targets.h]
        out = [torch.stack(kernels[:e]).mean(0) if self.params["target"] == "mean" else max_kernel(
            torch.stack(kernels[:e])) for e in counts if e]
        return torch.stack(out) if out else None

    def target(self, prepared: Any, batch: Batch) -> torch.Tensor:
        return prepared[:, batch.sub][:, :, batch.sub]

    def distance(self, h_sub: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return one_sided_kernel_distance(normalized_kernel(h_sub, self.params["eps"]), target)


class FKDOracle(KernelFamily):
    """A probe, not a method: FKD toward the kernel of the oracle union teacher, built per (class, view) from a
    teacher that holds the view (it uses the simulation's knowledge of views; see
    :func:`multiview.population.union_network`). Says whether a stall is in the target or in the student."""

    NAME, LABEL, COLOR = "fkd-oracle", "fkd toward the union (oracle)", "black"
    VARIANT_OF = "fkd"
    USES_UNION = True
    SPEC = {"lambda": Param(10.0), "eps": Param(0.1)}

    def prepare(self, targets: Targets, counts: Sequence[int]) -> torch.Tensor | None:
        if targets.union_h is None:
            raise ConfigError("fkd-oracle needs the teachers' union features (Targets.union_h)")
        fs = [unit_rows(targets.union_h[e - 1], self.params["eps"]) for e in counts if e]
        return torch.stack(fs) if fs else None

    def distance(self, h_sub: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return factored_kernel_distance(unit_rows(h_sub, self.params["eps"]), target)


class FKDWarm(FKD):
    """A teacher-signal warm start: KD (kd_weight, T) for the first ``kd_steps`` steps, then FKD as ``fkd``: tests
    whether an early signal from the teachers is what the kernel lacks."""

    NAME, LABEL, COLOR = "fkd-warm", "fkd after a KD warm start", "C9"
    VARIANT_OF = "fkd"
    SPEC = {**FKD.SPEC, "kd_steps": Param(150.0), "kd_weight": Param(3.0), "temperature": Param(4.0, positive=True)}

    def prepare(self, targets: Targets, counts: Sequence[int]) -> Any:
        return super().prepare(targets, counts), KD().prepare(targets, counts)

    def loss(self, batch: Batch, prepared: Any, weights: torch.Tensor, counts: Sequence[int]) -> torch.Tensor:
        factors, logits = prepared
        if batch.step >= self.params["kd_steps"]:
            return super().loss(batch, factors, weights, counts)
        kd = KD(kd_weight=self.params["kd_weight"], temperature=self.params["temperature"])
        kd_weights = torch.tensor([kd.weight(e, 0) for e in counts], device=weights.device)
        return kd.loss(batch, logits, kd_weights, counts)
