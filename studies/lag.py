"""The E >= 2 lag: FKD variants, a fair KD baseline, a rule fixed in advance and the law against k (the phases
and the rule: scripts/multiview_lag.py's --help)."""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fkdapp.errors import UserError
from fkdapp.runtime import atomic_write_text, write_json
from fkdapp.settings import seeds_arg, seeds_text
from fkdapp.stats import format_ci, mean_ci
from multiview.decompose import law, nobody_had
from multiview.records import DistillResults, read_distill
from multiview.report import by_method, collapsed_views
from studies.figures import plot_balance, plot_k_trend
from studies.select import choose, student_scores
from studies.sweeps import cli_sweep

FKD_VARIANTS = [
    "fkd",
    "fkd:eps_rel=0.1",
    "fkd:eps_rel=0.1,balance=0.3",
    "fkd:eps_rel=0.1,balance=0.5",
    "fkd:eps_rel=0.1,balance=1",
    "fkd:eps_rel=0.1,balance=0.5,balance_until=200",
    "fkd:eps_rel=0.1,balance=1,balance_until=200",
    "fkd-warm:kd_steps=100",
    "fkd-warm:kd_steps=200",
    "fkd:kernel_only=150",
    "fkd:kernel_only=400",
    "fkd:eps_rel=0.1,balance=1,balance_until=150",  # hand-over: scale-free kernel, balanced, then lambda
]
KD_GRID = ["kd:kd_weight=1", "kd", "kd:kd_weight=10", "kd:kd_weight=30"]
#: The seeds of each kNN phase where --k-seeds gives none.
K_SEEDS = [("10", list(range(8))), ("20", list(range(4))), ("30", list(range(2)))]
SHIPPED = "fkd"
CONFIGS = Path(__file__).resolve().parents[1] / "configs"  # configs/kNN.json of the kNN phases


def summary(results: DistillResults, spec: str, seeds: set[int] | None = None) -> dict[int, dict]:
    """Per E: failure, ratios, own views kept, new views covered, fraction of views nobody had, max multi-view error
    (over ``seeds``, default all)."""
    out = {}
    for e, ss in sorted(by_method(results).get(spec, {}).items()):
        ss = [s for s in ss if seeds is None or s.seed in seeds]
        if not ss:
            continue
        unc, ideal = np.mean([s.uncovered_fraction for s in ss]), np.mean([s.ideal_uncovered for s in ss])
        kept = [s.own_views_kept for s in ss if s.own_views_kept is not None]
        new = [s.teacher_new_views_covered for s in ss if s.teacher_new_views_covered is not None]
        lost = [c for c in map(collapsed_views, ss) if c is not None]
        out[e] = {"failure": mean_ci([s.single_view_failure for s in ss]), "theory": law(e),
                  "failure_over_theory": float(np.mean([s.single_view_failure for s in ss]) / law(e)),
                  "uncovered_over_ideal": float(unc / ideal) if ideal > 0 else None,
                  "own_views_kept": mean_ci(kept) if kept else None,
                  "new_views_covered": mean_ci(new) if new else None,
                  "views_nobody_had": float(np.mean([nobody_had(s) for s in ss])),
                  "max_multi_view_error": max(s.multi_view_error for s in ss),
                  "views_collapsed": float(np.mean(lost)) if lost else None, "seeds": len(ss)}
    return out


def pick(results: DistillResults, specs: list[str], seeds: set[int]) -> tuple[str, dict]:
    """The rule of phase 1: lowest mean failure at E = 2, 4 (on ``seeds``) among specs keeping >= 90% of their own
    views with multi-view error <= 2%."""
    groups = by_method(results)
    scores = {spec: student_scores([s for e in (2, 4) for s in groups.get(spec, {}).get(e, []) if s.seed in seeds])
              for spec in specs}
    eligible = lambda v: v["own_views_kept"] >= 0.9 and v["multi_view_error"] <= 0.02  # noqa: E731
    return choose(scores, eligible, "failure", fallback=specs[0]), scores


