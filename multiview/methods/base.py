"""What every simulation method shares: the teachers' targets, one step's batch, the :class:`StudentMethod` base
class and CE (no teacher)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from fkdapp.params import Param, check_params, defaults, shown

if TYPE_CHECKING:
    pass


@dataclass(frozen=True)
class Targets:
    """What the teachers offer on the samples the distillation terms see (the training set, then the transfer set):
    features (E_max, N, D) and logits (E_max, N, k); ``union_h`` (E_max, N, 2D): row e - 1 the features of the
    oracle union of the first e teachers (:func:`multiview.population.union_network`), None unless a method of the
    run sets ``USES_UNION``."""

    h: torch.Tensor
    logits: torch.Tensor
    union_h: torch.Tensor | None = None


@dataclass(frozen=True)
class Batch:
    """One step's inputs to a method's loss, for the G students of its group.

    h (G, B, D) features and f (G, B, k) logits on the batch, whose indices are ``index`` (B,) (into the training
    set, then the transfer set) and labels ``labels`` (B,) (-1: a transfer sample, unlabelled); h_sub (G, B', D)
    the features on the kernel's subsample ``sub`` (B',) (the whole batch unless ``Config.kernel_batch`` is set).
    """

    h: torch.Tensor
    f: torch.Tensor
    index: torch.Tensor
    h_sub: torch.Tensor
    sub: torch.Tensor
    labels: torch.Tensor
    step: int = 0


class StudentMethod:
    """A student's objective beyond cross-entropy; instances are immutable and compare by (name, params)."""

    NAME: ClassVar[str] = ""
    LABEL: ClassVar[str] = ""
    COLOR: ClassVar[str] = "C7"
    #: "none" (CE alone), "logit" (compares logits) or "relational" (compares feature kernels of the batch)
    FAMILY: ClassVar[str] = "none"
    #: name -> :class:`fkdapp.params.Param`: each parameter declared once (numbers >= 0 unless said otherwise)
    SPEC: ClassVar[dict[str, Param]] = {}
    #: the parameters' defaults (derived from SPEC)
    DEFAULTS: ClassVar[dict[str, Any]] = {}
    #: the parameter that scales the distillation term (what a weight grid varies)
    WEIGHT: ClassVar[str] = ""
    #: a schedule of another method's loss (not a loss family of its own), e.g. fkd-warm of fkd
    VARIANT_OF: ClassVar[str] = ""
    USES_TEACHERS: ClassVar[bool] = True
    #: the method's targets need the oracle union of the teachers (``Targets.union_h``), computed only then
    USES_UNION: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.DEFAULTS = defaults(cls.SPEC)

    def __init__(self, **params: Any) -> None:
        self.params: dict[str, Any] = {**self.DEFAULTS, **self.check_params(params)}

    @classmethod
    def check_params(cls, params: Mapping[str, Any]) -> dict[str, Any]:
        """``params`` checked against the method's SPEC (ConfigError, one line, otherwise)."""
        return check_params(cls.NAME, cls.SPEC, params)

    def with_params(self, **params: Any) -> StudentMethod:
        """The same method with some parameters changed."""
        return type(self)(**{**self.params, **params})

    @property
    def spec(self) -> str:
        """The method's name with the parameters that differ from its defaults: ``fkd:lambda=20``."""
        diff = [f"{k}={shown(v)}" for k, v in self.params.items() if v != self.DEFAULTS[k]]
        return self.NAME + (":" + ",".join(diff) if diff else "")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StudentMethod) and (self.NAME, self.params) == (other.NAME, other.params)

    def __hash__(self) -> int:
        return hash((self.NAME, tuple(sorted(self.params.items()))))

    def __repr__(self) -> str:
        return f"<{self.spec}>"

    def weight(self, teachers: int, k: int) -> float:
        """The weight of the distillation term for a student of ``teachers`` teachers at ``k`` classes."""
        return 0.0

    def own_lottery(self) -> StudentMethod:
        """The no-teacher run a student's own views are read from: its objective at E = 0 (CE for most)."""
        return CE()

    def balance(self, teachers: int, step: int) -> float:
        """c > 0: the training loop rescales this term's gradient to c times the norm of CE's at this step."""
        return 0.0

    def ce_scale(self, step: int) -> float:
        """The weight of cross-entropy at this step (1: always, for most methods)."""
        return 1.0

    def prepare(self, targets: Targets, counts: Sequence[int]) -> Any:
        """Teacher targets for a group of students with ``counts`` teachers each (computed once per training)."""
        return None

    def loss(self, batch: Batch, prepared: Any, weights: torch.Tensor, counts: Sequence[int]) -> torch.Tensor:
        """The weighted distillation term (G,) of the group's G students (their weights (G,), teacher counts)."""
        return torch.zeros_like(weights)


class CE(StudentMethod):
    """Cross-entropy alone: the no-teacher reference, every student's own lottery."""

    NAME, LABEL, COLOR = "ce", "ce (no teacher)", "C7"
    USES_TEACHERS = False


def with_teachers(counts: Sequence[int], device: torch.device) -> torch.Tensor:
    """Positions (G',) of the students that have teachers, in the order of ``prepare``'s targets."""
    return torch.tensor([i for i, e in enumerate(counts) if e], dtype=torch.long, device=device)
