"""Distillation methods on images: a student, frozen teachers and the named losses of one training step.

Each method is a small :class:`Distiller` (in the spirit of mdistiller): ``forward(images, labels,
transfer_images=None)`` returns ``(student logits, {"ce": ..., "<term>": ...})``, the named losses already weighted,
so their sum is the training loss. The losses themselves come from :mod:`fkd`; this module only decides which
network outputs go into them and with which weights. :data:`METHODS` (name -> class) is the only place a method is
looked up by name.

Teachers are frozen (``requires_grad`` False) and stay in eval mode whatever ``.train()`` is called on the
distiller. Several teachers make an ensemble: FKD takes the mean of their normalised kernels, KD the mean of their
logits, and the feature baselines (SP, PKT, RKD) average their loss over the teachers. Teachers may have any
architecture and feature width; a teacher trained on 3-channel images gets 1-channel inputs repeated over 3.

Transfer images (cross-data-set distillation, no labels used): the student sees the labelled batch and the transfer
batch in one forward pass (so they must have the same shape); the cross-entropy uses the labelled part, the
distillation terms (and FKD's feature regulariser) the transfer part, on which the teachers run.

Several processes (torchrun): the per-sample terms (CE, KD) use this rank's shard of the batch; a relational method
names in ``GATHERED`` the outputs it compares across samples (FKD, PKT, RKD: pooled features; SP: the last map), and
:meth:`Distiller.forward` gathers them once from every rank (:func:`realdata.distributed.global_batch`, the identity
in one process), which also makes their gradient come out right after DDP's averaging. Every term computed from a
gathered output (FKD's regulariser included) is then a function of the global batch.

Parameters are named for what they weigh (``kd_weight``, ``lambda`` and ``feature_reg`` for FKD, ``sp_weight``,
``pkt_weight``, ``rkd_weight``), with the same names as the simulation's methods where the objective is the same.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fkd import (
    ab_loss,
    at_loss,
    cc_loss,
    crd_loss,
    dkd_loss,
    feature_regularizer,
    fkd_loss,
    fsp_loss,
    ft_loss,
    kd_loss,
    nst_loss,
    pkt_loss,
    pool_pair,
    rkd_loss,
    sp_loss,
    vid_loss,
)
from fkdapp.errors import ConfigError
from realdata.data import ImageData, normalize, resize_channels
from realdata.distributed import global_batch


class Outputs(NamedTuple):
    """One network's outputs on a batch: logits (B, K), pooled penultimate features (B, D), last map (B, C, H, W),
    and (for methods that set ``USES_STAGES``) the maps after every stage."""

    logits: Tensor
    pooled: Tensor
    fmap: Tensor
    stages: tuple[Tensor, ...] = ()


def in_channels_of(model: nn.Module) -> int:
    """The number of image channels ``model`` takes (its first convolution's input channels)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            return m.in_channels
    raise ValueError(f"{type(model).__name__} has no convolution to read its input channels from")


class Distiller(nn.Module):
    """A student trained with cross-entropy plus the method's distillation terms from frozen ``teachers``.

    Subclasses set ``NAME``, ``PARAMS`` (name -> default weight; every value a finite number >= 0) and implement
    :meth:`distill`. The losses are computed in float32 outside any autocast region (the :mod:`fkd` functions
    upcast bf16 features).
    """

    NAME: ClassVar[str] = ""
    NEEDS_TEACHER: ClassVar[bool] = True
    #: The distillation term compares logits, so teachers must have the student's classes.
    USES_TEACHER_LOGITS: ClassVar[bool] = False
    PARAMS: ClassVar[dict[str, float]] = {"ce_weight": 1.0}
    #: Parameters that must be > 0 (the others must be >= 0).
    POSITIVE_PARAMS: ClassVar[tuple[str, ...]] = ()
    #: Parameters that take one of a few values (a switch: 0 or 1; a form: its number).
    CHOICES: ClassVar[dict[str, tuple[float, ...]]] = {}
    #: Names the parameters had in run configs written before they were named for what they weigh.
    LEGACY_PARAMS: ClassVar[dict[str, str]] = {}
    #: Outputs (fields of :class:`Outputs`) the distillation terms compare across samples: gathered once from every
    #: rank into the global batch before :meth:`distill` sees them.
    GATHERED: ClassVar[tuple[str, ...]] = ()
    #: The method compares the maps after every stage (forward_stages instead of forward_features).
    USES_STAGES: ClassVar[bool] = False
    #: The distillation terms can use unlabelled transfer images (--transfer-data); False where they need labels.
    SUPPORTS_TRANSFER: ClassVar[bool] = True

    def __init__(self, student: nn.Module, teachers: Sequence[nn.Module] = (), **params: float) -> None:
        super().__init__()
        if self.NEEDS_TEACHER and not teachers:
            raise ValueError(f"method {self.NAME!r} needs at least one teacher")
        if not self.NEEDS_TEACHER and teachers:
            raise ValueError(f"method {self.NAME!r} uses no teacher")
        self.params = self.resolve_params(params)
        self.student = student
        self.teachers = nn.ModuleList(teachers)
        self.teacher_channels = [in_channels_of(t) for t in teachers]
        for t in self.teachers:
            t.requires_grad_(False)
            t.eval()
        #: modules trained with the student (regressors, embeddings), saved in last.pt beside it
        self.heads = nn.ModuleDict()
        #: the epoch being trained (1-based), set by the trainer; schedules such as DKD's warm-up read it
        self.epoch = 1

    @classmethod
    def resolve_params(cls, params: Mapping[str, float]) -> dict[str, float]:
        """The method's defaults updated with ``params``; unknown names and bad values are a ValueError."""
        params = {cls.LEGACY_PARAMS.get(k, k): v for k, v in params.items()}
        unknown = sorted(set(params) - set(cls.PARAMS))
        if unknown:
            raise ValueError(f"method {cls.NAME!r} has no parameter {', '.join(map(repr, unknown))}; its parameters: "
                             f"{', '.join(f'{k}={v:g}' for k, v in cls.PARAMS.items())}")
        out = dict(cls.PARAMS)
        for k, v in params.items():
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            ok = ok and (v > 0 if k in cls.POSITIVE_PARAMS else v >= 0)
            if not ok:
                raise ValueError(f"{cls.NAME} parameter {k} must be a finite number "
                                 f"{'> 0' if k in cls.POSITIVE_PARAMS else '>= 0'}, got {v!r}")
            if k in cls.CHOICES and v not in cls.CHOICES[k]:
                allowed = ", ".join(f"{c:g}" for c in cls.CHOICES[k])
                raise ValueError(f"{cls.NAME} parameter {k} must be one of {allowed}, got {v!r}")
            out[k] = float(v)
        return out

    def train(self, mode: bool = True) -> Distiller:
        super().train(mode)
        for t in self.teachers:
            t.eval()
        return self

    def forward(
        self, images: Tensor, labels: Tensor, transfer_images: Tensor | None = None, indices: Tensor | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """(B, C, H, W) normalised images, (B,) labels[, (B', C, H, W) transfer images][, (W B,) the global batch's
        indices into the training set (every rank's, in rank order: methods with a memory over the training set
        need them)] -> logits, named losses."""
        n = images.shape[0]
        self.labels, self.indices = labels, indices
        if not self.teachers:
            logits = self.student(images)
            return logits, {"ce": self._ce(logits, labels)}
        both = images if transfer_images is None else torch.cat([images, transfer_images])
        student = self._outputs(self.student, both)
        logits = student.logits[:n]
        kernel_images = images
        if transfer_images is not None:
            student = Outputs(*(t[n:] for t in student[:3]), tuple(t[n:] for t in student.stages))
            kernel_images = transfer_images
        with torch.no_grad():
            teachers = [self._outputs(t, resize_channels(kernel_images, c))
                        for t, c in zip(self.teachers, self.teacher_channels, strict=True)]
        if self.GATHERED:
            student = self._gathered(student)
            teachers = [self._gathered(t) for t in teachers]
        # the losses in float32 even under autocast (which would run the kernels' matmuls in bf16)
        with torch.autocast(images.device.type, enabled=False):
            return logits, {"ce": self._ce(logits, labels), **self.distill(student, teachers)}

    def _outputs(self, net: nn.Module, x: Tensor) -> Outputs:
        if self.USES_STAGES:
            logits, pooled, stages = net.forward_stages(x)
            return Outputs(logits, pooled, stages[-1], tuple(stages))
        return Outputs(*net.forward_features(x))

    def init_epochs(self) -> int:
        """Epochs of the method's initialisation stage before distillation (0: none; FT, FSP: ``init_epochs``)."""
        return int(self.params.get("init_epochs", 0))

    def init_parameters(self) -> list[nn.Parameter]:
        """What the initialisation stage trains."""
        return []

    def init_loss(self, images: Tensor) -> Tensor:
        """The initialisation stage's loss on a batch of normalised images."""
        raise NotImplementedError(f"method {self.NAME!r} has no initialisation stage")

    def end_init(self) -> None:
        """Called once the initialisation stage is over (and after a resume past it)."""

    def _teacher_outputs(self, images: Tensor) -> list[Outputs]:
        with torch.no_grad():
            return [self._outputs(t, resize_channels(images, c)) for t, c in zip(self.teachers,
                                                                                 self.teacher_channels, strict=True)]

    @staticmethod
    def _example_images(data: ImageData) -> Tensor:
        """Two of ``data``'s training images, normalised, on the CPU: what heads are sized from."""
        return normalize(data.train_x[:2].cpu(), data.mean, data.std)

    def _example_outputs(self, data: ImageData) -> tuple[Outputs, list[Outputs]]:
        """The student's and the teachers' outputs on two of ``data``'s training images (to size heads from)."""
        example = self._example_images(data)
        with torch.no_grad():
            return self._outputs(self.student, example), [
                self._outputs(t, resize_channels(example, c)) for t, c in zip(self.teachers, self.teacher_channels,
                                                                               strict=True)]

    def _stage_pairs(self, student: Outputs, teacher: Outputs) -> list[tuple[Tensor, Tensor]]:
        """The last n stage maps of student and teacher, paired (n the smaller stage count)."""
        n = min(len(student.stages), len(teacher.stages))
        return list(zip(student.stages[-n:], teacher.stages[-n:], strict=True))

    def _gathered(self, out: Outputs) -> Outputs:
        return out._replace(**{name: global_batch(getattr(out, name)) for name in self.GATHERED})

    def _ce(self, logits: Tensor, labels: Tensor) -> Tensor:
        return self.params["ce_weight"] * F.cross_entropy(logits.float(), labels)

    def distill(self, student: Outputs, teachers: list[Outputs]) -> dict[str, Tensor]:
        """The weighted distillation terms, by name, from the student's and the teachers' outputs."""
        return {}


def _mean_over_teachers(loss, student: Tensor, teachers: list[Tensor]) -> Tensor:
    """A pairwise feature loss averaged over the teachers of an ensemble."""
    return torch.stack([loss(student, t) for t in teachers]).mean(0)


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
    PARAMS = {"ce_weight": 0.1, "kd_weight": 0.9, "temperature": 4.0}
    POSITIVE_PARAMS = ("temperature",)

    def distill(self, student: Outputs, teachers: list[Outputs]) -> dict[str, Tensor]:
        kl = kd_loss(student.logits, [t.logits for t in teachers], self.params["temperature"])
        return {"kd": self.params["kd_weight"] * kl}


class FKD(Distiller):
    """Feature Kernel Distillation: CE + lambda * D(rho_S, rho_T) + feature_reg * mean ||h_S||^2 on pooled features.

    rho is the cosine-normalised feature kernel of the batch; an ensemble's target is the mean of its teachers'
    normalised kernels (``fkd.fkd_loss``).

    Defaults lambda = 100, feature_reg = 1e-4, from a small sweep (``benchmarks/sweep_fkd_weights.py``, numbers in
    ``benchmarks/results/fkd_sweep.json``) on Fashion-MNIST: resnet20 teacher (CE, 2 epochs: 88.98%) -> resnet8
    student, 2 epochs of the standard recipe scaled (batch 64, lr 0.05 then 0.005), CPU. Test accuracy (%), seeds
    0 / 1 where two were run:

    - student alone 86.62 / 86.14; KD 87.25 / 87.01;
    - FKD, feature_reg 0: lambda 1: 85.88, 10: 87.02, 100: 87.74 / 86.85, 1000: 82.89;
    - FKD, lambda 100: feature_reg 1e-4: 87.93 / 87.62 (the best, mean 87.78), 1e-3: 87.62, 1e-2: 86.52.

    At lambda 100 the weighted kernel term (about 0.25 at the end) is of the order of the cross-entropy (0.37);
    at 1000 it dominates and costs 4 points. With ||h||^2 about 15 for resnet8 here, beta 1e-4 is a light touch
    (0.0015) and 1e-2 already hurts. Two epochs and two seeds separate lambda's order of magnitude, not finer
    steps (seed-to-seed spread about 0.5 points); other pairs and data sets may want lambda re-tuned.

    Recipe choices, as parameters (other public FKD code makes other choices: a kernel weight of 300, batch 256, a
    classifier reading the normalised features, and a regulariser on the batch's norm that it takes after the rows
    are normalised, a constant that does not act): ``reg_power`` 2 (mean ||h||^2, the default) or 1 (mean ||h||);
    ``norm_head`` 1 makes the student's classifier read its pooled features scaled to unit length (the student must
    be a zoo model; its checkpoints record it). The kernel's batch is the run's ``--batch-size``.
    """

    NAME = "fkd"
    PARAMS = {"ce_weight": 1.0, "lambda": 100.0, "feature_reg": 1e-4, "reg_power": 2.0, "norm_head": 0.0}
    CHOICES = {"reg_power": (1.0, 2.0), "norm_head": (0.0, 1.0)}
    LEGACY_PARAMS = {"beta": "feature_reg"}
    GATHERED = ("pooled",)

    def __init__(self, student: nn.Module, teachers: Sequence[nn.Module] = (), **params: float) -> None:
        super().__init__(student, teachers, **params)
        if self.params["norm_head"]:
            if not hasattr(type(student), "unit_features"):
                raise ValueError(f"fkd norm_head=1 needs a zoo model as the student, got {type(student).__name__}")
            student.unit_features = True

    def distill(self, student: Outputs, teachers: list[Outputs]) -> dict[str, Tensor]:
        return {
            "fkd": self.params["lambda"] * fkd_loss(student.pooled, [t.pooled for t in teachers]),
            "reg": self.params["feature_reg"] * feature_regularizer(student.pooled, int(self.params["reg_power"])),
        }


class SP(Distiller):
    """Similarity-Preserving KD: CE + 3000 * SP loss on the last feature map, flattened (mean over teachers)."""

    NAME = "sp"
    PARAMS = {"ce_weight": 1.0, "sp_weight": 3000.0}
    LEGACY_PARAMS = {"beta": "sp_weight"}
    GATHERED = ("fmap",)

    def distill(self, student: Outputs, teachers: list[Outputs]) -> dict[str, Tensor]:
        loss = _mean_over_teachers(sp_loss, student.fmap.flatten(1), [t.fmap.flatten(1) for t in teachers])
        return {"sp": self.params["sp_weight"] * loss}


class PKT(Distiller):
    """Probabilistic Knowledge Transfer: CE + 30000 * PKT loss on pooled features (mean over teachers)."""

    NAME = "pkt"
    PARAMS = {"ce_weight": 1.0, "pkt_weight": 30000.0}
    LEGACY_PARAMS = {"beta": "pkt_weight"}
    GATHERED = ("pooled",)

    def distill(self, student: Outputs, teachers: list[Outputs]) -> dict[str, Tensor]:
        return {"pkt": self.params["pkt_weight"] * _mean_over_teachers(pkt_loss, student.pooled,
                                                                        [t.pooled for t in teachers])}


class RKD(Distiller):
    """Relational KD: CE + 1 * (25 * distance + 50 * angle loss) on pooled features (mean over teachers)."""

    NAME = "rkd"
    PARAMS = {"ce_weight": 1.0, "rkd_weight": 1.0, "w_d": 25.0, "w_a": 50.0}
    LEGACY_PARAMS = {"beta": "rkd_weight"}
    GATHERED = ("pooled",)

    def distill(self, student: Outputs, teachers: list[Outputs]) -> dict[str, Tensor]:
        def loss(s: Tensor, t: Tensor) -> Tensor:
            return rkd_loss(s, t, w_d=self.params["w_d"], w_a=self.params["w_a"])

        return {"rkd": self.params["rkd_weight"] * _mean_over_teachers(loss, student.pooled,
                                                                        [t.pooled for t in teachers])}


class DKD(Distiller):
    """Decoupled KD: CE + warm-up x (alpha TCKD + beta NCKD) at T = 4 (mdistiller's CIFAR-100 defaults: alpha 1,
    beta 8, the weight ramped linearly over the first 20 epochs; mdistiller sets beta per pair, e.g. 6 for
    resnet32x4 -> ShuffleV1/V2 with --param beta=6). An ensemble's target is the mean of its teachers' logits."""

    NAME = "dkd"
    USES_TEACHER_LOGITS = True
    SUPPORTS_TRANSFER = False  # its target-class split needs the labels of the distilled images
    PARAMS = {"ce_weight": 1.0, "alpha": 1.0, "beta": 8.0, "temperature": 4.0, "warmup": 20.0}
    POSITIVE_PARAMS = ("temperature",)

    def distill(self, student: Outputs, teachers: list[Outputs]) -> dict[str, Tensor]:
        p = self.params
        ramp = min(self.epoch / p["warmup"], 1.0) if p["warmup"] > 0 else 1.0
        return {"dkd": ramp * dkd_loss(student.logits, [t.logits for t in teachers], self.labels, p["alpha"],
                                       p["beta"], p["temperature"])}


class AT(Distiller):
    """Attention transfer: CE + 1000 x the sum over stages of at_loss (p = 2), the last n stages of student and
    teacher paired (n the smaller count); an ensemble averages the loss over its teachers."""

    NAME = "at"
    PARAMS = {"ce_weight": 1.0, "at_weight": 1000.0, "p": 2.0}
    POSITIVE_PARAMS = ("p",)
    USES_STAGES = True

    def distill(self, student: Outputs, teachers: list[Outputs]) -> dict[str, Tensor]:
        def one(t: Outputs) -> Tensor:
            return torch.stack([at_loss(s, f, self.params["p"]) for s, f in self._stage_pairs(student, t)]).sum()

        return {"at": self.params["at_weight"] * torch.stack([one(t) for t in teachers]).mean()}


class FitNet(Distiller):
    """FitNet hints: CE + 100 x MSE between a learned regressor of the student's middle stage and the teacher's
    middle stage (conv 3x3 + BN + ReLU to the teacher's channels, the student's map pooled to the teacher's size
    first where larger); one regressor per teacher of an ensemble, the loss averaged. The regressors train with the
    student and are saved in last.pt (the trainer builds them from one batch before training)."""

    NAME = "fitnet"
    PARAMS = {"ce_weight": 1.0, "hint_weight": 100.0}
    USES_STAGES = True

    def build_heads(self, data: ImageData, seed: int = 0) -> None:
        """Create the regressors from the shapes of the maps on two of ``data``'s training images (their weights
        from torch's global generator, seeded with the run)."""
        s, ts = self._example_outputs(data)
        c_s = s.stages[len(s.stages) // 2].shape[1]
        for i, t in enumerate(ts):
            c_t = t.stages[len(t.stages) // 2].shape[1]
            self.heads[f"regressor{i}"] = nn.Sequential(nn.Conv2d(c_s, c_t, 3, 1, 1), nn.BatchNorm2d(c_t), nn.ReLU())

    def distill(self, student: Outputs, teachers: list[Outputs]) -> dict[str, Tensor]:
        hint = student.stages[len(student.stages) // 2]
        losses = []
        for i, t in enumerate(teachers):
            target = t.stages[len(t.stages) // 2]
            x = hint if hint.shape[-1] == target.shape[-1] else F.adaptive_avg_pool2d(hint, target.shape[-2:])
            losses.append(F.mse_loss(self.heads[f"regressor{i}"](x.float()), target.float()))  # outside autocast
        return {"hint": self.params["hint_weight"] * torch.stack(losses).mean()}


class CC(Distiller):
    """Correlation congruence: CE + 0.02 x cc_loss of learned linear embeddings (feat_dim = 128) of the student's
    and each teacher's pooled features, both trained with the student (the benchmark's CC); an ensemble averages the
    loss over its teachers. Consecutive samples are compared, so under torchrun over the global batch."""

    NAME = "cc"
    PARAMS = {"ce_weight": 1.0, "cc_weight": 0.02, "feat_dim": 128.0}
    POSITIVE_PARAMS = ("feat_dim",)
    GATHERED = ("pooled",)

    def build_heads(self, data: ImageData, seed: int = 0) -> None:
        s, ts = self._example_outputs(data)
        dim = int(self.params["feat_dim"])
        self.heads["embed_s"] = nn.Linear(s.pooled.shape[1], dim)
        for i, t in enumerate(ts):
            self.heads[f"embed_t{i}"] = nn.Linear(t.pooled.shape[1], dim)

    def distill(self, student: Outputs, teachers: list[Outputs]) -> dict[str, Tensor]:
        def embed(name: str, x: Tensor) -> Tensor:  # in the heads' precision (float32 under autocast)
            return self.heads[name](x.to(self.heads[name].weight.dtype))

        e_s = embed("embed_s", student.pooled)
        loss = torch.stack([cc_loss(e_s, embed(f"embed_t{i}", t.pooled)) for i, t in enumerate(teachers)]).mean()
        return {"cc": self.params["cc_weight"] * loss}


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
    PARAMS = {"ce_weight": 1.0, "vid_weight": 1.0, "init_var": 5.0}
    POSITIVE_PARAMS = ("init_var",)
    USES_STAGES = True

    def build_heads(self, data: ImageData, seed: int = 0) -> None:
        s, ts = self._example_outputs(data)
        for i, t in enumerate(ts):
            for j, (ms, mt) in enumerate(self._stage_pairs(s, t)):
                self.heads[f"vid{i}_{j}"] = _VIDHead(ms.shape[1], mt.shape[1], self.params["init_var"])

    def distill(self, student: Outputs, teachers: list[Outputs]) -> dict[str, Tensor]:
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
    PARAMS = {"ce_weight": 1.0, "nst_weight": 50.0}
    USES_STAGES = True

    def distill(self, student: Outputs, teachers: list[Outputs]) -> dict[str, Tensor]:
        def one(t: Outputs) -> Tensor:
            return torch.stack([nst_loss(s, f) for s, f in self._stage_pairs(student, t)]).sum()

        return {"nst": self.params["nst_weight"] * torch.stack([one(t) for t in teachers]).mean()}


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
    PARAMS = {"ce_weight": 1.0, "ft_weight": 200.0, "init_epochs": 30.0, "init_lr": 0.01}
    POSITIVE_PARAMS = ("init_lr",)

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

    def distill(self, student: Outputs, teachers: list[Outputs]) -> dict[str, Tensor]:
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
    PARAMS = {"ce_weight": 1.0, "init_epochs": 30.0, "init_lr": 0.05}
    POSITIVE_PARAMS = ("init_lr",)
    USES_STAGES = True

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


def _preact(net: nn.Module, x: Tensor) -> list[Tensor]:
    if not hasattr(net, "preact_stages"):
        raise ConfigError(f"ab compares pre-activation maps, which {getattr(net, 'arch', type(net).__name__)} does "
                          "not give (CIFAR ResNets, WRNs and VGGs do); pick another pair or method")
    return net.preact_stages(x)


class AB(Distiller):
    """Activation boundaries: connectors (one per paired stage, the last n of each; identity where the shapes match)
    and the student's layers (all but its classifier) are first trained for ``init_epochs`` (30) on ab_loss between
    the connected pre-activation maps of the student and the teacher's (margin 1, the benchmark's per-stage weights,
    summed; averaged over an ensemble; SGD at ``init_lr`` 0.05), then the student trains with CE alone, as in the
    benchmark, whose main stage has no AB term. Needs pre-activation maps: CIFAR ResNets, WRNs and VGGs."""

    NAME = "ab"
    PARAMS = {"ce_weight": 1.0, "init_epochs": 30.0, "init_lr": 0.05, "margin": 1.0}
    POSITIVE_PARAMS = ("init_lr", "margin")

    def build_heads(self, data: ImageData, seed: int = 0) -> None:
        example = self._example_images(data)
        with torch.no_grad():
            s = _preact(self.student, example)
            for i, (t, c) in enumerate(zip(self.teachers, self.teacher_channels, strict=True)):
                tt = _preact(t, resize_channels(example, c))
                n = min(len(s), len(tt))
                for j, (ms, mt) in enumerate(zip(s[-n:], tt[-n:], strict=True)):
                    self.heads[f"connector{i}_{j}"] = _connector(ms, mt)

    def init_parameters(self) -> list[nn.Parameter]:
        return [*_body_parameters(self.student), *self.heads.parameters()]

    def init_loss(self, images: Tensor) -> Tensor:
        s = _preact(self.student, images)
        losses = []
        for i, (t, c) in enumerate(zip(self.teachers, self.teacher_channels, strict=True)):
            with torch.no_grad():
                tt = _preact(t, resize_channels(images, c))
            n = min(len(s), len(tt))
            connected = [self.heads[f"connector{i}_{j}"](m.float()) for j, m in enumerate(s[-n:])]
            losses.append(ab_loss(connected, [m.float() for m in tt[-n:]], self.params["margin"]).sum())
        return torch.stack(losses).mean()


class ContrastMemory(nn.Module):
    """CRD's memory over the training set: one L2-normalised row per image for the student's and the teacher's
    embeddings (initialised uniform in +-sqrt(3 / dim), as in the authors' code), updated with momentum from each
    batch, the two normalisation constants (set from the first batch: mean score x N), and the draw of negatives.

    Negatives are K images of other classes than the sample's, drawn without replacement (with replacement when a
    class has fewer than K others), from a generator seeded by (seed, step): the draw is the same on every rank and
    after a resume. The step count and constants are saved with the buffers (``get_extra_state``).
    """

    def __init__(self, labels: Tensor, dim: int, negatives: int, seed: int) -> None:
        super().__init__()
        labels = labels.cpu().long()
        n, bound = labels.shape[0], math.sqrt(3.0 / dim)
        self.register_buffer("labels", labels)
        self.register_buffer("bank_s", torch.rand(n, dim) * 2 * bound - bound)
        self.register_buffer("bank_t", torch.rand(n, dim) * 2 * bound - bound)
        self.negatives, self.seed, self.step = negatives, seed, 0
        self.z: tuple[float, float] | None = None
        counts = torch.bincount(labels)
        self.with_replacement = bool(n - counts.max() < negatives)
        self.register_buffer("order", torch.argsort(labels, stable=True), persistent=False)
        self.register_buffer("counts", counts, persistent=False)
        self.register_buffer("starts", torch.cumsum(counts, 0) - counts, persistent=False)

    def get_extra_state(self) -> dict:
        return {"step": self.step, "z": self.z}

    def set_extra_state(self, state: dict) -> None:
        self.step, self.z = state["step"], None if state["z"] is None else tuple(state["z"])

    def sample(self, idx: Tensor) -> Tensor:
        """(B,) training-set indices -> (B, K+1): each index, then K negatives of other classes."""
        g = torch.Generator(device=idx.device)
        g.manual_seed(self.seed * 1_000_003 + self.step)
        y = self.labels[idx]
        n, k = self.labels.shape[0], self.negatives
        if self.with_replacement:  # uniform over the other classes' images: skip the own class's block
            u = (torch.rand(idx.shape[0], k, generator=g, device=idx.device) * (n - self.counts[y])[:, None]).long()
            pos = u + self.counts[y][:, None] * (u >= self.starts[y][:, None])
            neg = self.order[pos]
        else:
            scores = torch.rand(idx.shape[0], n, generator=g, device=idx.device)
            scores.masked_fill_(self.labels[None, :] == y[:, None], 2.0)  # never among the K smallest
            neg = scores.topk(k, largest=False).indices
        return torch.cat([idx[:, None], neg], 1)

    def forward(self, emb_s: Tensor, emb_t: Tensor, idx: Tensor, temperature: float, momentum: float) -> Tensor:
        """The CRD loss of (B, D) embeddings of the training images ``idx``; then the memory update.

        The scores come from one (B, N) product with the whole memory, then gathered at the drawn rows: on a CPU
        that is 20x faster than gathering (B, K+1, D) rows first (the published code's bmm), and the same numbers.
        """
        rows = self.sample(idx)
        scores_s = (emb_s @ self.bank_t.T).gather(1, rows)  # the student against the teacher's memory
        scores_t = (emb_t @ self.bank_s.T).gather(1, rows)
        n = self.labels.shape[0]
        if self.z is None:  # the authors' constants: mean exp-score of the first batch x N, then fixed
            with torch.no_grad():
                self.z = tuple(float(torch.exp(sc / temperature).mean() * n) for sc in (scores_s, scores_t))
        loss = crd_loss(scores_s, scores_t, *self.z, n_data=n, temperature=temperature)
        with torch.no_grad():  # out of place: the products above keep the old memory for their backward
            for name, emb in (("bank_s", emb_s), ("bank_t", emb_t)):
                bank = getattr(self, name)
                setattr(self, name, bank.index_copy(0, idx, F.normalize(bank[idx] * momentum + emb * (1 - momentum),
                                                                        dim=1)))
        self.step += 1
        return loss


class CRD(Distiller):
    """Contrastive representation distillation: CE + 0.8 x CRD loss on pooled features (RepDistiller's CIFAR-100
    weights): linear embeddings of student and teacher to 128 dimensions, L2-normalised, contrasted with 16384
    negatives from a momentum (0.5) memory over the training set at temperature 0.07. One pair of embeddings and
    one memory per teacher of an ensemble, the loss averaged. The embeddings train with the student; embeddings and
    memory are saved in last.pt. Needs the labels of the distilled images, so no --transfer-data. Under torchrun
    every rank computes the loss and the memory update on the global batch (same draws on every rank)."""

    NAME = "crd"
    SUPPORTS_TRANSFER = False  # negatives are drawn from the other classes of the training set
    PARAMS = {"ce_weight": 1.0, "crd_weight": 0.8, "feat_dim": 128.0, "negatives": 16384.0, "temperature": 0.07,
              "momentum": 0.5}
    POSITIVE_PARAMS = ("feat_dim", "negatives", "temperature")
    GATHERED = ("pooled",)

    @classmethod
    def resolve_params(cls, params: Mapping[str, float]) -> dict[str, float]:
        out = super().resolve_params(params)
        for k in ("feat_dim", "negatives"):
            if out[k] != int(out[k]):
                raise ValueError(f"crd parameter {k} must be a whole number, got {out[k]:g}")
        if out["momentum"] >= 1:
            raise ValueError(f"crd parameter momentum must be < 1 (the weight of the old memory), "
                             f"got {out['momentum']:g}")
        return out

    def build_heads(self, data: ImageData, seed: int = 0) -> None:
        """Create the embeddings (sized from the networks' pooled features) and the memories over ``data``; the
        negatives' draws are seeded by ``seed`` (the run's), the same on every rank."""
        s, ts = self._example_outputs(data)
        dim, k = int(self.params["feat_dim"]), int(self.params["negatives"])
        for i, t in enumerate(ts):
            self.heads[f"embed_s{i}"] = nn.Linear(s.pooled.shape[1], dim)
            self.heads[f"embed_t{i}"] = nn.Linear(t.pooled.shape[1], dim)
            self.heads[f"memory{i}"] = ContrastMemory(data.train_y, dim, k, seed + i)

    def distill(self, student: Outputs, teachers: list[Outputs]) -> dict[str, Tensor]:
        if self.indices is None or not len(self.heads):
            raise ValueError("crd needs its heads built over the training set (build_heads) and the batch's indices")
        p, h = self.params, self.heads

        def embed(name: str, x: Tensor) -> Tensor:  # in the heads' precision (float32 under autocast)
            return F.normalize(h[name](x.to(h[name].weight.dtype)), dim=1)

        losses = [h[f"memory{i}"](embed(f"embed_s{i}", student.pooled), embed(f"embed_t{i}", t.pooled),
                                  self.indices, p["temperature"], p["momentum"])
                  for i, t in enumerate(teachers)]
        return {"crd": p["crd_weight"] * torch.stack(losses).mean()}


#: Method name -> Distiller class: the one place a method is looked up by name.
METHODS: dict[str, type[Distiller]] = {cls.NAME: cls
                                       for cls in (CE, KD, DKD, FKD, SP, PKT, RKD, AT, FitNet, CRD, CC, VID, NST,
                                                   FT, AB, FSP)}
