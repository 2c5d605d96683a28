"""What every image distillation method shares: the networks' outputs, the step context, the :class:`Distiller`
base class with its declared hooks, and the compatibility check of a method with its models.

A method gets what it needs as arguments: :meth:`Distiller.distill` receives the student's and the teachers'
:class:`Outputs` and a :class:`StepContext` (labels, the batch's indices into the training set, epoch and step);
nothing is set on the method from outside. Optional steps are declared hooks with no-op defaults
(:meth:`Distiller.build_heads`, the initialisation stage's :meth:`~Distiller.init_epochs` and friends).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fkdapp.errors import ConfigError
from fkdapp.params import Param, check_params, defaults
from realdata.data import ImageData, normalize, resize_channels
from realdata.distributed import global_batch


class Outputs(NamedTuple):
    """One network's outputs on a batch: logits (B, K), pooled penultimate features (B, D), last map (B, C, H, W),
    and (for methods that set ``USES_STAGES``) the maps after every stage."""

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


def gives(model: nn.Module) -> frozenset[str]:
    """What a model declares it gives: "pooled" (logits, pooled features and the last map: every model), "stages"
    (the maps after every stage) and "preact" (the stages' pre-activation maps). Models without a declaration give
    "pooled" only."""
    return frozenset(getattr(model, "GIVES", frozenset({"pooled"})))


def check_compatible(method: type[Distiller], model: nn.Module, role: str) -> None:
    """A one-line ConfigError where ``model`` (the student or a teacher) does not give what ``method`` needs."""
    missing = sorted((method.TEACHER_NEEDS if role == "teacher" else method.NEEDS) - gives(model))
    if missing:
        arch = getattr(model, "arch", type(model).__name__)
        what = {"stages": "the maps after every stage", "preact": "pre-activation maps"}
        raise ConfigError(f"method {method.NAME!r} needs {' and '.join(what.get(m, m) for m in missing)} of the "
                          f"{role}, which {arch} does not give; pick another pair or method")


class Distiller(nn.Module):
    """A student trained with cross-entropy plus the method's distillation terms from frozen ``teachers``.

    Subclasses set ``NAME``, ``SPEC`` (name -> :class:`fkdapp.params.Param`; ``PARAMS`` is derived: the defaults)
    and implement :meth:`distill`. The losses are computed in float32 outside any autocast region (the :mod:`fkd`
    functions upcast bf16 features).
    """

    NAME: ClassVar[str] = ""
    NEEDS_TEACHER: ClassVar[bool] = True
    #: The distillation term compares logits, so teachers must have the student's classes.
    USES_TEACHER_LOGITS: ClassVar[bool] = False
    SPEC: ClassVar[dict[str, Param]] = {"ce_weight": Param(1.0)}
    #: The parameters' defaults (derived from SPEC).
    PARAMS: ClassVar[dict[str, float]] = {"ce_weight": 1.0}
    #: Names the parameters had in run configs written before they were named for what they weigh.
    LEGACY_PARAMS: ClassVar[dict[str, str]] = {}
    #: Outputs (fields of :class:`Outputs`) the distillation terms compare across samples: gathered once from every
    #: rank into the global batch before :meth:`distill` sees them.
    GATHERED: ClassVar[tuple[str, ...]] = ()
    #: The method compares the maps after every stage (forward_stages instead of forward_features).
    USES_STAGES: ClassVar[bool] = False
    #: What the method needs of its student and of its teachers (see :func:`gives`; the teachers' default to the
    #: student's); checked once, when the distiller is built.
    NEEDS: ClassVar[frozenset[str]] = frozenset({"pooled"})
    TEACHER_NEEDS: ClassVar[frozenset[str]] = frozenset({"pooled"})
    #: The distillation terms can use unlabelled transfer images (--transfer-data); False where they need labels.
    SUPPORTS_TRANSFER: ClassVar[bool] = True
    #: 2: the method trains on a weak and a strong view of every image (MLKD): the trainer then gives every batch a
    #: strong view (the run's config says so: ``strong_view``), whose outputs reach :meth:`distill` as ``ctx.strong``.
    VIEWS: ClassVar[int] = 1

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls.PARAMS = defaults(cls.SPEC)  # type: ignore[assignment]
        if cls.USES_STAGES and "stages" not in cls.NEEDS:
            cls.NEEDS = cls.NEEDS | {"stages"}
        if "TEACHER_NEEDS" not in cls.__dict__:
            cls.TEACHER_NEEDS = cls.NEEDS

    def __init__(self, student: nn.Module, teachers: Sequence[nn.Module] = (), **params: float) -> None:
        super().__init__()
        if self.NEEDS_TEACHER and not teachers:
            raise ValueError(f"method {self.NAME!r} needs at least one teacher")
        if not self.NEEDS_TEACHER and teachers:
            raise ValueError(f"method {self.NAME!r} uses no teacher")
        self.params = self.resolve_params(params)
        for model, role in ((student, "student"), *((t, "teacher") for t in teachers)):
            check_compatible(type(self), model, role)
        self.student = student
        self.teachers = nn.ModuleList(teachers)
        self.teacher_channels = [in_channels_of(t) for t in teachers]
        for t in self.teachers:
            t.requires_grad_(False)
            t.eval()
        #: modules trained with the student (regressors, embeddings), saved in last.pt beside it
        self.heads = nn.ModuleDict()

    @classmethod
    def check_run(cls, name: str, *, teachers: int, zoo_models: bool, transfer_data: bool, transfer_size: bool,
                  optimizer: str) -> None:
        """The method's rules on a run (a ConfigError line each, raised where the run's config is built): teachers
        where it needs them and none where it does not, the zoo's models where it compares stage maps, transfer
        images only where its terms need no labels, DOT only where there is a distillation term to split off.
        ``name`` is the run's method as the user wrote it (``crd+kd``)."""
        if cls.USES_STAGES and not zoo_models:
            raise ConfigError(f"method {name!r} compares the maps after every stage, which only the zoo's models "
                              "give; pick another method")
        if cls.NEEDS_TEACHER and not teachers:
            raise ConfigError(f"method {name!r} needs at least one --teacher checkpoint")
        if not cls.NEEDS_TEACHER and teachers:
            raise ConfigError(f"method {name!r} uses no teacher; drop --teacher or pick a distillation method")
        if transfer_data and not cls.SUPPORTS_TRANSFER:
            raise ConfigError(f"method {name!r} needs the labels of the images it distils, so it cannot use "
                              f"--transfer-data; drop it or pick another method")
        if transfer_data and not cls.NEEDS_TEACHER:
            raise ConfigError(f"method {name!r} uses no teacher, so --transfer-data has nothing to transfer")
        if transfer_size and (not cls.NEEDS_TEACHER or not cls.SUPPORTS_TRANSFER):
            raise ConfigError(f"method {name!r} cannot use unlabelled images; drop --transfer-size")
        if optimizer == "dot" and not cls.NEEDS_TEACHER:
            raise ConfigError(f"optimizer 'dot' splits the distillation gradient from CE's; method {name!r} has no "
                              "distillation term: use the default optimizer")

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
        (1-based) and step[, (B, C, H, W) the images' strong view, for two-view methods] -> logits, named losses."""
        n = images.shape[0]
        if not self.teachers:
            logits = self.student(images)
            return logits, {"ce": self._ce(logits, labels)}
        strong = None
        if self.VIEWS == 2:
            if strong_images is None:
                raise ValueError(f"method {self.NAME!r} trains on two views: pass the batch's strong view as "
                                 "strong_images")
            strong = (self._outputs(self.student, strong_images), self._teacher_outputs(strong_images))
        ctx = StepContext(labels, indices, epoch, step, strong)
        both = images if transfer_images is None else torch.cat([images, transfer_images])
        student = self._outputs(self.student, both)
        logits = student.logits[:n]
        kernel_images = images
        if transfer_images is not None:
            student = Outputs(*(t[n:] for t in student[:3]), tuple(t[n:] for t in student.stages))
            kernel_images = transfer_images
        teachers = self._teacher_outputs(kernel_images)
        if self.GATHERED:
            student = self._gathered(student)
            teachers = [self._gathered(t) for t in teachers]
        # the losses in float32 even under autocast (which would run the kernels' matmuls in bf16)
        with torch.autocast(images.device.type, enabled=False):
            return logits, {"ce": self._ce(logits, labels), **self.distill(student, teachers, ctx)}

    def _outputs(self, net: nn.Module, x: Tensor) -> Outputs:
        if self.USES_STAGES:
            logits, pooled, stages = net.forward_stages(x)
            return Outputs(logits, pooled, stages[-1], tuple(stages))
        return Outputs(*net.forward_features(x))

    def build_heads(self, data: ImageData, seed: int = 0) -> None:
        """Create the modules that train with the student (regressors, embeddings, memories), sized from ``data``;
        the trainer calls it once, before training, when :attr:`heads` is empty. No heads by default."""

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
            return self._outputs(self.student, example), self._teacher_outputs(example)

    def _stage_pairs(self, student: Outputs, teacher: Outputs) -> list[tuple[Tensor, Tensor]]:
        """The last n stage maps of student and teacher, paired (n the smaller stage count)."""
        n = min(len(student.stages), len(teacher.stages))
        return list(zip(student.stages[-n:], teacher.stages[-n:], strict=True))

    def _gathered(self, out: Outputs) -> Outputs:
        return out._replace(**{name: global_batch(getattr(out, name)) for name in self.GATHERED})

    def _ce(self, logits: Tensor, labels: Tensor) -> Tensor:
        return self.params["ce_weight"] * F.cross_entropy(logits.float(), labels)

    def distill(self, student: Outputs, teachers: list[Outputs], ctx: StepContext) -> dict[str, Tensor]:
        """The weighted distillation terms, by name, from the student's and the teachers' outputs."""
        return {}


def mean_over_teachers(loss, student: Tensor, teachers: list[Tensor]) -> Tensor:
    """A pairwise feature loss averaged over the teachers of an ensemble."""
    return torch.stack([loss(student, t) for t in teachers]).mean(0)
