"""Which of its teachers' views does an FKD student miss, and how badly? Per (seed, E, class, view) cell that the
teachers hold and the student's own lottery lacks: the student's view correlation max_r <w_j,r, v_j,l> with and
without teachers, its correlation with the class's other view, and the teachers' correlations.

Trains what one seed of `multiview sweep --methods fkd` trains (the same teachers, data and student initialisation)
and writes the cells to OUT (JSON), printing one line per cell.

    python scripts/multiview_missed_views.py --seeds 0,1 --teachers 2,4 --out runs/missed_views.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from fkdapp.runtime import environment, resolve_device, write_json
from multiview.config import Config
from multiview.data import make_data
from multiview.distill import Student, Targets
from multiview.engine import Engine, run_script
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--teachers", default="2,4")
    ap.add_argument("--config", type=Path, default=None, help="JSON file of config values [default: the defaults]")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", type=Path, default=Path("runs/missed_views.json"))
    args = ap.parse_args()
    cfg = Config.load(args.config) if args.config else Config()
    device = resolve_device(args.device)
    counts = sorted(int(e) for e in args.teachers.split(","))
    cells = []
    for seed in (int(s) for s in args.seeds.split(",")):
        for c in seed_cells(cfg, seed, counts, device):
            cells.append(c)
            print(json.dumps(c), flush=True)
    for covered in (True, False):
        cs = [c for c in cells if c["covered"] == covered]
        if cs:
            mean = {k: sum(c[k] for c in cs) / len(cs) for k in ("student_corr", "student_other_view_corr")}
            print(f"{'covered' if covered else 'missed'}: {len(cs)} cells, student corr {mean['student_corr']:.2f}, "
                  f"other view {mean['student_other_view_corr']:.2f}")
    write_json(args.out, {"config": cfg.to_dict(), "environment": environment(device), "cells": cells})


if __name__ == "__main__":
    run_script(main)
