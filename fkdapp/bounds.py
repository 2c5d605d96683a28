"""A config field's range, declared once beside the field: ``epochs: int = bounded(240, low=1)``.

:func:`check_bounds` checks every bounded field of a dataclass instance (one :class:`ConfigError` line naming the
field, what it must be and the value given); what "a number" is, is said once here (:func:`is_number`): an int or
float, not a bool, finite.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from fkdapp.errors import ConfigError
from fkdapp.jsonfile import short

FLOAT32_MAX = 3.4028234e38  # a number a float32 tensor (weights, learning rates on the device) can hold
INT_MAX = 2**63 - 1  # seeds and sizes: what torch's generators and tensors index with


def is_number(value: Any) -> bool:
    """An int or a float (not a bool), finite."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_int(value: Any) -> bool:
    """An int, not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class Bounds:
    """What a field's value must be: ``kind`` "int" (>= ``low``, < 2^63), "float" (finite, float32-sized, in
    [``low``, ``high``], either end open where said), "bool", or "choice" (one of ``choices``); None passes where
    ``optional``."""

    kind: str
    low: float = 0.0
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] = ()
    optional: bool = False

    def check(self, name: str, value: Any) -> None:
        if value is None and self.optional:
            return
        if self.kind == "int" and not (is_int(value) and self.low <= value <= INT_MAX):
            raise ConfigError(f"{name} must be an integer >= {self.low:g} (and < 2^63), got {short(value)}")
        if self.kind == "float" and not self._in_range(value):
            lo = f"{'(' if self.low_open else '['}{self.low:g}"
            hi = f"{self.high:g}{')' if self.high_open else ']'}" if self.high is not None else "inf)"
            raise ConfigError(f"{name} must be a finite number in {lo}, {hi} that float32 holds, got {short(value)}")
        if self.kind == "bool" and not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false, got {short(value)}")
        if self.kind == "choice" and value not in self.choices:
            raise ConfigError(f"{name} must be {' or '.join(map(repr, self.choices))}, got {short(value)}")

    def _in_range(self, value: Any) -> bool:
        if not (is_number(value) and abs(value) <= FLOAT32_MAX):
            return False
        if not (value > self.low if self.low_open else value >= self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)


def bounded(default: Any, kind: str | None = None, **bounds: Any) -> Any:
    """A dataclass field with ``default`` and its :class:`Bounds` (``kind`` read from the default where not given:
    int, float or bool; a None default makes the field optional)."""
    if kind is None:
        kind = {bool: "bool", int: "int", float: "float"}[type(default)]
    return dataclasses.field(default=default, metadata={"bounds": Bounds(kind, optional=default is None, **bounds)})


def check_bounds(obj: Any) -> None:
    """Every bounded field of the dataclass instance ``obj``, in declaration order (the first bad one raised)."""
    for f in dataclasses.fields(obj):
        if "bounds" in f.metadata:
            f.metadata["bounds"].check(f.name, getattr(obj, f.name))
