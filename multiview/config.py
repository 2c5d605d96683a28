"""One validated configuration for the multi-view simulation: data, network, training and distillation."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from fkdapp.bounds import is_int, is_number
from fkdapp.errors import ConfigError
from fkdapp.runtime import atomic_write_text
from fkdapp.settings import build, check_known, parse_overrides, read_json_object
from multiview.methods import METHODS

__all__ = ["LEGACY_KEYS", "Config", "ConfigError"]

#: Keys of configs written before the method registry -> (method, parameter); read into ``method_params``.
LEGACY_KEYS = {
    "fkd_lambda": ("fkd", "lambda"),
    "fkd_beta": ("fkd", "feature_reg"),
    "kernel_eps": ("fkd", "eps"),
    "kernel_ensemble": ("fkd", "ensemble"),
    "kd_weight": ("kd", "kd_weight"),
    "kd_temperature": ("kd", "temperature"),
    "fkd_raw_lambda": ("fkd-raw", "lambda"),
}


@dataclass(frozen=True)
class Config:
    """Every parameter of the simulation but the methods' own. Defaults: the measured regime of docs/theory.md, k = 10.

    Data (Allen-Zhu & Li's multi-view distribution):
      k classes, each with two orthonormal views in R^d; P patches per input; each view of the label class on C_p
      patches with total coefficient U[view_coef]; single-view samples keep only ``rho`` of the other view.
      Each other-class feature appears with probability s/k on one patch, with coefficient U[other_coef_multi]
      (multi-view) or U[other_coef_single] (single-view, at most Gamma). Patch noise N(0, sigma_p^2) is
      projected off the 2k feature directions when ``noise_off_features``; feature noise adds alpha * v' with
      alpha ~ U[0, gamma] for every feature v' on every patch. A fraction ``mu`` of the training set is single-view.
    Network: m smoothed-ReLU neurons per class (power q, threshold varrho), init N(0, sigma_0^2).
    Training: full-batch GD (``batch_size`` 0) or mini-batches, learning rate ``lr``; a teacher stops
      ``patience`` steps after it first fits its training set, or at ``max_steps``.
    Views: view l of class j is learned when max_r <w_{j,r}, v_{j,l}> > view_threshold * varrho and
      >= view_ratio x the larger of the class's two.
    Distillation (students): at least ``student_steps`` steps, then the same stop rule; ``kernel_batch`` samples
      per kernel of the relational methods (0: the whole batch). ``transfer_single`` / ``transfer_multi``: unlabelled
      samples drawn from D_s / D_m with a generator of their own (the transfer set); every method's distillation
      term is computed on the training set and these together, cross-entropy on the training set alone, and the
      teachers are trained as without them. ``method_params`` overrides the defaults of the
      methods' parameters (``{"fkd": {"lambda": 20}}``; ``--set fkd.lambda=20``); the defaults themselves, and
      what each parameter weighs, live with the methods in :mod:`multiview.methods`.
    """

    # data
    k: int = 10
    d: int = 256
    P: int = 16
    C_p: int = 2
    s: float = 2.0
    view_coef: tuple[float, float] = (1.0, 2.0)
    rho: float = 0.2
    other_coef_multi: tuple[float, float] = (0.1, 0.4)
    other_coef_single: tuple[float, float] = (0.2, 0.4)
    Gamma: float = 0.4
    gamma: float = 0.0
    sigma_p: float = 0.7 / 16.0
    noise_off_features: bool = True
    mu: float = 0.0
    n_train: int = 1000
    n_test: int = 2000
    # network
    m: int = 8
    q: int = 4
    varrho: float = 0.3
    sigma_0: float = 0.006
    # training
    lr: float = 5.0
    batch_size: int = 0
    patience: int = 30
    max_steps: int = 3000
    # views learned
    view_threshold: float = 1.0
    view_ratio: float = 0.3
    # distillation
    student_steps: int = 600
    kernel_batch: int = 0
    transfer_single: int = 0
    transfer_multi: int = 0
    method_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    # reproducibility
    seed: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, list):  # from JSON
                object.__setattr__(self, f.name, tuple(v))
        _validate(self)
        object.__setattr__(self, "method_params", _method_params(self.method_params))

    @property
    def n_features(self) -> int:
        return 2 * self.k

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_(self, **changes: Any) -> Config:
        """A copy with some values changed (validated)."""
        return replace(self, **changes)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        """A config from a dict of some or all fields; keys of the pre-registry layout (``fkd_lambda``, ...) and
        dotted method keys (``fkd.lambda``) go into ``method_params``."""
        data = dict(data)
        params = data.pop("method_params", {})
        if isinstance(params, dict):
            params = {m: dict(p) if isinstance(p, dict) else p for m, p in params.items()}
            for key in [k for k in data if k in LEGACY_KEYS or "." in k]:
                method, param = LEGACY_KEYS.get(key) or key.split(".", 1)
                params.setdefault(method, {})[param] = data.pop(key)
        names = {f.name for f in fields(cls)}
        for key in data:
            owners = [name for name, m in METHODS.items() if key in m.DEFAULTS]
            if key not in names and owners:
                value = json.dumps(data[key]) if not isinstance(data[key], str) else data[key]
                raise ConfigError(f"{key!r} is a method parameter now ({', '.join(owners)}): --set {owners[0]}.{key}="
                                  f"{value} or --methods {owners[0]}:{key}={value}")
        return build(cls, {**data, "method_params": params})

    @classmethod
    def load(cls, path: str | Path) -> Config:
        """Read a JSON file holding some or all fields (the rest keep their defaults); a results.json works too."""
        data = read_json_object(path)
        return cls.from_dict(data.get("config", data))

    def with_overrides(self, overrides: tuple[str, ...] | list[str]) -> Config:
        """A copy with ``KEY=VALUE`` overrides applied (values parsed as JSON; ``METHOD.PARAM=VALUE`` for a
        method's parameter)."""
        changes = parse_overrides(overrides)
        return Config.from_dict({**self.to_dict(), **changes}) if changes else self

    def save(self, path: str | Path) -> None:
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")


def _method_params(params: Any) -> dict[str, dict[str, Any]]:
    """``method_params`` checked against the registry (names, types), defaults dropped, in a stable order."""
    if not isinstance(params, dict):
        raise ConfigError(f"config value method_params={params!r} must be a JSON object like {{\"fkd\": "
                          f"{{\"lambda\": 20}}}}")
    check_known(params, METHODS, "method")
    out = {}
    for name in sorted(params):
        if not isinstance(params[name], dict):
            raise ConfigError(f"method_params[{name!r}] must be a JSON object of parameter values")
        checked = METHODS[name].check_params(params[name])
        changed = {k: v for k, v in sorted(checked.items()) if v != METHODS[name].DEFAULTS[k]}
        if changed:
            out[name] = changed
    return out


def _check(ok: bool, name: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"config value {name}={value!r} is out of range: need {allowed}")


def _validate(c: Config) -> None:
    for f in fields(c):
        v = getattr(c, f.name)
        if f.type in ("int",):
            _check(is_int(v), f.name, v, "an integer")
        elif f.type in ("float",):
            _check(is_number(v), f.name, v, "a finite number")
        elif f.type == "tuple[float, float]":
            _check(
                isinstance(v, tuple) and len(v) == 2 and all(map(is_number, v)) and 0 <= v[0] <= v[1],
                f.name,
                v,
                "a pair [low, high] with 0 <= low <= high",
            )
    for name in ("k", "d", "P", "C_p", "n_train", "n_test", "m", "max_steps", "student_steps"):
        _check(getattr(c, name) >= 1, name, getattr(c, name), ">= 1")
    _check(c.k >= 2, "k", c.k, ">= 2 classes")
    _check(c.d >= 2 * c.k, "d", c.d, f">= 2k = {2 * c.k} (the 2k views must be orthonormal in R^d)")
    _check(
        c.P >= 2 * c.C_p + 2 * c.s,
        "P",
        c.P,
        f">= 2*C_p + 2*s = {2 * c.C_p + 2 * c.s:g} (patches for both views and the other-class features)",
    )
    _check(c.q >= 3, "q", c.q, "an integer >= 3 (the smoothed ReLU's power)")
    _check(0 <= c.s <= c.k, "s", c.s, "in [0, k] (other-class features appear with probability s/k)")
    for name in ("mu", "rho", "gamma", "Gamma", "view_ratio"):
        _check(0 <= getattr(c, name) <= 1, name, getattr(c, name), "in [0, 1]")
    for name in ("sigma_p", "varrho", "sigma_0", "lr", "view_threshold"):
        _check(getattr(c, name) > 0, name, getattr(c, name), "> 0")
    for name in ("batch_size", "patience", "kernel_batch", "seed", "transfer_single", "transfer_multi"):
        _check(getattr(c, name) >= 0, name, getattr(c, name), ">= 0")
    _check(
        c.other_coef_single[1] <= c.Gamma,
        "other_coef_single",
        c.other_coef_single,
        f"an upper end <= Gamma = {c.Gamma}",
    )
    _check(c.batch_size == 0 or c.batch_size >= 2, "batch_size", c.batch_size, "0 (full batch) or >= 2")
    _check(c.kernel_batch == 0 or c.kernel_batch >= 2, "kernel_batch", c.kernel_batch, "0 (all) or >= 2")
