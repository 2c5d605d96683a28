"""Student methods of the simulation: one small class each, and the name -> class registry.

A method is defined once, here: its name, its parameters and their defaults, the weight of its distillation term
for a student of E teachers at k classes, the no-teacher run its "own views" are read from, its label and colour in
figures, and its loss term on a group of students (batched: one call for every student of the method).
No other module compares a method name with a string; they ask :data:`METHODS` or a :class:`StudentMethod`.

A method is named by a *spec*: ``"fkd"``, or with parameters ``"fkd:lambda=20,feature_reg=0.01"``. Parameters
come from the class defaults, then the config's ``method_params`` (``--set fkd.lambda=20``), then the spec.

Adding a method: one subclass below with ``NAME``, ``DEFAULTS``, ``weight`` and ``loss`` (``prepare`` when it
precomputes teacher targets), added to :data:`METHODS`, plus its tests.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F

from fkd import (
    dkd_loss,
    factored_kernel_distance,
    feature_regularizer,
    kd_loss,
    max_kernel,
    normalized_kernel,
    one_sided_kernel_distance,
    pkt_loss,
    rkd_loss,
    sp_loss,
    teacher_factor,
    unit_rows,
)
from fkd.objectives import ENSEMBLE_MODES
from fkdapp.errors import ConfigError
from fkdapp.settings import did_you_mean

if TYPE_CHECKING:
    from multiview.config import Config


@dataclass(frozen=True)
class Targets:
    """What the teachers offer on the samples the distillation terms see (the training set, then the transfer set):
    features (E_max, N, D) and logits (E_max, N, k); ``union_h`` (E_max, N, 2D): row e - 1 the features of the
    oracle union of the first e teachers (:func:`multiview.population.union_network`), None where not computed."""

    h: torch.Tensor
    logits: torch.Tensor
    union_h: torch.Tensor | None = None


@dataclass(frozen=True)
class Batch:
    """One step's inputs to a method's loss, for the G students of its group.

    h (G, B, D) features and f (G, B, k) logits on the batch, whose indices are ``index`` (B,) (into the training
    set, then the transfer set) and labels ``labels`` (B,) (-1: a transfer sample, unlabelled); h_sub (G, B', D)
    the features on the kernel's subsample ``sub`` (B',) (the whole batch unless ``Config.kernel_batch`` is set).
    """

    h: torch.Tensor
    f: torch.Tensor
    index: torch.Tensor
    h_sub: torch.Tensor
    sub: torch.Tensor
    labels: torch.Tensor
    step: int = 0


class StudentMethod:
    """A student's objective beyond cross-entropy; instances are immutable and compare by (name, params)."""

    NAME: ClassVar[str] = ""
    LABEL: ClassVar[str] = ""
    COLOR: ClassVar[str] = "C7"
    #: "none" (CE alone), "logit" (compares logits) or "relational" (compares feature kernels of the batch)
    FAMILY: ClassVar[str] = "none"
    DEFAULTS: ClassVar[dict[str, Any]] = {}
    #: the parameter that scales the distillation term (what a weight grid varies)
    WEIGHT: ClassVar[str] = ""
    #: a schedule of another method's loss (not a loss family of its own), e.g. fkd-warm of fkd
    VARIANT_OF: ClassVar[str] = ""
    USES_TEACHERS: ClassVar[bool] = True
    #: parameter -> allowed string values (the others are numbers >= 0)
    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {}

    def __init__(self, **params: Any) -> None:
        self.params: dict[str, Any] = {**self.DEFAULTS, **self.check_params(params)}

    @classmethod
    def check_params(cls, params: Mapping[str, Any]) -> dict[str, Any]:
        """``params`` checked against the method's names and types (ConfigError, one line, otherwise)."""
        out = {}
        for key, value in params.items():
            if key not in cls.DEFAULTS:
                known = ", ".join(cls.DEFAULTS) or "none"
                raise ConfigError(f"method {cls.NAME!r} has no parameter {key!r}{did_you_mean(key, cls.DEFAULTS)}; "
                                  f"its parameters: {known}")
            if key in cls.CHOICES:
                if value not in cls.CHOICES[key]:
                    raise ConfigError(f"{cls.NAME} parameter {key}={value!r} must be one of {cls.CHOICES[key]}")
            elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value < 0:
                raise ConfigError(f"{cls.NAME} parameter {key}={value!r} must be a finite number >= 0")
            out[key] = value if key in cls.CHOICES else float(value)
        return out

    def with_params(self, **params: Any) -> StudentMethod:
        """The same method with some parameters changed."""
        return type(self)(**{**self.params, **params})

    @property
    def spec(self) -> str:
        """The method's name with the parameters that differ from its defaults: ``fkd:lambda=20``."""
        diff = [f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.params.items()
                if v != self.DEFAULTS[k]]
        return self.NAME + (":" + ",".join(diff) if diff else "")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StudentMethod) and (self.NAME, self.params) == (other.NAME, other.params)

    def __hash__(self) -> int:
        return hash((self.NAME, tuple(sorted(self.params.items()))))

    def __repr__(self) -> str:
        return f"<{self.spec}>"

    def weight(self, teachers: int, k: int) -> float:
        """The weight of the distillation term for a student of ``teachers`` teachers at ``k`` classes."""
        return 0.0

    def own_lottery(self) -> StudentMethod:
        """The no-teacher run a student's own views are read from: its objective at E = 0 (CE for most)."""
        return CE()

    def balance(self, teachers: int, step: int) -> float:
        """c > 0: the training loop rescales this term's gradient to c times the norm of CE's at this step."""
        return 0.0

    def ce_scale(self, step: int) -> float:
        """The weight of cross-entropy at this step (1: always, for most methods)."""
        return 1.0

    def prepare(self, targets: Targets, counts: Sequence[int]) -> Any:
        """Teacher targets for a group of students with ``counts`` teachers each (computed once per training)."""
        return None

    def loss(self, batch: Batch, prepared: Any, weights: torch.Tensor, counts: Sequence[int]) -> torch.Tensor:
        """The weighted distillation term (G,) of the group's G students (their weights (G,), teacher counts)."""
        return torch.zeros_like(weights)


