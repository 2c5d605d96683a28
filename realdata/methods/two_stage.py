"""Methods with an initialisation stage before distillation: FT, FSP and AB (the benchmark's recipes)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fkd import (
    ab_loss,
    fsp_loss,
    ft_loss,
)
from fkdapp.errors import ConfigError
from fkdapp.params import Param
from realdata.data import ImageData, resize_channels
from realdata.methods.base import Distiller, Outputs, StepContext
from realdata.methods.needs import Needs


def _body_parameters(model: nn.Module) -> list[nn.Parameter]:
    """A model's parameters but its classifier's (its nn.Linear layers): what the benchmark's initialisation stages
    of AB and FSP train of the student."""
    head = {id(p) for m in model.modules() if isinstance(m, nn.Linear) for p in m.parameters()}
    return [p for p in model.parameters() if id(p) not in head]


def _lrelu_convs(channels: list[int], bn: bool, transpose: bool = False) -> list[nn.Module]:
    """3x3 convolutions (stride 1, padding 1) between consecutive channel counts, each followed by (BatchNorm and)
    LeakyReLU 0.1: FT's paraphraser and translator blocks."""
    conv = nn.ConvTranspose2d if transpose else nn.Conv2d
    layers: list[nn.Module] = []
    for a, b in zip(channels[:-1], channels[1:], strict=True):
        layers += [conv(a, b, 3, 1, 1), *([nn.BatchNorm2d(b)] if bn else []), nn.LeakyReLU(0.1)]
    return layers


