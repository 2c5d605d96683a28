"""What a method needs of its run and of its models: one frozen :class:`Needs` per method, declared once on its class
(``NEEDS = Needs(...)``), and its rules, checked at two moments only: against the run's config when the run is
resolved (:meth:`Needs.check_run`, from :func:`realdata.methods.plan.resolve`) and against the built models when the
distiller is built (:meth:`Needs.check_models`, :meth:`Needs.check_teachers`).

What a model gives (:func:`gives`): "pooled" (logits, pooled features and the last map: every model), "stages" (the
maps after every stage) and "preact" (the stages' pre-activation maps); a model declares it as ``GIVES``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from torch import nn

from fkdapp.errors import ConfigError

#: How a refusal names what a model does not give.
GIVEN = {"stages": "the maps after every stage", "preact": "pre-activation maps"}


def gives(model: nn.Module) -> frozenset[str]:
    """What ``model`` declares it gives (``GIVES``; "pooled" only where it declares nothing)."""
    return frozenset(getattr(model, "GIVES", frozenset({"pooled"})))


@dataclass(frozen=True, kw_only=True)
class Needs:
    """What a method needs.

    ``teacher``: at least one teacher (False: it takes none). ``logits``: it compares the teachers' logits with the
    student's, so teachers must have the student's classes. ``student`` / ``teacher_gives``: what the student and
    each teacher must give (:func:`gives`; the teachers' default to the student's); "stages" in ``student`` also
    means the networks run ``forward_stages``. ``views``: 2 where every batch also comes as a strong view (MLKD).
    ``transfer``: it can distil unlabelled transfer images (False where its terms need labels). ``gathered``: the
    outputs (fields of :class:`~realdata.methods.base.Outputs`) it compares across samples, gathered from every
    rank into the global batch.
    """

    teacher: bool = True
    logits: bool = False
    student: frozenset[str] = frozenset({"pooled"})
    teacher_gives: frozenset[str] | None = None
    views: int = 1
    transfer: bool = True
    gathered: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        student = frozenset({"pooled", *self.student})
        object.__setattr__(self, "student", student)
        object.__setattr__(self, "teacher_gives", frozenset({"pooled", *(self.teacher_gives or student)}))
        if self.views not in (1, 2):
            raise ValueError(f"views must be 1 or 2, got {self.views}")

    @property
    def stages(self) -> bool:
        """The networks run ``forward_stages`` (the maps after every stage reach the method)."""
        return "stages" in self.student

    @property
    def maps(self) -> bool:
        """It needs more than pooled outputs of some network (stage or pre-activation maps)."""
        return len(self.student | self.teacher_gives) > 1

    def with_logits(self) -> Needs:
        """These needs with the teachers' logits compared too (a KD term added)."""
        return replace(self, logits=True)

    def check_run(self, name: str, *, teachers: int, zoo_models: bool, transfer_data: bool, transfer_size: bool,
                  optimizer: str) -> None:
        """The rules on a run (a ConfigError line each): teachers where it needs them and none where it does not,
        the zoo's models where it compares maps, transfer images only where its terms need no labels, DOT only where
        there is a distillation term to split off. ``name`` is the run's method as the user wrote it (``crd+kd``)."""
        if self.maps and not zoo_models:
            maps = " and ".join(GIVEN[m] for m in sorted((self.student | self.teacher_gives) - {"pooled"}))
            raise ConfigError(f"method {name!r} compares {maps}, which only the zoo's models give; pick another "
                              "method")
        if self.teacher and not teachers:
            raise ConfigError(f"method {name!r} needs at least one --teacher checkpoint")
        if not self.teacher and teachers:
            raise ConfigError(f"method {name!r} uses no teacher; drop --teacher or pick a distillation method")
        if transfer_data and not self.transfer:
            raise ConfigError(f"method {name!r} needs the labels of the images it distils, so it cannot use "
                              f"--transfer-data; drop it or pick another method")
        if transfer_data and not self.teacher:
            raise ConfigError(f"method {name!r} uses no teacher, so --transfer-data has nothing to transfer")
        if transfer_size and (not self.teacher or not self.transfer):
            raise ConfigError(f"method {name!r} cannot use unlabelled images; drop --transfer-size")
        if optimizer == "dot" and not self.teacher:
            raise ConfigError(f"optimizer 'dot' splits the distillation gradient from CE's; method {name!r} has no "
                              "distillation term: use the default optimizer")

    def check_models(self, name: str, student: nn.Module, teachers: Sequence[nn.Module]) -> None:
        """A ConfigError line where a teacher is missing or not wanted, or a model does not give what is needed."""
        if self.teacher and not teachers:
            raise ConfigError(f"method {name!r} needs at least one teacher")
        if not self.teacher and teachers:
            raise ConfigError(f"method {name!r} uses no teacher")
        for model, role, need in ((student, "student", self.student),
                                  *((t, "teacher", self.teacher_gives) for t in teachers)):
            missing = sorted(need - gives(model))
            if missing:
                arch = getattr(model, "arch", type(model).__name__)
                raise ConfigError(f"method {name!r} needs {' and '.join(GIVEN.get(m, m) for m in missing)} of the "
                                  f"{role}, which {arch} does not give; pick another pair or method")

    def check_teachers(self, name: str, teachers: Sequence[Any], num_classes: int, in_channels: int,
                       data_name: str) -> None:
        """One line where a loaded teacher (:class:`realdata.checkpoints.LoadedModel`) cannot teach on the data: another
        class count where logits are compared, or another channel count (1-channel images are repeated)."""
        for t in teachers:
            if self.logits and t.num_classes != num_classes:
                raise ConfigError(f"method {name!r} compares logits, but teacher {t.path} ({t.arch}) has "
                                  f"{t.num_classes} classes and {data_name} {num_classes}")
            if t.in_channels != in_channels and in_channels != 1:
                raise ConfigError(f"teacher {t.path} ({t.arch}) takes {t.in_channels}-channel images, but the images "
                                  f"here have {in_channels} channels")
