"""Compositions of a method with another term: "X + KD", as the benchmark reports its "X+KD" rows (CRD's Table 1:
CE at X's weight, plus 1 x KD at T = 4, plus X's own term).

The run's plan decides it (:func:`realdata.methods.plan.resolve`): ``--method crd+kd``, or a ``kd_weight`` given to a
method that has none of its own (``--kd-weight W``), trains ``X`` with a KD term added; the run's config records the
composed name (``crd+kd``) and its two extra parameters, ``kd_weight`` and ``kd_temperature``.
"""

from __future__ import annotations

from functools import cache

from torch import Tensor

from fkd import kd_loss
from fkdapp.errors import ConfigError
from fkdapp.params import Param
from realdata.methods.base import Distiller, Outputs, StepContext

SUFFIX = "+kd"


@cache
def with_kd(base: type[Distiller]) -> type[Distiller]:
    """``base`` with ``kd_weight`` x T^2 KL(teacher || student) at ``kd_temperature`` added to its terms (the mean
    teacher logits of an ensemble). A ConfigError for a method without teachers or one that already is KD."""
    if not base.NEEDS.teacher:
        raise ConfigError(f"method {base.NAME!r} uses no teacher, so {base.NAME}{SUFFIX} has no KD term to add")
    if "kd_weight" in base.SPEC or base.NAME.endswith(SUFFIX):
        raise ConfigError(f"method {base.NAME!r} already has a KD term; {base.NAME}{SUFFIX} would add a second")

    class PlusKD(base):  # type: ignore[valid-type, misc]
        __doc__ = f"{base.NAME} with a KD term added (the benchmark's '{base.NAME.upper()}+KD' row)."
        NAME = base.NAME + SUFFIX
        NEEDS = base.NEEDS.with_logits()
        SPEC = {**base.SPEC, "kd_weight": Param(1.0), "kd_temperature": Param(4.0, positive=True)}

        def distill(self, student: Outputs, teachers: list[Outputs], ctx: StepContext) -> dict[str, Tensor]:
            kd = kd_loss(student.logits, [t.logits for t in teachers], self.params["kd_temperature"])
            return {**super().distill(student, teachers, ctx), "kd": self.params["kd_weight"] * kd}

    PlusKD.__name__ = PlusKD.__qualname__ = f"{base.__name__}PlusKD"
    return PlusKD