class _Paraphraser(nn.Module):
    """FT's paraphraser of a teacher's last map (C channels): an encoder to C/2 factor channels and a decoder back,
    3x3 convolutions with LeakyReLU 0.1, no BatchNorm (the benchmark's)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        h = int(c * 0.5)
        self.encoder = nn.Sequential(*_lrelu_convs([c, c, h, h], bn=False))
        self.decoder = nn.Sequential(*_lrelu_convs([h, h, c, c], bn=False, transpose=True))


class FT(Distiller):
    """Factor transfer: each teacher's paraphraser is first trained alone for ``init_epochs`` (30) to reconstruct
    the teacher's last map (MSE; SGD at ``init_lr`` 0.01, the benchmark's for resnet and wrn students), then frozen;
    a translator (3x3 convolutions with BatchNorm and LeakyReLU 0.1, the student's last map to the factor channels)
    trains with the student: CE + 200 x ft_loss(translator(student map), encoder(teacher map)); an ensemble averages
    the loss over its teachers. Paraphrasers and translators are saved in last.pt."""

    NAME = "ft"
    WEIGHTS = ("ft_weight",)
    SPEC = {
        "ce_weight": Param(1.0), "ft_weight": Param(200.0), "init_epochs": Param(30.0),
        "init_lr": Param(0.01, positive=True),
    }

    def build_heads(self, data: ImageData, seed: int = 0) -> None:
        s, ts = self._example_outputs(data)
        c_s = s.fmap.shape[1]
        for i, t in enumerate(ts):
            c_t = t.fmap.shape[1]
            self.heads[f"paraphraser{i}"] = _Paraphraser(c_t)
            self.heads[f"translator{i}"] = nn.Sequential(*_lrelu_convs([c_s, c_s, int(c_t * 0.5), int(c_t * 0.5)],
                                                                       bn=True))

    def init_parameters(self) -> list[nn.Parameter]:
        return [p for name, h in self.heads.items() if name.startswith("paraphraser") for p in h.parameters()]

    def init_loss(self, images: Tensor) -> Tensor:
        losses = []
        for i, t in enumerate(self._teacher_outputs(images)):
            p = self.heads[f"paraphraser{i}"]
            target = t.fmap.to(p.encoder[0].weight.dtype)
            losses.append(F.mse_loss(p.decoder(p.encoder(target)), target))
        return torch.stack(losses).mean()

    def end_init(self) -> None:
        for name, h in self.heads.items():
            if name.startswith("paraphraser"):
                h.requires_grad_(False)

    def distill(self, student: Outputs, teachers: list[Outputs], ctx: StepContext) -> dict[str, Tensor]:
        losses = []
        for i, t in enumerate(teachers):
            translator, p = self.heads[f"translator{i}"], self.heads[f"paraphraser{i}"]
            dtype = p.encoder[0].weight.dtype  # the heads' precision (float32 under autocast)
            with torch.no_grad():
                factor_t = p.encoder(t.fmap.to(dtype))
            losses.append(ft_loss(translator(student.fmap.to(dtype)), factor_t))
        return {"ft": self.params["ft_weight"] * torch.stack(losses).mean()}


class FSP(Distiller):
    """FSP: the student's layers (all but its classifier) are first trained for ``init_epochs`` (30) to match each
    teacher's FSP matrices (the sum over consecutive stages of fsp_loss, averaged over an ensemble; SGD at
    ``init_lr`` 0.05), then trained with CE alone, as in the benchmark, whose main stage has no FSP term. The
    stages must have the teacher's channels pairwise (else a one-line error). The benchmark also pairs the stem's
    output with the first stage; here the pairs start at the first stage (one pair fewer)."""

    NAME = "fsp"
    SPEC = {"ce_weight": Param(1.0), "init_epochs": Param(30.0), "init_lr": Param(0.05, positive=True)}
    NEEDS = Needs(student={"stages"})

    def build_heads(self, data: ImageData, seed: int = 0) -> None:
        """No heads: checks on two images that every teacher's stages have the student's channels."""
        s, ts = self._example_outputs(data)
        cs = [m.shape[1] for m in s.stages]
        for t in ts:
            ct = [m.shape[1] for m in t.stages]
            if ct != cs:
                raise ConfigError(f"fsp needs the teacher's stage channels to equal the student's, got {ct} and {cs}; "
                                  "pick a pair with equal channels (e.g. resnet32x4 -> resnet8x4) or another method")

    def init_parameters(self) -> list[nn.Parameter]:
        return _body_parameters(self.student)

    def init_loss(self, images: Tensor) -> Tensor:
        stages = self._outputs(self.student, images).stages
        return torch.stack([fsp_loss([m.float() for m in stages], [m.float() for m in t.stages]).sum()
                            for t in self._teacher_outputs(images)]).mean()


def _connector(s: Tensor, t: Tensor) -> nn.Module:
    """AB's connector from a student map's shape to a teacher map's: the identity where they match, else a
    convolution (3x3 stride 2 to halve the size, 4x4 transposed to double it, else a valid kxk one) and BatchNorm."""
    (c_s, h_s, w_s), (c_t, h_t, w_t) = s.shape[1:], t.shape[1:]
    if (c_s, h_s) == (c_t, h_t):
        return nn.Identity()
    if h_s == 2 * h_t:
        conv: nn.Module = nn.Conv2d(c_s, c_t, 3, 2, 1)
    elif 2 * h_s == h_t:
        conv = nn.ConvTranspose2d(c_s, c_t, 4, 2, 1)
    elif h_s >= h_t:
        conv = nn.Conv2d(c_s, c_t, (1 + h_s - h_t, 1 + w_s - w_t))
    else:
        raise ConfigError(f"ab cannot connect a {h_s}x{w_s} student map to a {h_t}x{w_t} teacher map; pick another "
                          "pair or method")
    return nn.Sequential(conv, nn.BatchNorm2d(c_t))


class AB(Distiller):
    """Activation boundaries: connectors (one per paired stage, the last n of each; identity where the shapes match)
    and the student's layers (all but its classifier) are first trained for ``init_epochs`` (30) on ab_loss between
    the connected pre-activation maps of the student and the teacher's (margin 1, the benchmark's per-stage weights,
    summed; averaged over an ensemble; SGD at ``init_lr`` 0.05), then the student trains with CE alone, as in the
    benchmark, whose main stage has no AB term. Needs pre-activation maps: CIFAR ResNets, WRNs and VGGs."""

    NAME = "ab"
    NEEDS = Needs(student={"preact"})
    SPEC = {
        "ce_weight": Param(1.0), "init_epochs": Param(30.0), "init_lr": Param(0.05, positive=True),
        "margin": Param(1.0, positive=True),
    }

    def build_heads(self, data: ImageData, seed: int = 0) -> None:
        example = self._example_images(data)
        with torch.no_grad():
            s = self.student.preact_stages(example)
            for i, (t, c) in enumerate(zip(self.teachers, self.teacher_channels, strict=True)):
                tt = t.preact_stages(resize_channels(example, c))
                n = min(len(s), len(tt))
                for j, (ms, mt) in enumerate(zip(s[-n:], tt[-n:], strict=True)):
                    self.heads[f"connector{i}_{j}"] = _connector(ms, mt)

    def init_parameters(self) -> list[nn.Parameter]:
        return [*_body_parameters(self.student), *self.heads.parameters()]

    def init_loss(self, images: Tensor) -> Tensor:
        s = self.student.preact_stages(images)
        losses = []
        for i, (t, c) in enumerate(zip(self.teachers, self.teacher_channels, strict=True)):
            with torch.no_grad():
                tt = t.preact_stages(resize_channels(images, c))
            n = min(len(s), len(tt))
            connected = [self.heads[f"connector{i}_{j}"](m.float()) for j, m in enumerate(s[-n:])]
            losses.append(ab_loss(connected, [m.float() for m in tt[-n:]], self.params["margin"]).sum())
        return torch.stack(losses).mean()
