"""What every image distillation method shares: the networks' outputs, the step context, the :class:`Distiller`
base class with its declared hooks (what a method needs of its run and models: :mod:`.needs`).

A method gets what it needs as arguments: :meth:`Distiller.distill` receives the student's and the teachers'
:class:`Outputs` and a :class:`StepContext` (labels, the batch's indices into the training set, epoch and step);
nothing is set on the method from outside. Optional steps are declared hooks with no-op defaults
(:meth:`Distiller.build_heads`, the initialisation stage's :meth:`~Distiller.init_loss` and friends).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fkdapp.params import Param, check_params, defaults
from realdata.data import ImageData, normalize, resize_channels
from realdata.data.stream import materialize
from realdata.distributed import global_batch
from realdata.methods.needs import Needs


@dataclass(frozen=True)
class InitStage:
    """A method's initialisation stage before distillation (FT's paraphraser, FSP's and AB's student stages):
    ``epochs`` of SGD at ``lr`` on :meth:`Distiller.init_loss` over :meth:`Distiller.init_parameters`."""

    epochs: int
    lr: float


def init_stage(params: Mapping[str, float | str]) -> InitStage | None:
    """The initialisation stage a method's resolved ``params`` ask for (``init_epochs`` > 0), else None."""
    epochs = int(params.get("init_epochs", 0))
    return InitStage(epochs, float(params["init_lr"])) if epochs > 0 else None


class Outputs(NamedTuple):
    """One network's outputs on a batch: logits (B, K), pooled penultimate features (B, D), last map (B, C, H, W),
    and (for methods whose needs include ``stages``) the maps after every stage."""

    logits: Tensor
    pooled: Tensor
    fmap: Tensor
    stages: tuple[Tensor, ...] = ()


@dataclass(frozen=True)
class StepContext:
    """What a training step tells a method beside the networks' outputs: this rank's labels (B,), the global batch's
    indices into the training set (W B,) (every rank's, in rank order; None outside training), the epoch being
    trained (1-based; schedules such as DKD's warm-up read it), the step within it, and for two-view methods the
    student's and the teachers' outputs on the strong view (a pass of their own, as the reference runs it)."""

    labels: Tensor
    indices: Tensor | None = None
    epoch: int = 1
    step: int = 0
    strong: tuple[Outputs, list[Outputs]] | None = None