def verdict(s_var: dict, s_def: dict, seeds: str) -> dict:
    """The decision rule at one k (see the module docstring), on ``seeds``."""
    checks = {f"failure_E{e}_le_0.7x": s_var[e]["failure"][0] <= 0.7 * s_def[e]["failure"][0] for e in (2, 3, 4)}
    kept = [s_var[e]["own_views_kept"][0] for e in (1, 2, 3, 4) if s_var[e]["own_views_kept"]]
    checks["own_views_kept_ge_0.9"] = bool(kept) and min(kept) >= 0.9
    checks["multi_view_error_le_0.02"] = max(s_var[e]["max_multi_view_error"] for e in s_var) <= 0.02
    return {"checks": checks, "passes": all(checks.values()), "seeds": seeds}


def k_keys(state: dict) -> list[str]:
    """The per-k summaries of a state ("k10", "k20", ...), in order of k."""
    return sorted((key for key in state if re.fullmatch(r"k\d+", key)), key=lambda key: int(key[1:]))


def summary_keys(state: dict) -> list[str]:
    """Every per-spec summary of a state: the k-trend's and the decision rule's seeds at k = 10 ("k10_report")."""
    return k_keys(state) + (["k10_report"] if "k10_report" in state else [])


def _int_keys(state: dict) -> dict:
    """A state read back from JSON: the E keys of the per-k summaries as integers again."""
    for k in summary_keys(state):
        state[k] = {spec: {int(e): v for e, v in by_e.items()} for spec, by_e in state[k].items()}
    return state


def k_seeds_arg(text: str) -> tuple[str, list[int]]:
    """``K:SEEDS`` (a --k-seeds value: phase kK's seeds, in the one seed grammar) -> (K, seeds)."""
    k, sep, seeds = text.partition(":")
    if not (sep and k.strip().isdigit()):
        raise argparse.ArgumentTypeError(f"{text!r}: give K:SEEDS, e.g. 20:0-3")
    return k.strip(), seeds_arg(seeds)


def run_sweep(out: Path, specs: list[str], seeds: str, teachers: str, jobs: int, config: str | None,
              pool: Path, overrides: list[str], device: str = "cpu") -> DistillResults:
    """One phase's ``multiview sweep`` (:func:`studies.sweeps.cli_sweep`), read back."""
    cli_sweep(out, specs, seeds, teachers, jobs=jobs, pool=pool, config=config, overrides=overrides, device=device)
    return read_distill(out / "results.json")


@dataclass(frozen=True)
class Options:
    """The study's settings, as scripts/multiview_lag.py's flags give them."""

    out: Path
    jobs: int
    phases: str
    figures: Path
    select_seeds: list[int]
    report_seeds: list[int]
    k_seeds: list[tuple[str, list[int]]] | None  # (K, its seeds) per kNN phase; None: K_SEEDS
    device: str
    variant: str | None
    results: str | None
    overrides: list[str]
    variants: str | None
    kd_grid: str | None


@dataclass
class Study:
    """The study's state (``OUT/lag.json``, read back where it exists) and what its phases share."""

    a: Options
    state: dict
    variants: list[str]
    kd_grid: list[str]
    k_seeds: dict[str, list[int]]

    @classmethod
    def open(cls, a: Options) -> Study:
        variants = a.variants.split(";") if a.variants else FKD_VARIANTS
        path = a.out / "lag.json"
        return cls(a, _int_keys(json.loads(path.read_text())) if path.is_file() else {},
                   variants if SHIPPED in variants else [SHIPPED, *variants],
                   a.kd_grid.split(";") if a.kd_grid else KD_GRID, dict(K_SEEDS if a.k_seeds is None else a.k_seeds))

    def save(self) -> None:
        write_json(self.a.out / "lag.json", self.state)

    @property
    def best(self) -> str:
        """The FKD variant reported: the one named by --variant, else the selection's, else the shipped fkd."""
        return self.a.variant or self.state.get("select", {}).get("best_variant", SHIPPED)

    @property
    def best_kd(self) -> str:
        return self.state.get("select", {}).get("best_kd", "kd")

    @property
    def compare(self) -> list[str]:
        """The specs of the report at k = 10: shipped fkd, the best variant, the best KD and KD as shipped."""
        return list(dict.fromkeys([SHIPPED, self.best, self.best_kd, "kd"]))

    def sweep(self, folder: str, specs: list[str], seeds: list[int], teachers: str, config: str | None = None,
              pool: str = "teachers-k10") -> DistillResults:
        return run_sweep(self.a.out / folder, specs, seeds_text(seeds), teachers, self.a.jobs, config,
                         self.a.out / pool, self.a.overrides, self.a.device)


