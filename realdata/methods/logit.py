"""Logit methods: cross-entropy alone, KD and DKD (their maths in :mod:`fkd`)."""

from __future__ import annotations

from torch import Tensor

from fkd import (
    dkd_loss,
    kd_loss,
)
from fkdapp.params import Param
from realdata.methods.base import Distiller, Outputs, StepContext


class CE(Distiller):
    """Cross-entropy alone: a teacher, or a student trained without distillation."""

    NAME = "ce"
    NEEDS_TEACHER = False


class KD(Distiller):
    """Hinton KD: 0.1 * CE + 0.9 * T^2 KL(teacher || student) at T = 4 (the CRD benchmark's weights).

    An ensemble's target is the mean of its teachers' logits.
    """

    NAME = "kd"
    USES_TEACHER_LOGITS = True
    SPEC = {"ce_weight": Param(0.1), "kd_weight": Param(0.9), "temperature": Param(4.0, positive=True)}

    def distill(self, student: Outputs, teachers: list[Outputs], ctx: StepContext) -> dict[str, Tensor]:
        kl = kd_loss(student.logits, [t.logits for t in teachers], self.params["temperature"])
        return {"kd": self.params["kd_weight"] * kl}


class DKD(Distiller):
    """Decoupled KD: CE + warm-up x (alpha TCKD + beta NCKD) at T = 4 (mdistiller's CIFAR-100 defaults: alpha 1,
    beta 8, the weight ramped linearly over the first 20 epochs; mdistiller sets beta per pair, e.g. 6 for
    resnet32x4 -> ShuffleV1/V2 with --param beta=6). An ensemble's target is the mean of its teachers' logits."""

    NAME = "dkd"
    USES_TEACHER_LOGITS = True
    SUPPORTS_TRANSFER = False  # its target-class split needs the labels of the distilled images
    SPEC = {
        "ce_weight": Param(1.0), "alpha": Param(1.0), "beta": Param(8.0), "temperature": Param(4.0, positive=True),
        "warmup": Param(20.0),
    }

    def distill(self, student: Outputs, teachers: list[Outputs], ctx: StepContext) -> dict[str, Tensor]:
        p = self.params
        ramp = min(ctx.epoch / p["warmup"], 1.0) if p["warmup"] > 0 else 1.0
        return {"dkd": ramp * dkd_loss(student.logits, [t.logits for t in teachers], ctx.labels, p["alpha"],
                                       p["beta"], p["temperature"])}
