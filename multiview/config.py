"""One validated configuration for the multi-view simulation: data, network, training and distillation."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A configuration value out of range, or a malformed config file (one line, names the field)."""


@dataclass(frozen=True)
class Config:
    """Every parameter of the simulation. Defaults: the regime of ../shared/theory.md ("Regime"), k = 10.

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
    Distillation (students): at least ``student_steps`` steps, then the same stop rule; fkd weight
      lambda = fkd_lambda * E * k / 10 (E teachers);
      ``fkd_beta`` feature regularisation; ``kernel_eps`` inside the norms; ``kernel_batch`` samples per kernel
      (0: the whole training set); ``kd_weight`` and ``kd_temperature`` for the KD student.
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
    fkd_lambda: float = 10.0
    fkd_beta: float = 0.0
    kernel_eps: float = 0.1
    kernel_batch: int = 0
    kernel_ensemble: str = "mean"
    kd_weight: float = 3.0
    kd_temperature: float = 4.0
    fkd_raw_lambda: float = 0.01
    # reproducibility
    seed: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, list):  # from JSON
                object.__setattr__(self, f.name, tuple(v))
        _validate(self)

    @property
    def n_features(self) -> int:
        return 2 * self.k

    def fkd_weight(self, teachers: int) -> float:
        """lambda for a student of E teachers: fkd_lambda * E * k / 10 (linear in E and k)."""
        return self.fkd_lambda * teachers * self.k / 10.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_(self, **changes: Any) -> Config:
        """A copy with some values changed (validated)."""
        return replace(self, **changes)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown config key(s) {unknown}; known keys: {sorted(known)}")
        try:
            return cls(**data)
        except TypeError as e:
            raise ConfigError(f"bad config: {e}") from None

    @classmethod
    def load(cls, path: str | Path) -> Config:
        """Read a JSON file holding some or all fields (the rest keep their defaults)."""
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} not found")
        try:
            data = json.loads(p.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"config file {p} is not valid JSON ({e}); fix or regenerate it") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config file {p} must hold a JSON object of config fields")
        return cls.from_dict(data.get("config", data))  # a results.json holds its config

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")


def _check(ok: bool, name: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"config value {name}={value!r} is out of range: need {allowed}")


def _is_num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _validate(c: Config) -> None:
    for f in fields(c):
        v = getattr(c, f.name)
        if f.type in ("int",):
            _check(isinstance(v, int) and not isinstance(v, bool), f.name, v, "an integer")
        elif f.type in ("float",):
            _check(_is_num(v), f.name, v, "a finite number")
        elif f.type == "tuple[float, float]":
            _check(
                isinstance(v, tuple) and len(v) == 2 and all(map(_is_num, v)) and 0 <= v[0] <= v[1],
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
    for name in ("sigma_p", "varrho", "sigma_0", "lr", "kernel_eps", "kd_temperature", "view_threshold"):
        _check(getattr(c, name) > 0, name, getattr(c, name), "> 0")
    for name in (
        "fkd_lambda",
        "fkd_beta",
        "kd_weight",
        "fkd_raw_lambda",
        "batch_size",
        "patience",
        "kernel_batch",
        "seed",
    ):
        _check(getattr(c, name) >= 0, name, getattr(c, name), ">= 0")
    _check(
        c.other_coef_single[1] <= c.Gamma,
        "other_coef_single",
        c.other_coef_single,
        f"an upper end <= Gamma = {c.Gamma}",
    )
    _check(c.batch_size == 0 or c.batch_size >= 2, "batch_size", c.batch_size, "0 (full batch) or >= 2")
    _check(c.kernel_batch == 0 or c.kernel_batch >= 2, "kernel_batch", c.kernel_batch, "0 (all) or >= 2")
    _check(c.kernel_ensemble in ("mean", "concat"), "kernel_ensemble", c.kernel_ensemble, "'mean' or 'concat'")