class CE(StudentMethod):
    """Cross-entropy alone: the no-teacher reference, every student's own lottery."""

    NAME, LABEL, COLOR = "ce", "ce (no teacher)", "C7"
    USES_TEACHERS = False


def with_teachers(counts: Sequence[int], device: torch.device) -> torch.Tensor:
    """Positions (G',) of the students that have teachers, in the order of ``prepare``'s targets."""
    return torch.tensor([i for i, e in enumerate(counts) if e], dtype=torch.long, device=device)


class FKD(StudentMethod):
    """CE + lambda_E D(rho_S, rho_T) + feature_reg * mean ||h_S||^2, lambda_E = lambda * E * k / 10.

    rho is the cosine-normalised kernel with ``eps`` inside the norms (``fkd.unit_rows``); rho_T the mean of the
    teachers' normalised kernels (``ensemble="mean"``) or the kernel of their concatenated, RMS-scaled features
    (``"concat"``). With ``feature_reg`` > 0 the regulariser also acts without teachers, so the student's own
    lottery is this method at E = 0.

    Variants that make the kernel act while the lottery is decided (all off by default):
    ``eps_rel`` > 0: the student's eps is eps_rel x the root-mean-square feature norm of the batch (per student,
    not differentiated), so rho_S is scale-free from step 0. ``balance`` c > 0: every step, the term's gradient is
    rescaled to c times the norm of CE's (lambda then only sets nothing but the sign), until step ``balance_until``
    (0: always), after which the fixed lambda_E applies. ``kernel_only`` T > 0: no cross-entropy for the first T
    steps (the kernel term alone).
    """

    NAME, LABEL, COLOR, FAMILY = "fkd", "fkd student", "C0", "relational"
    DEFAULTS = {"lambda": 10.0, "feature_reg": 0.0, "eps": 0.1, "ensemble": "mean", "eps_rel": 0.0, "balance": 0.0,
                "balance_until": 0.0, "kernel_only": 0.0}
    WEIGHT = "lambda"
    CHOICES = {"ensemble": ENSEMBLE_MODES}
    NORMALIZE: ClassVar[bool] = True

    def balance(self, teachers: int, step: int) -> float:
        until = self.params.get("balance_until", 0.0)
        on = teachers > 0 and (until == 0 or step < until)
        return self.params.get("balance", 0.0) if on else 0.0

    def ce_scale(self, step: int) -> float:
        return 0.0 if step < self.params.get("kernel_only", 0.0) else 1.0

    def weight(self, teachers: int, k: int) -> float:
        return self.params["lambda"] * teachers * k / 10.0

    def own_lottery(self) -> StudentMethod:
        return self if self.params.get("feature_reg", 0.0) > 0 else CE()

    def prepare(self, targets: Targets, counts: Sequence[int]) -> torch.Tensor | None:
        """Per student, features whose kernel is its teachers' target kernel, zero-padded to E_max D: (G, N, W)."""
        h_t = list(targets.h)
        width = len(h_t) * targets.h.shape[-1]
        eps = self.params.get("eps", 0.0)
        fs = [teacher_factor(h_t[:e], self.NORMALIZE, self.params.get("ensemble", "mean"), eps) for e in counts if e]
        return torch.stack([F.pad(f, (0, width - f.shape[-1])) for f in fs]) if fs else None

    def distance(self, h_sub: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        rel = self.params.get("eps_rel", 0.0)
        if rel > 0:  # eps relative to the batch's RMS feature norm: rho_S is then scale-free
            eps2 = rel**2 * h_sub.detach().square().sum(-1).mean(-1, keepdim=True)  # (G, 1)
            u = h_sub * torch.rsqrt(h_sub.square().sum(-1) + eps2)[..., None]
            return factored_kernel_distance(u, target)
        return factored_kernel_distance(unit_rows(h_sub, self.params["eps"]), target)

    def loss(self, batch: Batch, prepared: Any, weights: torch.Tensor, counts: Sequence[int]) -> torch.Tensor:
        out = torch.zeros_like(weights)
        used = with_teachers(counts, weights.device)
        if len(used):
            dist = self.distance(batch.h_sub[used], prepared[:, batch.sub])
            out = out.index_add(0, used, weights[used] * dist)
        if self.params.get("feature_reg", 0.0) > 0:
            out = out + self.params["feature_reg"] * feature_regularizer(batch.h)
        return out


class FKDRaw(FKD):
    """The paper's ablation: CE + lambda_E D(k_S, k_T) on raw kernels, diagonal included, lambda_E = lambda E k / 10."""

    NAME, LABEL, COLOR = "fkd-raw", "fkd-raw student", "C2"
    DEFAULTS = {"lambda": 0.01}  # FKD's schedules and regulariser read their parameters with "off" as default
    CHOICES = {}
    NORMALIZE = False

    def distance(self, h_sub: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return factored_kernel_distance(h_sub, target, include_diagonal=True)


class KD(StudentMethod):
    """CE + kd_weight * T^2 KL(softened ensemble || softened student); the ensemble is the mean teacher logits."""

    NAME, LABEL, COLOR, FAMILY = "kd", "kd student", "C1", "logit"
    DEFAULTS = {"kd_weight": 3.0, "temperature": 4.0}
    WEIGHT = "kd_weight"

    def weight(self, teachers: int, k: int) -> float:
        return self.params["kd_weight"] if teachers else 0.0

    def prepare(self, targets: Targets, counts: Sequence[int]) -> torch.Tensor | None:
        return torch.stack([targets.logits[:e].mean(0) for e in counts if e]) if any(counts) else None

    def loss(self, batch: Batch, prepared: Any, weights: torch.Tensor, counts: Sequence[int]) -> torch.Tensor:
        used = with_teachers(counts, weights.device)
        if not len(used):
            return torch.zeros_like(weights)
        kl = kd_loss(batch.f[used], prepared[:, batch.index], self.params["temperature"])
        return torch.zeros_like(weights).index_add(0, used, weights[used] * kl)


class FKDAdd(FKD):
    """An objective that adds and never removes: CE + lambda_E mean over pairs of relu(rho_T - rho_S)^2, so a pair
    counts only where the student is less similar than the target. ``target="mean"``: the mean of the teachers'
    normalised kernels; ``"max"``: per pair the most similar teacher (a union target built from kernels alone,
    no knowledge of views). Computed as B x B kernels (the max is not a Gram matrix)."""

    NAME, LABEL, COLOR = "fkd-add", "fkd one-sided student", "C3"
    DEFAULTS = {"lambda": 10.0, "eps": 0.1, "target": "mean"}
    CHOICES = {"target": ("mean", "max")}

    def prepare(self, targets: Targets, counts: Sequence[int]) -> torch.Tensor | None:
        """Per student with teachers, its target kernel on every sample: (G', N, N)."""
        eps = self.params["eps"]
        kernels = [normalized_kernel(h, eps) for h in targets.h]
        out = [torch.stack(kernels[:e]).mean(0) if self.params["target"] == "mean" else max_kernel(
            torch.stack(kernels[:e])) for e in counts if e]
        return torch.stack(out) if out else None

    def distance(self, h_sub: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return one_sided_kernel_distance(normalized_kernel(h_sub, self.params["eps"]), target)

    def loss(self, batch: Batch, prepared: Any, weights: torch.Tensor, counts: Sequence[int]) -> torch.Tensor:
        used = with_teachers(counts, weights.device)
        if not len(used):
            return torch.zeros_like(weights)
        target = prepared[:, batch.sub][:, :, batch.sub]
        return torch.zeros_like(weights).index_add(0, used, weights[used] * self.distance(batch.h_sub[used], target))


class FKDOracle(FKD):
    """A probe, not a method: FKD toward the kernel of the oracle union teacher, built per (class, view) from a
    teacher that holds the view (it uses the simulation's knowledge of views; see
    :func:`multiview.population.union_network`). Says whether a stall is in the target or in the student."""

    NAME, LABEL, COLOR = "fkd-oracle", "fkd toward the union (oracle)", "black"
    VARIANT_OF = "fkd"
    DEFAULTS = {"lambda": 10.0, "eps": 0.1}
    CHOICES = {}

    def prepare(self, targets: Targets, counts: Sequence[int]) -> torch.Tensor | None:
        if targets.union_h is None:
            raise ConfigError("fkd-oracle needs the teachers' union features (Targets.union_h)")
        fs = [unit_rows(targets.union_h[e - 1], self.params["eps"]) for e in counts if e]
        return torch.stack(fs) if fs else None


class FKDWarm(FKD):
    """A teacher-signal warm start: KD (kd_weight, T) for the first ``kd_steps`` steps, then FKD as ``fkd``: tests
    whether an early signal from the teachers is what the kernel lacks."""

    NAME, LABEL, COLOR = "fkd-warm", "fkd after a KD warm start", "C9"
    VARIANT_OF = "fkd"
    DEFAULTS = {**FKD.DEFAULTS, "kd_steps": 150.0, "kd_weight": 3.0, "temperature": 4.0}

    def prepare(self, targets: Targets, counts: Sequence[int]) -> Any:
        return super().prepare(targets, counts), KD().prepare(targets, counts)

    def loss(self, batch: Batch, prepared: Any, weights: torch.Tensor, counts: Sequence[int]) -> torch.Tensor:
        factors, logits = prepared
        if batch.step >= self.params["kd_steps"]:
            return super().loss(batch, factors, weights, counts)
        kd = KD(kd_weight=self.params["kd_weight"], temperature=self.params["temperature"])
        kd_weights = torch.tensor([kd.weight(e, 0) for e in counts], device=weights.device)
        return kd.loss(batch, logits, kd_weights, counts)


class DKD(KD):
    """CE + alpha TCKD + beta NCKD (decoupled KD) against the mean teacher logits, T = 4; the weight does not grow
    with E. Published CIFAR-100 values alpha = 1, beta = 8; no warm-up here (full-batch steps, not epochs)."""

    NAME, LABEL, COLOR = "dkd", "dkd student", "C5"
    DEFAULTS = {"weight": 1.0, "alpha": 1.0, "beta": 8.0, "temperature": 4.0}
    WEIGHT = "weight"

    def weight(self, teachers: int, k: int) -> float:
        return self.params["weight"] if teachers else 0.0

    def loss(self, batch: Batch, prepared: Any, weights: torch.Tensor, counts: Sequence[int]) -> torch.Tensor:
        used = with_teachers(counts, weights.device)
        if not len(used):
            return torch.zeros_like(weights)
        p = self.params
        teacher = prepared[:, batch.index]
        labels = batch.labels
        if bool((labels < 0).any()):  # transfer samples: the teachers' prediction stands in for the label
            labels = torch.where(labels >= 0, labels, teacher.argmax(-1))
        d = dkd_loss(batch.f[used], teacher, labels, p["alpha"], p["beta"], p["temperature"])
        return torch.zeros_like(weights).index_add(0, used, weights[used] * d)


class Relational(StudentMethod):
    """A pairwise feature loss against each teacher, averaged over the E teachers (as on the image side), with
    weight = ``weight`` * E * k / 10 (the rule of FKD: the mean over teachers dilutes each teacher's signal)."""

    FAMILY = "relational"
    WEIGHT = "weight"

    def weight(self, teachers: int, k: int) -> float:
        return self.params["weight"] * teachers * k / 10.0

    def pair_loss(self, h_s: torch.Tensor, h_t: torch.Tensor) -> torch.Tensor:
        """(G, B, D_s), (G, B, D_t) -> (G,)"""
        raise NotImplementedError

    def prepare(self, targets: Targets, counts: Sequence[int]) -> torch.Tensor:
        return targets.h

    def loss(self, batch: Batch, prepared: Any, weights: torch.Tensor, counts: Sequence[int]) -> torch.Tensor:
        total = torch.zeros_like(weights)
        e = torch.tensor(counts, device=weights.device)
        for t in range(max(counts)):
            idx = (e > t).nonzero().flatten()
            h_t = prepared[t][batch.sub].expand(len(idx), -1, -1)
            total = total.index_add(0, idx, self.pair_loss(batch.h_sub[idx], h_t))
        return weights * total / e.clamp_min(1)


class SP(Relational):
    """Similarity-preserving KD on the features (row-normalised Gram matrices); published weight 3000."""

    NAME, LABEL, COLOR = "sp", "sp student", "C4"
    DEFAULTS = {"weight": 3000.0}

    def pair_loss(self, h_s: torch.Tensor, h_t: torch.Tensor) -> torch.Tensor:
        return sp_loss(h_s, h_t)


class PKT(Relational):
    """Probabilistic knowledge transfer (cosine kernels as probabilities); published weight 30000."""

    NAME, LABEL, COLOR = "pkt", "pkt student", "C6"
    DEFAULTS = {"weight": 30000.0}

    def pair_loss(self, h_s: torch.Tensor, h_t: torch.Tensor) -> torch.Tensor:
        return pkt_loss(h_s, h_t)


class RKD(Relational):
    """Relational KD: w_d x distances (on the batch) + w_a x angles (on its first ``angle_samples`` samples: the
    angle term is cubic in the batch); published weights 1, 25, 50."""

    NAME, LABEL, COLOR = "rkd", "rkd student", "C8"
    DEFAULTS = {"weight": 1.0, "w_d": 25.0, "w_a": 50.0, "angle_samples": 64.0}

    def pair_loss(self, h_s: torch.Tensor, h_t: torch.Tensor) -> torch.Tensor:
        n = int(self.params["angle_samples"])
        dist = rkd_loss(h_s, h_t, w_d=self.params["w_d"], w_a=0.0)
        return dist + rkd_loss(h_s[:, :n], h_t[:, :n], w_d=0.0, w_a=self.params["w_a"])


#: Method name -> class: the one place a simulation method is looked up by name.
METHODS: dict[str, type[StudentMethod]] = {
    cls.NAME: cls for cls in (FKD, FKDRaw, FKDWarm, FKDAdd, FKDOracle, KD, DKD, SP, PKT, RKD, CE)
}


def parse_method(spec: str, cfg: Config | None = None) -> StudentMethod:
    """``"fkd"`` or ``"fkd:lambda=20,feature_reg=0.01"`` -> the method, its parameters from the class defaults,
    then ``cfg.method_params``, then the spec. A ConfigError (one line) names an unknown method or parameter."""
    name, _, rest = spec.strip().partition(":")
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}{did_you_mean(name, METHODS)}; choose from {', '.join(METHODS)}")
    params: dict[str, Any] = dict(cfg.method_params.get(name, {})) if cfg is not None else {}
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


def parse_methods(specs: Sequence[str] | str, cfg: Config | None = None) -> list[StudentMethod]:
    """A comma list (``"fkd,kd:kd_weight=10,ce"``) or a sequence of specs -> methods; ``"all"`` is every
    registered method at its defaults. A method given twice is a ConfigError."""
    items = split_specs(specs) if isinstance(specs, str) else [s.strip() for s in specs]
    if items == ["all"]:
        items = list(METHODS)
    methods = [parse_method(s, cfg) for s in items]
    specs_seen = [m.spec for m in methods]
    twice = sorted({s for s in specs_seen if specs_seen.count(s) > 1})
    if twice:
        raise ConfigError(f"method(s) {', '.join(twice)} given twice; list each once")
    if not methods:
        raise ConfigError("no method given; e.g. --methods fkd,kd,ce")
    return methods
