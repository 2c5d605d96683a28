"""The simulation's tiny problems, declared once: ``SMOKE`` runs every code path in seconds (views are not really
learned there), ``LOTTERY`` is the smallest problem where networks do win the per-class lottery and learn views
(k = 6 classes in 64 dimensions). A test that needs other lengths says so beside the size it starts from
(``{**SMOKE, "max_steps": 300}``); ``as_set`` and ``as_overrides`` give them as command-line ``--set`` flags and as
``KEY=VALUE`` overrides."""

from typing import Any

SMOKE: dict[str, Any] = {"k": 4, "d": 32, "P": 8, "n_train": 60, "n_test": 60, "m": 2, "max_steps": 40,
                         "student_steps": 20}
LOTTERY: dict[str, Any] = {"k": 6, "d": 64, "P": 8, "n_train": 200, "n_test": 500, "m": 4, "student_steps": 150,
                           "max_steps": 300, "sigma_p": 0.0875, "sigma_0": 0.012}


def as_overrides(size: dict[str, Any]) -> list[str]:
    """``{"k": 4, ...}`` -> ``["k=4", ...]`` (``Config.with_overrides``, a study's ``extra``)."""
    return [f"{k}={v}" for k, v in size.items()]


def as_set(size: dict[str, Any]) -> list[str]:
    """``{"k": 4, ...}`` -> ``["--set", "k=4", ...]`` (a command's flags)."""
    return [a for o in as_overrides(size) for a in ("--set", o)]
