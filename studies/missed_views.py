"""Which of its teachers' views an FKD student misses, and how badly (the cells: scripts/multiview_missed_views.py's
--help)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from fkdapp.runtime import environment, resolve_device, write_json
from multiview.config import Config
from multiview.data import make_data
from multiview.distill import Student, Targets
from multiview.engine import Engine
from multiview.experiment import network_seeds, train_networks, train_students
from multiview.measure import views_learned
from multiview.methods import CE, FKD
from multiview.population import evaluate, view_correlations


def seed_cells(cfg: Config, seed: int, counts: list[int], device: torch.device) -> list[dict]:
    """The cells of one seed, trained by the sweeps' engine (the same networks as ``multiview sweep``)."""
    engine = Engine.for_device(device)
    with engine.numerics():
        return _seed_cells(cfg, seed, counts, device, engine)


def _seed_cells(cfg: Config, seed: int, counts: list[int], device: torch.device, engine: Engine) -> list[dict]:
    data = make_data(cfg, seed, device)
    w_t, _ = train_networks(cfg, data, network_seeds(seed, max(counts)), engine)
    corr_t = view_correlations(w_t, data.features, cfg)
    learned_t = views_learned(corr_t, cfg)
    students = [Student(CE(), 0)] + [Student(FKD(), e) for e in counts]
    w_s, _ = train_students(cfg, data, seed, students, Targets(*evaluate(w_t, data.train.x, cfg)), engine)
    corr_s = view_correlations(w_s, data.features, cfg)
    learned_s = views_learned(corr_s, cfg)
    cells = []
    for i, e in enumerate(counts, start=1):
        new = learned_t[:e].any(0) & ~learned_s[0]
        for j, v in new.nonzero().tolist():
            cells.append({
                "seed": seed, "teachers": e, "class": j, "view": v, "covered": bool(learned_s[i, j, v]),
                "student_corr": float(corr_s[i, j, v]), "student_other_view_corr": float(corr_s[i, j, 1 - v]),
                "alone_corr": float(corr_s[0, j, v]),
                "teacher_corrs": [float(corr_t[t, j, v]) for t in range(e) if learned_t[t, j, v]],
            })  # fmt: skip
    return cells


@dataclass(frozen=True)
class Options:
    """The study's settings, as scripts/multiview_missed_views.py's flags give them."""

    seeds: list[int]
    teachers: str
    config: Path | None
    device: str
    out: Path


def run(a: Options) -> None:
    """Every seed's cells, printed and written to ``a.out`` (JSON)."""
    cfg = Config.load(a.config) if a.config else Config()
    device = resolve_device(a.device)
    counts = sorted(int(e) for e in a.teachers.split(","))
    cells = []
    for seed in a.seeds:
        for c in seed_cells(cfg, seed, counts, device):
            cells.append(c)
            print(json.dumps(c), flush=True)
    for covered in (True, False):
        cs = [c for c in cells if c["covered"] == covered]
        if cs:
            mean = {k: sum(c[k] for c in cs) / len(cs) for k in ("student_corr", "student_other_view_corr")}
            print(f"{'covered' if covered else 'missed'}: {len(cs)} cells, student corr {mean['student_corr']:.2f}, "
                  f"other view {mean['student_other_view_corr']:.2f}")
    write_json(a.out, {"config": cfg.to_dict(), "environment": environment(device), "cells": cells})

