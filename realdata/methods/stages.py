"""Methods that compare the maps after every stage: AT, FitNet, VID, NST and ReviewKD."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fkd import at_loss, hcl_loss, nst_loss, ofd_loss, ofd_margin, pool_pair, vid_loss
from fkdapp.params import Param
from realdata.data import ImageData
from realdata.methods.base import Distiller, Outputs, StepContext
from realdata.methods.needs import Needs


class AT(Distiller):
    """Attention transfer: CE + 1000 x the sum over stages of at_loss (p = 2), the last n stages of student and
    teacher paired (n the smaller count); an ensemble averages the loss over its teachers."""

    NAME = "at"
    WEIGHTS = ("at_weight",)
    SPEC = {"ce_weight": Param(1.0), "at_weight": Param(1000.0), "p": Param(2.0, positive=True)}
    NEEDS = Needs(student={"stages"})

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
    WEIGHTS = ("hint_weight",)
    SPEC = {"ce_weight": Param(1.0), "hint_weight": Param(100.0)}
    NEEDS = Needs(student={"stages"})

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
    WEIGHTS = ("vid_weight",)
    SPEC = {"ce_weight": Param(1.0), "vid_weight": Param(1.0), "init_var": Param(5.0, positive=True)}
    NEEDS = Needs(student={"stages"})

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
    WEIGHTS = ("nst_weight",)
    SPEC = {"ce_weight": Param(1.0), "nst_weight": Param(50.0)}
    NEEDS = Needs(student={"stages"})

    def distill(self, student: Outputs, teachers: list[Outputs], ctx: StepContext) -> dict[str, Tensor]:
        def one(t: Outputs) -> Tensor:
            return torch.stack([nst_loss(s, f) for s, f in self._stage_pairs(student, t)]).sum()

        return {"nst": self.params["nst_weight"] * torch.stack([one(t) for t in teachers]).mean()}


class _ABF(nn.Module):
    """ReviewKD's attention-based fusion of one level: a 1x1 convolution of the student's map to ``mid`` channels,
    fused (when ``fuse``) with the level above's output through two sigmoid attention maps, resized to the teacher's
    size, and a 3x3 convolution to the teacher's channels; returns (that output, the fused map for the next level)."""

    def __init__(self, c_in: int, mid: int, c_out: int, fuse: bool) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(c_in, mid, 1, bias=False), nn.BatchNorm2d(mid))
        self.conv2 = nn.Sequential(nn.Conv2d(mid, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out))
        self.att = nn.Sequential(nn.Conv2d(2 * mid, 2, 1), nn.Sigmoid()) if fuse else None
        for conv in (self.conv1[0], self.conv2[0]):
            nn.init.kaiming_uniform_(conv.weight, a=1)

    def forward(self, x: Tensor, above: Tensor | None, out_size: int) -> tuple[Tensor, Tensor]:
        x = self.conv1(x)
        if self.att is not None and above is not None:
            above = F.interpolate(above, x.shape[-2:], mode="nearest")
            z = self.att(torch.cat([x, above], 1))
            x = x * z[:, :1] + above * z[:, 1:]
        if x.shape[-1] != out_size:
            x = F.interpolate(x, (out_size, out_size), mode="nearest")
        return self.conv2(x), x


