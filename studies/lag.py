"""The E >= 2 lag: FKD variants, a fair KD baseline, a rule fixed in advance and the law against k (the phases
and the rule: scripts/multiview_lag.py's --help)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fkdapp.errors import UserError
from fkdapp.runtime import atomic_write_text, write_json
from fkdapp.settings import parse_seeds
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
    seeds: str
    k_seeds: str
    device: str
    variant: str | None
    results: str | None
    overrides: list[str]
    variants: str | None
    kd_grid: str | None




def run(a: Options) -> None:
    """The phases named (each sweep resumes), then the state, the tables and the figures."""
    s_select, s_report = a.seeds.split(",")
    k_seeds = dict(item.split(":") for item in a.k_seeds.split(","))
    variants = a.variants.split(";") if a.variants else FKD_VARIANTS
    kd_grid = a.kd_grid.split(";") if a.kd_grid else KD_GRID
    if SHIPPED not in variants:
        variants = [SHIPPED, *variants]
    phases = [p for p in a.phases.split(",") if p]  # none: tabulate what is there (and --results)
    pool10 = a.out / "teachers-k10"
    state_path = a.out / "lag.json"
    state = _int_keys(json.loads(state_path.read_text())) if state_path.is_file() else {}
    if "select" in phases:
        sel = run_sweep(a.out / "select", variants + kd_grid, s_select, "0,2,4", a.jobs, None, pool10,
                        a.overrides, a.device)
        chosen_on = set(parse_seeds(s_select))
        best, fkd_scores = pick(sel, variants, chosen_on)
        best_kd, kd_scores = pick(sel, kd_grid, chosen_on)
        state["select"] = {"best_variant": best, "best_kd": best_kd, "fkd_scores": fkd_scores, "kd_scores": kd_scores}
        write_json(state_path, state)
        print("select:", state["select"]["best_variant"], state["select"]["best_kd"], flush=True)
    if a.variant is None and "select" not in state and phases:
        raise UserError("no selection in " + str(state_path) + "; run the select phase or name --variant SPEC")
    best = a.variant or state.get("select", {}).get("best_variant", SHIPPED)
    best_kd = state.get("select", {}).get("best_kd", "kd")
    compare = list(dict.fromkeys([SHIPPED, best, best_kd, "kd"]))

    def report_sweep(seeds: str) -> DistillResults:  # one sweep folder for report and k10 (it resumes by seed)
        return run_sweep(a.out / "report-k10", compare, seeds, "0-4", a.jobs, None, pool10, a.overrides,
                         a.device)

    if "report" in phases:
        rep = report_sweep(s_report)
        on = set(parse_seeds(s_report))
        state["k10_report"] = {spec: summary(rep, spec, on) for spec in compare}
        state.setdefault("k10", state["k10_report"])
        state["verdict_k10"] = (verdict(state["k10_report"][best], state["k10_report"][SHIPPED], s_report)
                                if best != SHIPPED else None)
        write_json(state_path, state)
        plot_balance(rep, [SHIPPED, best, best_kd], a.figures / "multiview_lag_balance.png")
    if "k10" in phases:  # the report's sweep on more seeds (the finished ones are skipped)
        if "10" not in k_seeds:
            raise UserError("phase k10 needs its seeds in --k-seeds (as 10:0-7)")
        rep = report_sweep(k_seeds["10"])
        state["k10"] = {spec: summary(rep, spec) for spec in compare}
        write_json(state_path, state)
    for k in (p for p in phases if re.fullmatch(r"k\d+", p) and p != "k10"):
        config = CONFIGS / f"{k}.json"
        if not config.is_file() or k[1:] not in k_seeds:
            raise UserError(f"phase {k} needs {config} and its seeds in --k-seeds (as {k[1:]}:0-3)")
        r = run_sweep(a.out / f"report-{k}", list(dict.fromkeys([SHIPPED, best])), k_seeds[k[1:]], "0-4",
                      a.jobs, str(config), a.out / f"teachers-{k}", a.overrides, a.device)
        state[k] = {spec: summary(r, spec) for spec in dict.fromkeys([SHIPPED, best])}
        if k == "k20" and best != SHIPPED:
            state["verdict_k20"] = verdict(state[k][best], state[k][SHIPPED], k_seeds["20"])
        write_json(state_path, state)
    for item in (a.results.split(",") if a.results else []):
        k, path = item.split(":", 1)
        if f"k{k}" not in state:
            state[f"k{k}"] = {SHIPPED: summary(read_distill(path), SHIPPED)}
            state.setdefault("k_sources", {})[f"k{k}"] = path
    trend = {int(k[1:]): {spec: state[k][spec] for spec in state[k]} for k in k_keys(state)}
    if trend:
        plot_k_trend(trend, a.figures / "multiview_lag_k.png")
    write_json(a.figures / "multiview_lag.json", state)
    atomic_write_text(a.figures / "multiview_lag.md", table(state) + "\n")
    print(table(state))
    print(f"wrote {a.figures / 'multiview_lag.json'} and {a.figures / 'multiview_lag.md'}")

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

