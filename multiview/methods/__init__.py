"""Student methods of the simulation: one small class each, and the name -> class registry.

A method is defined once, here: its name, its parameters and their defaults, the weight of its distillation term
for a student of E teachers at k classes, the no-teacher run its "own views" are read from, its label and colour in
figures, and its loss term on a group of students (batched: one call for every student of the method).
No other module compares a method name with a string; they ask :data:`METHODS` or a :class:`StudentMethod`.

A method is named by a *spec*: ``"fkd"``, or with parameters ``"fkd:lambda=20,feature_reg=0.01"``. Parameters
come from the class defaults, then the config's ``method_params`` (``--set fkd.lambda=20``), then the spec.

Adding a method: one subclass in the file of its family (base, fkd, logit, relational) with ``NAME``, ``SPEC``,
``weight`` and ``loss`` (``prepare`` when it precomputes teacher targets), added to :data:`METHODS`, plus its tests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fkdapp.errors import ConfigError
from fkdapp.settings import did_you_mean
from multiview.methods.base import CE, Batch, StudentMethod, Targets, with_teachers
from multiview.methods.fkd import FKD, FKDAdd, FKDOracle, FKDRaw, FKDWarm
from multiview.methods.logit import DKD, KD
from multiview.methods.relational import PKT, RKD, SP, Relational
from multiview.methods.union import FKDClass, FKDKDMax, KDMax

#: A config's per-method parameters (``Config.method_params``): method name -> {parameter: value}.
MethodParams = Mapping[str, Mapping[str, Any]]

#: Method name -> class: the one place a simulation method is looked up by name.
METHODS: dict[str, type[StudentMethod]] = {
    cls.NAME: cls for cls in (FKD, FKDRaw, FKDWarm, FKDAdd, FKDOracle, KD, DKD, SP, PKT, RKD, CE, KDMax, FKDClass,
                              FKDKDMax)
}


def parse_method(spec: str, method_params: MethodParams | None = None) -> StudentMethod:
    """``"fkd"`` or ``"fkd:lambda=20,feature_reg=0.01"`` -> the method, its parameters from the class defaults,
    then ``method_params`` (a config's, ``cfg.method_params``), then the spec. A ConfigError (one line) names an
    unknown method or parameter."""
    name, _, rest = spec.strip().partition(":")
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}{did_you_mean(name, METHODS)}; choose from {', '.join(METHODS)}")
    params: dict[str, Any] = dict(method_params.get(name, {})) if method_params is not None else {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"method spec {spec!r}: write parameters as NAME=VALUE, e.g. fkd:lambda=20")
        try:
            params[key.strip()] = float(value)
        except ValueError:
            params[key.strip()] = value.strip()
    return METHODS[name](**params)


def split_specs(text: str) -> list[str]:
    """``"fkd:lambda=20,feature_reg=0.01,kd,ce"`` -> ``["fkd:lambda=20,feature_reg=0.01", "kd", "ce"]``: an item
    holding ``=`` but no ``:`` is one more parameter of the spec before it."""
    out: list[str] = []
    for item in (t.strip() for t in text.split(",")):
        if "=" in item and ":" not in item and out:
            out[-1] += "," + item
        elif item:
            out.append(item)
    return out


def parse_methods(specs: Sequence[str] | str, method_params: MethodParams | None = None) -> list[StudentMethod]:
    """A comma list (``"fkd,kd:kd_weight=10,ce"``) or a sequence of specs -> methods; ``"all"`` is every
    registered method at its defaults. A method given twice is a ConfigError."""
    items = split_specs(specs) if isinstance(specs, str) else [s.strip() for s in specs]
    if items == ["all"]:
        items = list(METHODS)
    methods = [parse_method(s, method_params) for s in items]
    specs_seen = [m.spec for m in methods]
    twice = sorted({s for s in specs_seen if specs_seen.count(s) > 1})
    if twice:
        raise ConfigError(f"method(s) {', '.join(twice)} given twice; list each once")
    if not methods:
        raise ConfigError("no method given; e.g. --methods fkd,kd,ce")
    return methods


__all__ = ["CE", "DKD", "FKD", "KD", "METHODS", "PKT", "RKD", "SP", "Batch", "FKDAdd", "FKDClass", "FKDKDMax",
           "FKDOracle", "FKDRaw", "FKDWarm", "KDMax", "Relational", "StudentMethod", "Targets", "parse_method",
           "parse_methods", "split_specs", "with_teachers"]