class ReviewKD(Distiller):
    """ReviewKD (Chen et al., CVPR 2021; mdistiller's CIFAR-100 recipe): the student's stages and pooled feature are
    fused top-down by attention-based fusion (one :class:`_ABF` per level, mid channels min(512, the student's last
    stage's)) and matched to the teacher's pre-activation stages and pooled feature (the last n levels of each) by
    the hierarchical context loss; CE + 5 x min(epoch / 20, 1) x HCL. One set of fusions per teacher of an ensemble,
    the loss averaged; the fusions train with the student and are saved in last.pt. The teacher needs
    pre-activation maps (CIFAR ResNets, WRNs, VGGs); each teacher runs twice per step (its stages and its
    pre-activation stages are two passes of this zoo)."""

    NAME = "reviewkd"
    WEIGHTS = ("reviewkd_weight",)
    SPEC = {"ce_weight": Param(1.0), "reviewkd_weight": Param(5.0), "warmup": Param(20.0)}
    NEEDS = Needs(student={"stages"}, teacher_gives={"stages", "preact"})

    def _outputs(self, net: nn.Module, x: Tensor) -> Outputs:
        out = super()._outputs(net, x)
        if net is self.student:
            return out
        return out._replace(stages=tuple(net.preact_stages(x)))

    def _levels(self, out: Outputs, n: int) -> list[Tensor]:
        """The last n stage maps and the pooled feature as a 1x1 map, deepest first."""
        return [out.pooled[:, :, None, None], *reversed(out.stages[-n:])]

    def build_heads(self, data: ImageData, seed: int = 0) -> None:
        s, ts = self._example_outputs(data)
        mid = min(512, s.stages[-1].shape[1])
        for i, t in enumerate(ts):
            n = min(len(s.stages), len(t.stages))
            for j, (ms, mt) in enumerate(zip(self._levels(s, n), self._levels(t, n), strict=True)):
                self.heads[f"abf{i}_{j}"] = _ABF(ms.shape[1], mid, mt.shape[1], fuse=j > 0)

    def distill(self, student: Outputs, teachers: list[Outputs], ctx: StepContext) -> dict[str, Tensor]:
        p = self.params
        losses = []
        for i, t in enumerate(teachers):
            n = min(len(student.stages), len(t.stages))
            targets = self._levels(t, n)
            above, fused = None, []
            for j, (ms, mt) in enumerate(zip(self._levels(student, n), targets, strict=True)):
                head = self.heads[f"abf{i}_{j}"]
                out, above = head(ms.to(head.conv1[0].weight.dtype), above, mt.shape[-1])
                fused.append(out)
            losses.append(hcl_loss(fused, [m.float() for m in targets]))
        ramp = min(ctx.epoch / p["warmup"], 1.0) if p["warmup"] > 0 else 1.0
        return {"reviewkd": p["reviewkd_weight"] * ramp * torch.stack(losses).mean()}


class OFD(Distiller):
    """A comprehensive overhaul of feature distillation (Heo et al., ICCV 2019; mdistiller's CIFAR-100 recipe): the
    student's pre-activation stage maps (the last n of each network's), each through a connector (1x1 conv + BN to the
    teacher's channels, trained with the student), against the teacher's pre-activation maps (pooled to the student's
    size) by the partial L2 distance with the margin of the teacher's BatchNorm before each ReLU
    (:func:`fkd.ofd_margin`, :func:`fkd.ofd_loss`); the deepest stage weighted 1, each shallower one half the next;
    CE + 1e-3 x their sum, averaged over an ensemble's teachers. Needs pre-activation maps of student and teachers
    (CIFAR ResNets, WRNs, VGGs). The teachers stay in eval mode (the reference code runs them with batch statistics)."""

    NAME = "ofd"
    WEIGHTS = ("ofd_weight",)
    SPEC = {"ce_weight": Param(1.0), "ofd_weight": Param(1e-3)}
    NEEDS = Needs(student={"preact"})

    def _outputs(self, net: nn.Module, x: Tensor) -> Outputs:
        logits, pooled, pre = net.forward_preact(x)
        return Outputs(logits, pooled, pre[-1].relu(), tuple(pre))

    def build_heads(self, data: ImageData, seed: int = 0) -> None:
        """One connector per (teacher, paired stage): conv weights N(0, 2 / c_t), BN the identity (OFD's init)."""
        s, ts = self._example_outputs(data)
        for i, t in enumerate(ts):
            for j, (ms, mt) in enumerate(self._stage_pairs(s, t)):
                conv = nn.Conv2d(ms.shape[1], mt.shape[1], 1, bias=False)
                nn.init.normal_(conv.weight, 0.0, math.sqrt(2.0 / mt.shape[1]))
                self.heads[f"connector{i}_{j}"] = nn.Sequential(conv, nn.BatchNorm2d(mt.shape[1]))

    def distill(self, student: Outputs, teachers: list[Outputs], ctx: StepContext) -> dict[str, Tensor]:
        losses = []
        for i, (t, net) in enumerate(zip(teachers, self.teachers, strict=True)):
            pairs = self._stage_pairs(student, t)
            bns = net.preact_bns()[-len(pairs):]
            total = 0.0
            for j, ((ms, mt), bn) in enumerate(zip(pairs, bns, strict=True)):
                head = self.heads[f"connector{i}_{j}"]
                connected = head(ms.to(head[0].weight.dtype))
                size = connected.shape[-2:]
                target = mt if mt.shape[-2:] == size else F.adaptive_avg_pool2d(mt, size)
                term = ofd_loss(connected.float(), target.float(), ofd_margin(bn.weight, bn.bias).float())
                total = total + term / 2 ** (len(pairs) - 1 - j)
            losses.append(total)
        return {"ofd": self.params["ofd_weight"] * torch.stack(losses).mean()}

