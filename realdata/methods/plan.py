"""One place where a run is resolved: ``resolve(config) -> RunPlan``.

A :class:`~realdata.config.TrainConfig` holds fields and their ranges; what the run's method makes of them is
decided here, once: the method class (``NAME+kd`` composed), its typed parameters (defaults filled in, old names
read), its :class:`~realdata.methods.needs.Needs` checked against the config, the initialisation stage, the weights a
study tunes, and the config as the run records it (``plan.config``: parameters complete, ``strong_view`` as the
method trains). The trainer, the CLI, the reports and the studies read the plan; the built models are checked
against ``plan.needs`` once, when the distiller is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fkdapp.errors import ConfigError
from fkdapp.jsonfile import short
from fkdapp.settings import did_you_mean
from realdata.methods import METHODS
from realdata.methods.base import Distiller, InitStage, init_stage
from realdata.methods.needs import Needs
from realdata.models import is_spec

if TYPE_CHECKING:
    from realdata.config import TrainConfig


@dataclass(frozen=True)
class RunPlan:
    """A run as resolved: its config as recorded, the method class and parameters, what the method needs, its
    initialisation stage (None: none) and the parameters a study scales to tune its weight."""

    config: TrainConfig
    method: type[Distiller]
    params: dict[str, float | str]
    needs: Needs
    init: InitStage | None
    weights: tuple[str, ...]

    def distiller(self, student, teachers) -> Distiller:
        """The method around ``student`` and the frozen ``teachers`` (checked against :attr:`needs`)."""
        return self.method(student, teachers, **self.params)


def method_class(name: str) -> type[Distiller]:
    """The method called ``name`` (``NAME+kd``: NAME with KD added); a ConfigError with a did-you-mean otherwise."""
    if not isinstance(name, str) or name not in METHODS:
        hint = did_you_mean(name, METHODS) if isinstance(name, str) and len(name) < 100 else ""
        raise ConfigError(f"unknown method {short(name)}{hint or '; choose one of: ' + ', '.join(METHODS)}")
    return METHODS[name]


def resolve(config: TrainConfig) -> RunPlan:
    """``config``'s run, decided once (one ConfigError line for a method the config cannot run)."""
    method = method_class(config.method)
    needs = method.NEEDS
    zoo = not any(is_spec(a) for a in (config.model, *(a for a in config.teacher_archs if a)))
    needs.check_run(config.method, teachers=len(config.teachers), zoo_models=zoo,
                    transfer_data=config.transfer_data is not None, transfer_size=config.transfer_size is not None,
                    optimizer=config.optimizer)
    params = method.resolve_params(config.params)
    recorded = config.with_updates(params=params, strong_view=needs.views == 2)
    return RunPlan(recorded, method, params, needs, init_stage(params), method.WEIGHTS)
