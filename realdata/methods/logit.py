"""Logit methods: cross-entropy alone, KD, DKD, DIST, WTTM and CTKD (their maths in :mod:`fkd`).

Every method that compares logits takes the switch ``logit_stand`` (true or false; 1 or 0 as configs recorded it
before): logit standardisation (Sun et al., CVPR 2024), both sides' logits z-scored per sample before the
temperature. The LS paper's CIFAR-100 settings for KD are
``--param logit_stand=true --param temperature=2 --param kd_weight=9`` (CE weight 0.1); for DKD it multiplies alpha and
beta by 9 (9 and 72) at T = 2; for MLKD ``temperature=2 kd_weight=9``, z-scoring its instance-level terms only.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from fkd import ctkd_reversal, ctkd_temperature, dist_loss, dkd_loss, kd_loss, mlkd_terms, wttm_loss
from fkdapp.params import Param
from realdata.data import ImageData
from realdata.methods.base import Distiller, Outputs, StepContext
from realdata.methods.needs import Needs

LOGIT_STAND = Param.switch(False)


def _logits(teachers: list[Outputs]) -> list[Tensor]:
    return [t.logits for t in teachers]


class CE(Distiller):
    """Cross-entropy alone: a teacher, or a student trained without distillation."""

    NAME = "ce"
    NEEDS = Needs(teacher=False)


class KD(Distiller):
    """Hinton KD: 0.1 * CE + 0.9 * T^2 KL(teacher || student) at T = 4 (the CRD benchmark's weights).

    An ensemble's target is the mean of its teachers' logits.
    """

    NAME = "kd"
    NEEDS = Needs(logits=True)
    WEIGHTS = ("kd_weight",)
    SPEC = {"ce_weight": Param(0.1), "kd_weight": Param(0.9), "temperature": Param(4.0, positive=True),
            "logit_stand": LOGIT_STAND}

    def distill(self, student: Outputs, teachers: list[Outputs], ctx: StepContext) -> dict[str, Tensor]:
        p = self.params
        kl = kd_loss(student.logits, _logits(teachers), p["temperature"], standardize=bool(p["logit_stand"]))
        return {"kd": p["kd_weight"] * kl}


class MLKD(Distiller):
    """Multi-level logit distillation (Jin et al., CVPR 2023), as its reference code trains: every image as a weak
    and a strong view (the trainer gives the strong one, as ``NEEDS`` says), CE on both (0.1 each), and
    :func:`fkd.mlkd_terms` (instance-level KD at T = 4, 3, 5, 2, 6 on both views, the class- and batch-level Gram
    terms on the weak one, weight 0.9). An ensemble's targets are the mean of its teachers' logits on each view.
    Its published CIFAR-100 numbers come from its own recipe too (lr 0.025 for same-family pairs, 480-960 epochs for
    some others), which the suite's configs do not copy. With ``logit_stand=true`` the instance-level terms z-score
    their logits (the LS paper's MLKD setting: ``temperature=2``, ``kd_weight=9``)."""

    NAME = "mlkd"
    NEEDS = Needs(logits=True, views=2, transfer=False)  # CE on the strong view needs the labels
    WEIGHTS = ("kd_weight",)
    SPEC = {"ce_weight": Param(0.1), "kd_weight": Param(0.9), "temperature": Param(4.0, positive=True),
            "logit_stand": LOGIT_STAND}

    def distill(self, student: Outputs, teachers: list[Outputs], ctx: StepContext) -> dict[str, Tensor]:
        if ctx.strong is None:
            raise ValueError("method 'mlkd' trains on two views: pass the batch's strong view as strong_images")
        p = self.params
        strong_s, strong_t = ctx.strong
        mean = [torch.stack(_logits(ts)).mean(0) for ts in (teachers, strong_t)]  # an ensemble's mean logits
        terms = mlkd_terms(student.logits, mean[0], strong_s.logits, mean[1], p["temperature"], p["kd_weight"],
                            standardize=bool(p["logit_stand"]))
        return {"ce_strong": self._ce(strong_s.logits, ctx.labels), **terms}


class DKD(Distiller):
    """Decoupled KD: CE + warm-up x (alpha TCKD + beta NCKD) at T = 4 (mdistiller's CIFAR-100 defaults: alpha 1,
    beta 8, the weight ramped linearly over the first 20 epochs; mdistiller sets beta per pair: 2 for resnet56 ->
    resnet20 and resnet110 -> resnet32, 6 for vgg13 -> vgg8 / MobileNetV2 and wrn_40_2 -> wrn_16_2 / wrn_40_1; the
    pairs' configs under configs/realdata/cifar100 hold them). An ensemble's target is the mean of its teachers'
    logits."""

    NAME = "dkd"
    NEEDS = Needs(logits=True, transfer=False)  # its target-class split needs the labels of the distilled images
    WEIGHTS = ("alpha", "beta")
    SPEC = {
        "ce_weight": Param(1.0), "alpha": Param(1.0), "beta": Param(8.0), "temperature": Param(4.0, positive=True),
        "warmup": Param(20.0), "logit_stand": LOGIT_STAND,
    }

    def distill(self, student: Outputs, teachers: list[Outputs], ctx: StepContext) -> dict[str, Tensor]:
        p = self.params
        ramp = min(ctx.epoch / p["warmup"], 1.0) if p["warmup"] > 0 else 1.0
        return {"dkd": ramp * dkd_loss(student.logits, _logits(teachers), ctx.labels, p["alpha"], p["beta"],
                                       p["temperature"], standardize=bool(p["logit_stand"]))}


class DIST(Distiller):
    """DIST (Huang et al., NeurIPS 2022): CE + 2 x (beta inter-class + gamma intra-class relation loss) at T = 4,
    beta = gamma = 1 (the authors' CIFAR-100 strategy: kd_loss_weight 2, dist_t4). An ensemble's target is the mean
    of its teachers' logits. The intra-class term correlates each class across the batch (this rank's shard under
    torchrun, as the reference)."""

    NAME = "dist"
    NEEDS = Needs(logits=True)
    WEIGHTS = ("dist_weight",)
    SPEC = {"ce_weight": Param(1.0), "dist_weight": Param(2.0), "beta": Param(1.0), "gamma": Param(1.0),
            "temperature": Param(4.0, positive=True), "logit_stand": LOGIT_STAND}

    def distill(self, student: Outputs, teachers: list[Outputs], ctx: StepContext) -> dict[str, Tensor]:
        p = self.params
        loss = dist_loss(student.logits, _logits(teachers), p["beta"], p["gamma"], p["temperature"],
                         standardize=bool(p["logit_stand"]))
        return {"dist": p["dist_weight"] * loss}


class WTTM(Distiller):
    """Weighted transformed teacher matching (Zheng & Yang, ICLR 2024): CE + 4 x WTTM at gamma = 0.2 (the
    authors' README command; the paper's per-pair weights are in its appendix, not in their code)."""

    NAME = "wttm"
    NEEDS = Needs(logits=True)
    WEIGHTS = ("wttm_weight",)
    SPEC = {"ce_weight": Param(1.0), "wttm_weight": Param(4.0), "gamma": Param(0.2, positive=True)}

    def distill(self, student: Outputs, teachers: list[Outputs], ctx: StepContext) -> dict[str, Tensor]:
        return {"wttm": self.params["wttm_weight"] * wttm_loss(student.logits, _logits(teachers),
                                                               self.params["gamma"])}


class _Temperature(nn.Module):
    """CTKD's global temperature: one raw parameter (1 at the start: T = 15.62), trained with the student."""

    def __init__(self) -> None:
        super().__init__()
        self.raw = nn.Parameter(torch.ones(()))


class CTKD(Distiller):
    """Curriculum temperature KD (Li et al., AAAI 2023): 0.1 CE + 0.9 T^2 KL at a learned temperature T = 1 + 20
    sigmoid(raw), whose gradient is reversed with a strength that rises from 0 to 1 over the first 10 epochs (cosine)
    so that T makes the task harder; the raw temperature trains with the student (the same SGD) and is saved in
    last.pt. The authors' CIFAR-100 script: -r 0.1 -a 0.9, decay over 10 loops."""

    NAME = "ctkd"
    NEEDS = Needs(logits=True)
    WEIGHTS = ("kd_weight",)
    SPEC = {"ce_weight": Param(0.1), "kd_weight": Param(0.9), "t_start": Param(1.0, positive=True),
            "t_range": Param(20.0, positive=True), "curriculum_epochs": Param(10.0, positive=True, whole=True),
            "logit_stand": LOGIT_STAND}

    def build_heads(self, data: ImageData, seed: int = 0) -> None:
        self.heads["temperature"] = _Temperature()

    def distill(self, student: Outputs, teachers: list[Outputs], ctx: StepContext) -> dict[str, Tensor]:
        p = self.params
        reversal = ctkd_reversal(ctx.epoch, int(p["curriculum_epochs"]))
        temp = ctkd_temperature(self.heads["temperature"].raw.float(), reversal, p["t_start"], p["t_range"])
        kl = kd_loss(student.logits, _logits(teachers), temp, standardize=bool(p["logit_stand"]))
        return {"kd": p["kd_weight"] * kl}
