"""One place where a run is resolved: ``resolve(config) -> RunPlan``.

A :class:`~realdata.config.TrainConfig` holds fields and their ranges; what the run's method makes of them is
decided here, once: the method class (``NAME+kd`` composed), its typed parameters (defaults filled in, old names
read), its :class:`~realdata.methods.needs.Needs` checked against the config, and the config as the run records it
(``plan.config``: parameters complete, ``strong_view`` as the method trains). The CLI resolves a config when it
builds one, ``run_training`` and the reproduction before they run it; the built models are checked against
``plan.needs`` once, when the distiller is built. A recorded run is read as now too (:func:`as_resolved`,
:func:`identities`), so runs recorded before a method's switches were typed resume.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fkdapp.errors import ConfigError
from fkdapp.jsonfile import short
from fkdapp.settings import did_you_mean
from realdata.methods import METHODS
from realdata.methods.base import Distiller
from realdata.methods.compose import SUFFIX, with_kd
from realdata.methods.needs import Needs
from realdata.models import is_spec

if TYPE_CHECKING:
    from realdata.config import TrainConfig


@dataclass(frozen=True)
class RunPlan:
    """A run as resolved: its config as the run records it (the method's parameters complete, ``strong_view`` as
    the method trains) and the method class; what the method needs and its parameters are read from these two.
    The initialisation stage is the built distiller's (:attr:`Distiller.init`), the weights a study tunes the
    class's ``WEIGHTS``."""

    config: TrainConfig
    method: type[Distiller]

    @property
    def needs(self) -> Needs:
        return self.method.NEEDS

    @property
    def params(self) -> dict[str, float | str]:
        return self.config.params

    def distiller(self, student, teachers) -> Distiller:
        """The method around ``student`` and the frozen ``teachers`` (checked against :attr:`needs`)."""
        return self.method(student, teachers, **self.params)


def method_class(name: str) -> type[Distiller]:
    """The method called ``name`` (``NAME+kd``: NAME with KD added, :func:`~realdata.methods.compose.with_kd`); a
    ConfigError with a did-you-mean otherwise."""
    base = name.removesuffix(SUFFIX) if isinstance(name, str) else name
    if not isinstance(base, str) or base not in METHODS:
        hint = did_you_mean(name, METHODS) if isinstance(name, str) and len(name) < 100 else ""
        raise ConfigError(f"unknown method {short(name)}{hint or '; choose one of: ' + ', '.join(METHODS)}")
    return with_kd(METHODS[base]) if base != name else METHODS[base]


def identities(config: TrainConfig) -> set[str]:
    """The digests a checkpoint of ``config``'s run may carry: its own, and where its method has typed switches
    (``norm_head``, ``logit_stand``, fkd-add's ``target``), the one it had when they were recorded as numbers, so a
    run begun before they were typed still resumes and evaluates."""
    try:
        spec = method_class(config.method).SPEC
    except ConfigError:
        return {config.digest()}
    before = {k: spec[k].as_recorded_before(v) if k in spec else v for k, v in config.params.items()}
    return {config.digest(), config.with_updates(params=before).digest()}


def as_resolved(config: TrainConfig) -> TrainConfig:
    """``config`` as a run records it now (:func:`resolve`; a recorded run's switches typed), or as it is where its
    method is unknown here."""
    try:
        return resolve(config).config
    except ConfigError:
        return config


def resolve(config: TrainConfig) -> RunPlan:
    """``config``'s run, decided once (one ConfigError line for a method the config cannot run). A ``kd_weight``
    given to a method without one of its own (``--kd-weight W`` beside crd) adds a KD term: the plan's method is
    ``NAME+kd``, and the recorded config names it so."""
    method = method_class(config.method)
    if "kd_weight" in config.params and "kd_weight" not in method.SPEC:
        method = with_kd(method)
        config = config.with_updates(method=method.NAME)
    needs = method.NEEDS
    zoo = not any(is_spec(a) for a in (config.model, *(a for a in config.teacher_archs if a)))
    needs.check_run(config.method, teachers=len(config.teachers), zoo_models=zoo,
                    transfer_data=config.transfer_data is not None, transfer_size=config.transfer_size is not None,
                    optimizer=config.optimizer)
    recorded = config.with_updates(params=method.resolve_params(config.params), strong_view=needs.views == 2)
    return RunPlan(recorded, method)
