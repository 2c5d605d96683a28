"""Single-view training data against the lottery and the FKD curve: one sweep per mu (the design:
scripts/multiview_mu.py's --help)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from fkdapp.runtime import resolve_device, write_json
from fkdapp.stats import mean_ci
from multiview.config import Config
from multiview.experiment import distill_experiment
from multiview.methods import parse_methods
from multiview.records import DistillResults
from multiview.report import group_students, lottery_purity
from studies.figures import plot_mu


def summary(mu: float, results: DistillResults) -> dict:
    one, both = lottery_purity(results.teachers)
    failure = {
        f"{m}@{e}": mean_ci([s.single_view_failure for s in ss]) for (m, e), ss in group_students(results).items()
    }
    return {
        "mu": mu,
        "seeds": results.seeds_done,
        "one_view_pairs": one,
        "both_view_pairs": both,
        "failure_mean_ci": failure,
    }


@dataclass(frozen=True)
class Options:
    """The study's settings, as scripts/multiview_mu.py's flags give them."""

    mu: str
    seeds: list[int]
    teachers: str
    methods: str
    config: Path | None
    device: str
    out: Path
    figure: Path


def run(a: Options) -> None:
    """One resumable sweep per mu; the summary to OUT/mu.json, the figure."""
    counts = sorted(int(e) for e in a.teachers.split(","))
    device = resolve_device(a.device)
    base = Config.load(a.config) if a.config else Config()
    runs, summaries = [], []
    for mu in (float(m) for m in a.mu.split(",")):
        cfg = base.with_(mu=mu)
        methods = parse_methods(a.methods, cfg.method_params)
        r = distill_experiment(cfg, a.seeds, counts, methods, device, a.out / f"mu{mu:g}")
        runs.append((mu, r))
        summaries.append(summary(mu, r))
        print(json.dumps(summaries[-1]), flush=True)
    write_json(a.out / "mu.json", {"device": str(device), "runs": summaries})
    plot_mu(runs, a.figure, method=parse_methods(a.methods)[0].spec)
    print(f"wrote {a.figure} and {a.out / 'mu.json'}")