def run(a: Options) -> None:
    """The phases named (each sweep resumes), then the state, the tables and the figures."""
    study = Study.open(a)
    phases = [p for p in a.phases.split(",") if p]  # none: tabulate what is there (and --results)
    if "select" in phases:
        select(study)
    if a.variant is None and "select" not in study.state and phases:
        raise UserError(f"no selection in {a.out / 'lag.json'}; run the select phase or name --variant SPEC")
    if "report" in phases:
        report(study)
    if "k10" in phases:
        extend_k10(study)
    for k in (p for p in phases if re.fullmatch(r"k\d+", p) and p != "k10"):
        k_trend(study, k)
    add_results(study)
    write_outputs(study)


def select(study: Study) -> None:
    """Phase 1: every FKD variant and KD weight at E = 2, 4 on the selection seeds; the best of each by :func:`pick`."""
    seeds = study.a.select_seeds
    sel = study.sweep("select", study.variants + study.kd_grid, seeds, "0,2,4")
    best, fkd_scores = pick(sel, study.variants, set(seeds))
    best_kd, kd_scores = pick(sel, study.kd_grid, set(seeds))
    study.state["select"] = {"best_variant": best, "best_kd": best_kd, "fkd_scores": fkd_scores,
                             "kd_scores": kd_scores}
    study.save()
    print("select:", best, best_kd, flush=True)


def report(study: Study) -> None:
    """Phase 2: the compared specs at k = 10, E = 0..4, on the report seeds, and the decision rule there."""
    seeds = study.a.report_seeds
    rep = study.sweep("report-k10", study.compare, seeds, "0-4")  # one folder for report and k10 (by seed)
    state = study.state
    state["k10_report"] = {spec: summary(rep, spec, set(seeds)) for spec in study.compare}
    state.setdefault("k10", state["k10_report"])
    state["verdict_k10"] = (verdict(state["k10_report"][study.best], state["k10_report"][SHIPPED], seeds_text(seeds))
                            if study.best != SHIPPED else None)
    study.save()
    plot_balance(rep, [SHIPPED, study.best, study.best_kd], study.a.figures / "multiview_lag_balance.png")


def extend_k10(study: Study) -> None:
    """Phase k10: the report's sweep on more seeds (the finished ones are skipped): the k-trend's k = 10."""
    if "10" not in study.k_seeds:
        raise UserError("phase k10 needs its seeds in --k-seeds (as 10:0-7)")
    rep = study.sweep("report-k10", study.compare, study.k_seeds["10"], "0-4")
    study.state["k10"] = {spec: summary(rep, spec) for spec in study.compare}
    study.save()


def k_trend(study: Study, k: str) -> None:
    """Phase kNN: shipped fkd and the best variant with configs/kNN.json (and the rule again at k = 20)."""
    config = CONFIGS / f"{k}.json"
    if not config.is_file() or k[1:] not in study.k_seeds:
        raise UserError(f"phase {k} needs {config} and its seeds in --k-seeds (as {k[1:]}:0-3)")
    specs = list(dict.fromkeys([SHIPPED, study.best]))
    r = study.sweep(f"report-{k}", specs, study.k_seeds[k[1:]], "0-4", str(config), f"teachers-{k}")
    study.state[k] = {spec: summary(r, spec) for spec in specs}
    if k == "k20" and study.best != SHIPPED:
        study.state["verdict_k20"] = verdict(study.state[k][study.best], study.state[k][SHIPPED],
                                             seeds_text(study.k_seeds["20"]))
    study.save()


