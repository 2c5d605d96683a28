"""Students: one population trained against its teachers with per-student objectives built from fkd's losses.

Methods (per student, with E teachers):
  ce       cross-entropy alone (the E = 0 reference: the initialisation's own lottery)
  fkd      CE + lambda_E * D(rho_S, rho_T) + beta * mean ||h_S||^2, rho_T the mean (or concat) normalised kernel
  fkd-raw  CE + lambda_raw_E * D(k_S, k_T) on raw kernels, diagonal included (the paper's ablation)
  kd       CE + kd_weight * T^2 KL(softened ensemble || softened student), ensemble = mean teacher logits
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from fkd import factored_kernel_distance, feature_regularizer, kd_loss, teacher_factor, unit_rows
from multiview.config import Config
from multiview.train import Objective, cross_entropy

METHODS = ("fkd", "fkd-raw", "kd", "ce")


@dataclass(frozen=True)
class Student:
    method: str
    teachers: int


def check_methods(methods: Sequence[str]) -> None:
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise ValueError(f"unknown method(s) {bad}; choose from {list(METHODS)}")


def own_lottery_method(method: str, cfg: Config) -> str:
    """The no-teacher run a student's own views are read from: its own objective at E = 0.

    Every method reduces to plain CE without teachers, except fkd with feature regularisation (beta > 0).
    """
    return "fkd" if method == "fkd" and cfg.fkd_beta > 0 else "ce"


def students_for(methods: Sequence[str], teacher_counts: Sequence[int], cfg: Config) -> list[Student]:
    """The students one seed trains: each method at each E >= 1, plus the distinct no-teacher runs."""
    check_methods(methods)
    own = sorted({own_lottery_method(m, cfg) for m in methods} | {"ce"})
    return [Student(m, 0) for m in own] + [
        Student(m, e) for m in methods if m != "ce" for e in sorted(set(teacher_counts)) if e >= 1
    ]


@dataclass(frozen=True)
class Targets:
    """What the teachers offer on the training set: features (E_max, N, D_t) and logits (E_max, N, k)."""

    h: torch.Tensor
    logits: torch.Tensor


def distill_weight(student: Student, cfg: Config) -> float:
    """The weight of a student's distillation term (0 without teachers)."""
    e = student.teachers
    return {
        "fkd": cfg.fkd_weight(e),
        "fkd-raw": cfg.fkd_raw_lambda * e * cfg.k / 10.0,
        "kd": cfg.kd_weight if e else 0.0,
        "ce": 0.0,
    }[student.method]


def student_objective(
    students: Sequence[Student],
    targets: Targets,
    y: torch.Tensor,
    cfg: Config,
    generator: torch.Generator | None = None,
) -> Objective:
    """The population objective: per student CE plus its own distillation term, each term computed only on the
    students that use it (grouped, one batched call per term)."""
    device = y.device
    ce = cross_entropy(y)

    def group(method: str) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        idx = [i for i, s in enumerate(students) if s.method == method and distill_weight(s, cfg) > 0]
        w = torch.tensor([distill_weight(students[i], cfg) for i in idx], device=device)
        return torch.tensor(idx, dtype=torch.long, device=device), w, [students[i].teachers for i in idx]

    fkd_i, fkd_w, fkd_e = group("fkd")
    raw_i, raw_w, raw_e = group("fkd-raw")
    kd_i, kd_w, kd_e = group("kd")
    beta = torch.tensor([cfg.fkd_beta if s.method == "fkd" else 0.0 for s in students], device=device)
    h_t = list(targets.h)
    width = len(h_t) * cfg.k * cfg.m

    def factors(counts: list[int], normalize: bool) -> torch.Tensor | None:
        """Per student, features whose kernel is its teachers' target kernel, zero-padded to one width."""
        if not counts:
            return None
        fs = [teacher_factor(h_t[:e], normalize, cfg.kernel_ensemble, cfg.kernel_eps) for e in counts]
        return torch.stack([torch.nn.functional.pad(f, (0, width - f.shape[-1])) for f in fs])  # (G, N, width)

    fkd_f, raw_f = factors(fkd_e, True), factors(raw_e, False)
    kd_t = torch.stack([targets.logits[:e].mean(0) for e in kd_e]) if kd_e else None

    def objective(h: torch.Tensor, f: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        loss = ce(h, f, index)
        sub = index
        if cfg.kernel_batch and cfg.kernel_batch < index.shape[0]:
            pick = torch.randperm(index.shape[0], generator=generator)[: cfg.kernel_batch].to(device)
            sub = index[pick]
            h_sub = h[:, pick]
        else:
            h_sub = h
        extra = torch.zeros_like(loss)
        if fkd_f is not None:
            u_s = unit_rows(h_sub[fkd_i], cfg.kernel_eps)
            extra = extra.index_add(0, fkd_i, fkd_w * factored_kernel_distance(u_s, fkd_f[:, sub]))
        if raw_f is not None:
            dist = factored_kernel_distance(h_sub[raw_i], raw_f[:, sub], include_diagonal=True)
            extra = extra.index_add(0, raw_i, raw_w * dist)
        if kd_t is not None:
            extra = extra.index_add(0, kd_i, kd_w * kd_loss(f[kd_i], kd_t[:, index], cfg.kd_temperature))
        if cfg.fkd_beta > 0:
            extra = extra + beta * feature_regularizer(h)
        return loss + extra

    return objective
