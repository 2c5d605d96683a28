"""One small parameter spec, used by both packages' methods: a default, and what a value must be.

A method declares its parameters as ``{name: Param(default, ...)}``; :func:`check_params` checks a user's values
against that declaration and returns them merged with the defaults, or raises one :class:`ConfigError` line naming
the parameter and what it must be. Numbers are finite and >= 0 (> 0 with ``positive``, < ``below`` where set, whole
with ``whole``); a parameter with ``choices`` takes one of them (numbers or strings).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fkdapp.bounds import is_number
from fkdapp.errors import ConfigError
from fkdapp.jsonfile import short
from fkdapp.settings import did_you_mean


@dataclass(frozen=True)
class Param:
    """A method parameter: its default and the values it may take. A switch (:meth:`switch`) is true or false, a
    named choice one of its strings; ``legacy`` maps the numbers such a parameter was recorded as before it was
    typed (0/1) to its values, so configs written then still load."""

    default: float | str | bool
    positive: bool = False
    choices: tuple[float | str | bool, ...] = ()
    below: float | None = None
    whole: bool = False
    legacy: tuple[tuple[float, str | bool], ...] = ()

    @classmethod
    def switch(cls, default: bool) -> Param:
        """A true/false parameter (0 and 1 read as false and true, as configs recorded them before)."""
        return cls(default, choices=(True, False), legacy=((0.0, False), (1.0, True)))

    def check(self, owner: str, name: str, value: Any) -> float | str | bool:
        """``value`` as the parameter holds it (a float, or one of ``choices``); ConfigError otherwise."""
        if self.legacy and is_number(value):
            value = next((typed for number, typed in self.legacy if value == number), value)
        if self.choices and all(isinstance(c, (str, bool)) for c in self.choices):
            if not any(type(value) is type(c) and value == c for c in self.choices):
                allowed = "true or false" if isinstance(self.default, bool) else f"one of {self.choices}"
                raise ConfigError(f"{owner} parameter {name}={short(value)} must be {allowed}")
            return value
        if not is_number(value) or (value <= 0 if self.positive else value < 0):
            raise ConfigError(f"{owner} parameter {name} must be a finite number {'> 0' if self.positive else '>= 0'}"
                              f", got {value!r}")
        if self.choices and value not in self.choices:
            allowed = ", ".join(f"{c:g}" for c in self.choices)
            raise ConfigError(f"{owner} parameter {name} must be one of {allowed}, got {value!r}")
        if self.whole and value != int(value):
            raise ConfigError(f"{owner} parameter {name} must be a whole number, got {value:g}")
        if self.below is not None and value >= self.below:
            raise ConfigError(f"{owner} parameter {name} must be < {self.below:g}, got {value:g}")
        return float(value)

    def as_recorded_before(self, value: Any) -> Any:
        """``value`` as configs recorded it before this parameter was typed (a switch's 0/1); itself otherwise."""
        return next((number for number, typed in self.legacy if type(value) is type(typed) and value == typed), value)


def shown(value: float | str | bool) -> str:
    """A parameter's value as a user writes it: a switch true or false, a number as %g, a name as it is."""
    return ("true" if value else "false") if isinstance(value, bool) else f"{value:g}" if is_number(value) else \
        str(value)


def check_params(owner: str, spec: Mapping[str, Param], values: Mapping[str, Any]) -> dict[str, float | str]:
    """``values`` checked against ``spec`` (unknown names and bad values: one ConfigError line naming them)."""
    unknown = [k for k in values if k not in spec]
    if unknown:
        known = ", ".join(f"{k}={shown(p.default)}" for k, p in spec.items()) or "none"
        raise ConfigError(f"method {owner!r} has no parameter {', '.join(map(repr, unknown))}"
                          f"{did_you_mean(unknown[0], spec)}; its parameters: {known}")
    return {k: spec[k].check(owner, k, v) for k, v in values.items()}


def defaults(spec: Mapping[str, Param]) -> dict[str, float | str]:
    """Every parameter at its default."""
    return {k: p.default for k, p in spec.items()}