def add_results(study: Study) -> None:
    """Shipped fkd at the k of each --results K:FILE not run here (a sweep recorded elsewhere, named as the source)."""
    for item in (study.a.results.split(",") if study.a.results else []):
        k, path = item.split(":", 1)
        if f"k{k}" not in study.state:
            study.state[f"k{k}"] = {SHIPPED: summary(read_distill(path), SHIPPED)}
            study.state.setdefault("k_sources", {})[f"k{k}"] = path


def write_outputs(study: Study) -> None:
    """The k-trend figure, the state and the tables beside the figures."""
    state, figures = study.state, study.a.figures
    trend = {int(k[1:]): {spec: state[k][spec] for spec in state[k]} for k in k_keys(state)}
    if trend:
        plot_k_trend(trend, figures / "multiview_lag_k.png")
    write_json(figures / "multiview_lag.json", state)
    atomic_write_text(figures / "multiview_lag.md", table(state) + "\n")
    print(table(state))
    print(f"wrote {figures / 'multiview_lag.json'} and {figures / 'multiview_lag.md'}")


def ci(v: list[float] | None) -> str:
    """A (mean, half-width) pair as text; the half-width is NaN for one seed."""
    return format_ci(*v, 3) if v else "-"


def table(state: dict) -> str:
    """The selection scores, then per k, method and E: failure (mean ± 95% interval), ratios, views, and the
    decision rule's verdict."""
    lines = []
    if "select" in state:
        sel = state["select"]
        lines += [f"Selection (mean over E = 2, 4 and the selection seeds): best FKD variant {sel['best_variant']}, "
                  f"best KD {sel['best_kd']}", "", "| spec | failure | own views kept | multi-view error |",
                  "|---|---|---|---|"]
        for spec, v in {**sel["fkd_scores"], **sel["kd_scores"]}.items():
            lines.append(f"| {spec} | {v['failure']:.3f} | {v['own_views_kept']:.2f} | {v['multi_view_error']:.3f} |")
    for k in summary_keys(state):
        source = state.get("k_sources", {}).get(k)
        title = "k = 10 on the decision rule's seeds" if k == "k10_report" else f"k = {k[1:]}"
        lines += ["", title + (f" (from {source})" if source else "") + ":", "",
                  "| spec | E | failure | 2^-(E+1) | failure / theory | uncovered / ideal "
                  "| own views kept | teachers' new views covered | views nobody had | max multi-view error "
                  "| views grown then lost | seeds |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for spec, by_e in state[k].items():
            for e, r in sorted(by_e.items()):
                ratio = "-" if r["uncovered_over_ideal"] is None else f"{r['uncovered_over_ideal']:.2f}"
                lost = "-" if r.get("views_collapsed") is None else f"{r['views_collapsed']:.2f}"
                lines.append(f"| {spec} | {e} | {ci(r['failure'])} | {r['theory']:.4f} "
                             f"| {r['failure_over_theory']:.2f} | {ratio} | {ci(r['own_views_kept'])} "
                             f"| {ci(r['new_views_covered'])} "
                             f"| {r['views_nobody_had']:.3f} | {r['max_multi_view_error']:.3f} | {lost} "
                             f"| {r['seeds']} |")
    for key in ("verdict_k10", "verdict_k20"):
        if state.get(key):
            v = state[key]
            lines += ["", f"Decision rule at {key[-3:]} (seeds {v.get('seeds', '?')}): "
                      f"{'passes' if v['passes'] else 'fails'} ("
                      + ", ".join(f"{c}: {'yes' if ok else 'no'}" for c, ok in v["checks"].items()) + ")"]
    return "\n".join(lines)

