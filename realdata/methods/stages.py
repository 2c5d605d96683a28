"""Methods that compare the maps after every stage: AT, FitNet, VID and NST."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fkd import (
    at_loss,
    nst_loss,
    pool_pair,
    vid_loss,
)
from fkdapp.params import Param
from realdata.data import ImageData
from realdata.methods.base import Distiller, Outputs, StepContext


class AT(Distiller):
    """Attention transfer: CE + 1000 x the sum over stages of at_loss (p = 2), the last n stages of student and
    teacher paired (n the smaller count); an ensemble averages the loss over its teachers."""

    NAME = "at"
    SPEC = {"ce_weight": Param(1.0), "at_weight": Param(1000.0), "p": Param(2.0, positive=True)}
    USES_STAGES = True

    def distill(self, student: Outputs, teachers: list[Outputs], ctx: StepContext) -> dict[str, Tensor]:
        def one(t: Outputs) -> Tensor:
            return torch.stack([at_loss(s, f, self.params["p"]) for s, f in self._stage_pairs(student, t)]).sum()

        return {"at": self.params["at_weight"] * torch.stack([one(t) for t in teachers]).mean()}


class FitNet(Distiller):
    """FitNet hints: CE + 100 x MSE between a learned regressor of the student's middle stage and the teacher's
    middle stage (conv 3x3 + BN + ReLU to the teacher's channels, the student's map pooled to the teacher's size
    first where larger); one regressor per teacher of an ensemble, the loss averaged. The regressors train with the
    student and are saved in last.pt (the trainer builds them from one batch before training)."""

    NAME = "fitnet"
    SPEC = {"ce_weight": Param(1.0), "hint_weight": Param(100.0)}
    USES_STAGES = True

    def build_heads(self, data: ImageData, seed: int = 0) -> None:
        """Create the regressors from the shapes of the maps on two of ``data``'s training images (their weights
        from torch's global generator, seeded with the run)."""
        s, ts = self._example_outputs(data)
        c_s = s.stages[len(s.stages) // 2].shape[1]
        for i, t in enumerate(ts):
            c_t = t.stages[len(t.stages) // 2].shape[1]
            self.heads[f"regressor{i}"] = nn.Sequential(nn.Conv2d(c_s, c_t, 3, 1, 1), nn.BatchNorm2d(c_t), nn.ReLU())

    def distill(self, student: Outputs, teachers: list[Outputs], ctx: StepContext) -> dict[str, Tensor]:
        hint = student.stages[len(student.stages) // 2]
        losses = []
        for i, t in enumerate(teachers):
            target = t.stages[len(t.stages) // 2]
            x = hint if hint.shape[-1] == target.shape[-1] else F.adaptive_avg_pool2d(hint, target.shape[-2:])
            losses.append(F.mse_loss(self.heads[f"regressor{i}"](x.float()), target.float()))  # outside autocast
        return {"hint": self.params["hint_weight"] * torch.stack(losses).mean()}


class _VIDHead(nn.Module):
    """VID's regressor (three 1x1 convolutions, ReLUs between, no biases) from the student's channels to the
    teacher's, and the per-channel log scales of its variance (softplus(log_scale) + 1e-5 starts at ``init_var``)."""

    def __init__(self, c_s: int, c_t: int, init_var: float, eps: float = 1e-5) -> None:
        super().__init__()
        self.regressor = nn.Sequential(nn.Conv2d(c_s, c_t, 1, bias=False), nn.ReLU(),
                                       nn.Conv2d(c_t, c_t, 1, bias=False), nn.ReLU(),
                                       nn.Conv2d(c_t, c_t, 1, bias=False))
        self.log_scale = nn.Parameter(torch.full((c_t,), math.log(math.expm1(init_var - eps))))


class VID(Distiller):
    """Variational information distillation: CE + 1 x the sum over paired stages (the last n of each, as AT) of
    vid_loss, each stage's teacher map predicted from the student's (the larger pooled to the smaller) by a
    :class:`_VIDHead` trained with the student; an ensemble averages the loss over its teachers."""

    NAME = "vid"
    SPEC = {"ce_weight": Param(1.0), "vid_weight": Param(1.0), "init_var": Param(5.0, positive=True)}
    USES_STAGES = True

    def build_heads(self, data: ImageData, seed: int = 0) -> None:
        s, ts = self._example_outputs(data)
        for i, t in enumerate(ts):
            for j, (ms, mt) in enumerate(self._stage_pairs(s, t)):
                self.heads[f"vid{i}_{j}"] = _VIDHead(ms.shape[1], mt.shape[1], self.params["init_var"])

    def distill(self, student: Outputs, teachers: list[Outputs], ctx: StepContext) -> dict[str, Tensor]:
        def one(i: int, t: Outputs) -> Tensor:
            terms = []
            for j, (ms, mt) in enumerate(self._stage_pairs(student, t)):
                head = self.heads[f"vid{i}_{j}"]
                dtype = head.log_scale.dtype  # the heads' precision (float32 under autocast)
                ms, mt = pool_pair(ms.to(dtype), mt.to(dtype))
                terms.append(vid_loss(head.regressor(ms), mt, head.log_scale))
            return torch.stack(terms).sum()

        return {"vid": self.params["vid_weight"] * torch.stack([one(i, t) for i, t in enumerate(teachers)]).mean()}


class NST(Distiller):
    """Neuron selectivity transfer: CE + 50 x the sum over paired stages (the last n of each, as AT) of nst_loss;
    an ensemble averages the loss over its teachers."""

    NAME = "nst"
    SPEC = {"ce_weight": Param(1.0), "nst_weight": Param(50.0)}
    USES_STAGES = True

    def distill(self, student: Outputs, teachers: list[Outputs], ctx: StepContext) -> dict[str, Tensor]:
        def one(t: Outputs) -> Tensor:
            return torch.stack([nst_loss(s, f) for s, f in self._stage_pairs(student, t)]).sum()

        return {"nst": self.params["nst_weight"] * torch.stack([one(t) for t in teachers]).mean()}