def in_channels_of(model: nn.Module) -> int:
    """The number of image channels ``model`` takes (its first convolution's input channels)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            return m.in_channels
    raise ValueError(f"{type(model).__name__} has no convolution to read its input channels from")


class Distiller(nn.Module):
    """A student trained with cross-entropy plus the method's distillation terms from frozen ``teachers``.

    Subclasses set ``NAME``, ``SPEC`` (name -> :class:`fkdapp.params.Param`; ``PARAMS`` is derived: the defaults)
    and implement :meth:`distill`. The losses are computed in float32 outside any autocast region (the :mod:`fkd`
    functions upcast bf16 features).
    """

    NAME: ClassVar[str] = ""
    SPEC: ClassVar[dict[str, Param]] = {"ce_weight": Param(1.0)}
    #: The parameters' defaults (derived from SPEC).
    PARAMS: ClassVar[dict[str, float]] = {"ce_weight": 1.0}
    #: Names the parameters had in run configs written before they were named for what they weigh.
    LEGACY_PARAMS: ClassVar[dict[str, str]] = {}
    #: What the method needs of its run and its models, in one object (checked at config and at build time only).
    NEEDS: ClassVar[Needs] = Needs()
    #: The parameters that weigh its distillation terms: what a study scales to tune the method (DKD: both terms).
    WEIGHTS: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls.PARAMS = defaults(cls.SPEC)  # type: ignore[assignment]
        unknown = set(cls.WEIGHTS) - set(cls.SPEC)
        if unknown:
            raise TypeError(f"{cls.__name__}.WEIGHTS names no parameter of its SPEC: {sorted(unknown)}")

    def __init__(self, student: nn.Module, teachers: Sequence[nn.Module] = (), **params: float) -> None:
        super().__init__()
        self.NEEDS.check_models(self.NAME, student, teachers)
        self.params = self.resolve_params(params)
        self.student = student
        self.teachers = nn.ModuleList(teachers)
        self.teacher_channels = [in_channels_of(t) for t in teachers]
        for t in self.teachers:
            t.requires_grad_(False)
            t.eval()
        #: modules trained with the student (regressors, embeddings), saved in last.pt beside it
        self.heads = nn.ModuleDict()

    @classmethod
    def resolve_params(cls, params: Mapping[str, float]) -> dict[str, float]:
        """The method's defaults updated with ``params``; unknown names and bad values are a ConfigError (a
        ValueError) naming them (:func:`fkdapp.params.check_params`)."""
        params = {cls.LEGACY_PARAMS.get(k, k): v for k, v in params.items()}
        return {**cls.PARAMS, **check_params(cls.NAME, cls.SPEC, params)}  # type: ignore[dict-item]

    def train(self, mode: bool = True) -> Distiller:
        super().train(mode)
        for t in self.teachers:
            t.eval()
        return self

    def forward(self, images: Tensor, labels: Tensor, transfer_images: Tensor | None = None,
                indices: Tensor | None = None, epoch: int = 1, step: int = 0,
                strong_images: Tensor | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        """(B, C, H, W) normalised images, (B,) labels[, (B', C, H, W) transfer images][, (W B,) the global batch's
        indices into the training set (methods with a memory over the training set need them)], the epoch
        (1-based) and step[, (B, C, H, W) the images' strong view, for two-view methods: the networks' outputs on it
        reach the method as ``ctx.strong``] -> logits, named losses."""
        n = images.shape[0]
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
        teachers = self._teacher_outputs(kernel_images)
        # the strong view's pass after the weak one's, as MLKD's reference runs them (the student's BatchNorm
        # running statistics see the weak batch first)
        strong = None if strong_images is None else (self._outputs(self.student, strong_images),
                                                     self._teacher_outputs(strong_images))
        ctx = StepContext(labels, indices, epoch, step, strong)
        if self.NEEDS.gathered:
            student = self._gathered(student)
            teachers = [self._gathered(t) for t in teachers]
        # the losses in float32 even under autocast (which would run the kernels' matmuls in bf16)
        with torch.autocast(images.device.type, enabled=False):
            return logits, {"ce": self._ce(logits, labels), **self.distill(student, teachers, ctx)}

    def _outputs(self, net: nn.Module, x: Tensor) -> Outputs:
        if self.NEEDS.stages:
            logits, pooled, stages = net.forward_stages(x)
            return Outputs(logits, pooled, stages[-1], tuple(stages))
        return Outputs(*net.forward_features(x))

    def build_heads(self, data: ImageData, seed: int = 0) -> None:
        """Create the modules that train with the student (regressors, embeddings, memories), sized from ``data``;
        the trainer calls it once, before training, when :attr:`heads` is empty. No heads by default."""

    @property
    def init(self) -> InitStage | None:
        """The method's initialisation stage before distillation (None: none; FT, FSP, AB: ``init_epochs`` of SGD at
        ``init_lr``)."""
        return init_stage(self.params)

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
        return normalize(materialize(data.train_x[:2]).cpu(), data.mean, data.std)

    def _example_outputs(self, data: ImageData) -> tuple[Outputs, list[Outputs]]:
        """The student's and the teachers' outputs on two of ``data``'s training images (to size heads from)."""
        example = self._example_images(data)
        with torch.no_grad():
            return self._outputs(self.student, example), self._teacher_outputs(example)

    def _stage_pairs(self, student: Outputs, teacher: Outputs) -> list[tuple[Tensor, Tensor]]:
        """The last n stage maps of student and teacher, paired (n the smaller stage count)."""
        n = min(len(student.stages), len(teacher.stages))
        return list(zip(student.stages[-n:], teacher.stages[-n:], strict=True))

    def _gathered(self, out: Outputs) -> Outputs:
        return out._replace(**{name: global_batch(getattr(out, name)) for name in self.NEEDS.gathered})

    def _ce(self, logits: Tensor, labels: Tensor) -> Tensor:
        return self.params["ce_weight"] * F.cross_entropy(logits.float(), labels)

    def distill(self, student: Outputs, teachers: list[Outputs], ctx: StepContext) -> dict[str, Tensor]:
        """The weighted distillation terms, by name, from the student's and the teachers' outputs."""
        return {}


def mean_over_teachers(loss, student: Tensor, teachers: list[Tensor]) -> Tensor:
    """A pairwise feature loss averaged over the teachers of an ensemble."""
    return torch.stack([loss(student, t) for t in teachers]).mean(0)
