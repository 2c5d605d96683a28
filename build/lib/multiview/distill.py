"""Students: one population trained against its teachers, each student with its method's objective.

Which terms a student's loss holds, and with which weight, is its method's business (:mod:`multiview.methods`);
this module only groups the students by method so each term is one batched call, and adds cross-entropy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from multiview.config import Config
from multiview.methods import CE, Batch, StudentMethod, Targets
from multiview.train import PartedObjective, cross_entropy

__all__ = ["Student", "Targets", "student_objective", "students_for"]


@dataclass(frozen=True)
class Student:
    """One student of a seed's population: its method and its number of teachers."""

    method: StudentMethod
    teachers: int

    @property
    def key(self) -> str:
        """``spec@E``: how records name the run a student was trained as."""
        return f"{self.method.spec}@{self.teachers}"

    def weight(self, k: int) -> float:
        return self.method.weight(self.teachers, k)


def students_for(methods: Sequence[StudentMethod], teacher_counts: Sequence[int]) -> list[Student]:
    """The students one seed trains: the distinct no-teacher runs (CE always), then each method at each E >= 1."""
    own = sorted({m.own_lottery() for m in methods} | {CE()}, key=lambda m: m.spec)
    counts = sorted({e for e in teacher_counts if e >= 1})
    return [Student(m, 0) for m in own] + [Student(m, e) for m in methods if m.USES_TEACHERS for e in counts]


class StudentObjective(PartedObjective):
    """Per student, CE plus its method's distillation term; one batched call per method (the group of students
    sharing it), teacher targets computed once at construction."""

    def __init__(self, students: Sequence[Student], targets: Targets, y: torch.Tensor, cfg: Config,
                 generator: torch.Generator | None = None) -> None:
        device = y.device
        self.students = list(students)
        self.ce, self.y, self.cfg, self.generator = cross_entropy(y), y, cfg, generator
        super().__init__()
        self.set_step(0)
        self.groups = []
        for method in dict.fromkeys(s.method for s in students):
            if not method.USES_TEACHERS:
                continue  # cross-entropy alone
            idx = [i for i, s in enumerate(students) if s.method == method]
            counts = [students[i].teachers for i in idx]
            weights = torch.tensor([students[i].weight(cfg.k) for i in idx], device=device)
            self.groups.append((method, torch.tensor(idx, dtype=torch.long, device=device), weights, counts,
                                method.prepare(targets, counts)))

    def set_step(self, step: int) -> None:
        """The per-student schedules at this step: gradient balance and the weight of CE (None where unused)."""
        super().set_step(step)
        device = self.y.device
        balance = [s.method.balance(s.teachers, step) for s in self.students]
        self.balance = torch.tensor(balance, device=device) if any(c > 0 for c in balance) else None
        scales = [s.method.ce_scale(step) for s in self.students]
        self.ce_scales = None if all(c == 1.0 for c in scales) else torch.tensor(scales, device=device)

    def parts(self, h: torch.Tensor, f: torch.Tensor, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ce = self.ce(h, f, index)
        if self.ce_scales is not None:
            ce = ce * self.ce_scales
        sub, h_sub = index, h
        if self.cfg.kernel_batch and self.cfg.kernel_batch < index.shape[0]:
            pick = torch.randperm(index.shape[0], generator=self.generator)[: self.cfg.kernel_batch].to(h.device)
            sub, h_sub = index[pick], h[:, pick]
        extra = torch.zeros_like(ce)
        for method, idx, weights, counts, prepared in self.groups:
            batch = Batch(h[idx], f[idx], index, h_sub[idx], sub, self.y[index], self.step)
            extra = extra.index_add(0, idx, method.loss(batch, prepared, weights, counts))
        return ce, extra


def student_objective(students: Sequence[Student], targets: Targets, y: torch.Tensor, cfg: Config,
                      generator: torch.Generator | None = None) -> StudentObjective:
    """The population objective of ``students`` (see :class:`StudentObjective`)."""
    return StudentObjective(students, targets, y, cfg, generator)
