"""A config field's range declared with the field (fkdapp.bounds): each kind accepts what it says and refuses the
rest in one line; every number and switch of TrainConfig is declared so."""

import dataclasses
import math
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fkdapp.bounds import Bounds, bounded, check_bounds, is_number
from fkdapp.errors import ConfigError
from realdata.config import TrainConfig


@dataclass(frozen=True)
class Example:
    size: int | None = bounded(None, "int", low=1)
    rate: float = bounded(0.5, low_open=True, high=1.0)
    on: bool = bounded(False)
    how: str = bounded("a", "choice", choices=("a", "b"))

    def __post_init__(self) -> None:
        check_bounds(self)


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_a_float_field_takes_exactly_its_interval(x):
    inside = 0.0 < x <= 1.0
    if inside:
        assert Example(rate=x).rate == x
    else:
        with pytest.raises(ConfigError, match=r"rate must be a finite number in \(0, 1\] that float32 holds"):
            Example(rate=x)


def test_each_kind_refuses_in_one_line():
    assert Example().size is None and Example(size=3).size == 3
    for bad, message in (({"size": 0}, "size must be an integer >= 1"), ({"size": True}, "size must be an integer"),
                         ({"size": 2.0}, "size must be an integer"), ({"on": 1}, "on must be true or false"),
                         ({"how": "c"}, "how must be 'a' or 'b', got 'c'"), ({"rate": "0.5"}, "rate must be a finite")):
        with pytest.raises(ConfigError, match=message):
            Example(**bad)
    with pytest.raises(ConfigError, match="that float32 holds"):
        Bounds("float").check("x", 3.5e38)
    assert is_number(1) and is_number(1.5) and not is_number(True) and not is_number(math.inf)


def test_every_number_and_switch_of_a_run_is_declared_with_its_range():
    scalar = ("int", "float", "bool")
    for f in dataclasses.fields(TrainConfig):
        heads = {t.strip().split("[")[0] for t in str(f.type).split("|")}
        if heads & set(scalar) and not heads & {"tuple", "dict"}:
            assert "bounds" in f.metadata, f"TrainConfig.{f.name} has no declared range"
