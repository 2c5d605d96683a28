"""The simulation as a testbed: every distillation loss of the toolkit as a student of the multi-view theory (the
phases and the rule: scripts/multiview_testbed.py's --help)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fkdapp.runtime import atomic_write_text, write_json
from fkdapp.settings import seeds_text
from fkdapp.stats import format_ci, mean_ci
from multiview.decompose import law
from multiview.methods import METHODS, parse_method
from multiview.records import DistillResults, read_distill
from multiview.report import by_method, early_ratio, rank_methods
from studies.figures import plot_testbed
from studies.select import choose, student_scores
from studies.sweeps import cli_sweep

FACTORS = {"fkd": (0.3, 1.0, 3.0), "fkd-raw": (0.3, 1.0, 3.0), "kd": (0.3, 1.0, 3.0, 10.0),
           "dkd": (0.3, 1.0, 3.0, 10.0), "sp": (1e-4, 1e-2, 1.0), "pkt": (1e-4, 1e-2, 1.0), "rkd": (1e-4, 1e-2, 1.0)}
DEFAULT_FACTORS = (0.1, 1.0, 10.0)  # a method registered later
#: The testbed's methods, as its committed records ran (every registered method then; later methods by --methods).
TESTBED = ("fkd", "fkd-raw", "kd", "dkd", "sp", "pkt", "rkd")


@dataclass(frozen=True)
class Options:
    """The study's settings, as scripts/multiview_testbed.py's flags give them."""

    out: Path
    jobs: int
    select_seeds: list[int]
    report_seeds: list[int]
    overrides: list[str]
    methods: str | None
    no_report: bool
    table: Path
    figure: Path


def run(a: Options) -> None:
    """Select each method's weight, report the chosen ones (each sweep resumes); then the table and the figure."""
    a.out.mkdir(parents=True, exist_ok=True)
    grid = weight_grid(a.methods.split(",") if a.methods else list(TESTBED))
    t_select = sum(cli_sweep(a.out / "select" / name, list(g.values()), seeds_text(a.select_seeds), "0,2,4",
                             jobs=a.jobs, pool=a.out / "teachers", overrides=a.overrides) for name, g in grid.items())
    chosen, selection = choose_weights(a.out, grid, set(a.select_seeds))
    rep, t_report = report_sweep(a, chosen)
    rows = result_rows(rep, chosen)
    write_json(a.out / "testbed.json", {"selection": selection, "chosen": chosen, "rows": rows,
                                           "seconds": {"select": t_select, "report": t_report},
                                           "config": rep.config, "environment": rep.environment})
    lines = table(a, rep, rows, selection)
    atomic_write_text(a.table, "\n".join(lines) + "\n")
    plot_testbed(rep, a.figure)
    print("\n".join(lines))
    print(f"wrote {a.table}, {a.figure} and {a.out / 'testbed.json'}")


def weight_grid(names: list[str]) -> dict[str, dict[float, str]]:
    """Each distillation method's (no variants) default spec -> {multiple of its weight: the spec at that weight}."""
    methods = [METHODS[n]() for n in names if METHODS[n].USES_TEACHERS and not METHODS[n].VARIANT_OF]
    return {m.spec: {f: m.with_params(**{m.WEIGHT: m.params[m.WEIGHT] * f}).spec
                     for f in FACTORS.get(m.NAME, DEFAULT_FACTORS)} for m in methods}


def choose_weights(out: Path, grid: dict[str, dict[float, str]], seeds: set[int]) -> tuple[dict, dict]:
    """Each method's chosen spec (the lowest failure at E = 2, 4 on the selection ``seeds`` whose multi-view error
    stays <= 0.02, else the default weight) and the scores it was chosen from."""
    chosen, selection = {}, {}
    for name, by_factor in grid.items():
        groups = by_method(read_distill(out / "select" / name / "results.json"), min_teachers=1)
        groups = {m: {e: [s for s in ss if s.seed in seeds] for e, ss in g.items()} for m, g in groups.items()}
        scores = {f: {**student_scores([s for e in (2, 4) for s in groups[spec].get(e, [])]), "spec": spec}
                  for f, spec in by_factor.items()}
        best = choose(scores, lambda v: v["multi_view_error"] <= 0.02, "failure", fallback=1.0)
        chosen[name], selection[name] = by_factor[best], {"scores": scores, "chosen_factor": best}
    return chosen, selection


def report_sweep(a: Options, chosen: dict[str, str]) -> tuple[DistillResults, float]:
    """The chosen specs (and CE) on the report seeds, E = 0..4, and the sweep's wall time; with ``no_report``, the
    selection sweeps' own students of the chosen specs (no new run)."""
    if not a.no_report:
        seconds = cli_sweep(a.out / "report" / "all", [*chosen.values(), "ce"], seeds_text(a.report_seeds), "0-4",
                            jobs=a.jobs, pool=a.out / "teachers", overrides=a.overrides)
        return read_distill(a.out / "report" / "all" / "results.json"), seconds
    seeds = set(a.select_seeds)
    parts = [read_distill(a.out / "select" / name / "results.json") for name in chosen]
    rep = parts[0]
    rep.students = [s for p in parts for s in p.students if s.method in chosen.values() and s.seed in seeds]
    rep.methods = list(chosen.values())
    rep.seeds_done = sorted(seeds)
    return rep, 0.0


def result_rows(rep: DistillResults, chosen: dict[str, str]) -> list[dict]:
    """One row per (chosen method, E): failure and own views kept (mean, 95% half-width), the teachers' new views
    covered, uncovered against the ideal union, the largest multi-view error and the early gradient ratio."""
    groups = by_method(rep)
    return [{"method": name, "spec": spec, "family": parse_method(spec).FAMILY, "teachers": e,
             "failure": mean_ci([s.single_view_failure for s in ss]),
             "own_views_kept": mean_ci([s.own_views_kept for s in ss if s.own_views_kept is not None]),
             "teacher_new_views_covered": mean_ci([s.teacher_new_views_covered for s in ss
                                                   if s.teacher_new_views_covered is not None] or [np.nan]),
             "uncovered": float(np.mean([s.uncovered_fraction for s in ss])),
             "ideal_uncovered": float(np.mean([s.ideal_uncovered for s in ss])),
             "multi_view_error_max": max(s.multi_view_error for s in ss),
             "early_grad_ratio_median": float(np.median([r for s in ss if (r := early_ratio(s)) is not None]
                                                        or [np.nan]))}
            for name, spec in chosen.items() for e, ss in sorted(groups[spec].items())]


def table(a: Options, rep: DistillResults, rows: list[dict], selection: dict) -> list[str]:
    """The study's Markdown: the rows, the ranking over E >= 1 and the selection's scores."""
    chosen_on = seeds_text(a.select_seeds)
    reported = "the selection sweeps themselves (E = 0, 2, 4)" if a.no_report else f"seeds {seeds_text(a.report_seeds)}"
    lines = [f"Testbed (k = {rep.config['k']}; each method's weight chosen on seeds {chosen_on} at E = 2, 4 "
             f"from its grid (below); reported on {reported}; mean ± 95% interval over seeds; CPU, "
             f"{rep.environment.get('device_name')}, {a.jobs} processes at 1 thread)", "",
             "| method (chosen spec) | family | E | failure | 2^-(E+1) | uncovered (ideal union) | own views kept "
             "| teachers' new views covered | early gradient ratio to CE (median) | max multi-view error |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['spec']} | {r['family']} | {r['teachers']} | {format_ci(*r['failure'])} "
              f"| {law(r['teachers']):.4f} | {r['uncovered']:.3f} ({r['ideal_uncovered']:.3f}) "
              f"| {r['own_views_kept'][0]:.2f} | {r['teacher_new_views_covered'][0]:.2f} "
              f"| {r['early_grad_ratio_median']:.3g} | {r['multi_view_error_max']:.3f} |" for r in rows]
    lines += ["", "Ranking over E >= 1:", "",
              "| rank | method | family | failure (E >= 1) | own views kept | new views covered | early ratio |",
              "|---|---|---|---|---|---|---|"]
    lines += [f"| {i} | {r['method']} | {r['family']} | {r['failure']} | {r['own']} | {r['new']} | {r['ratio']} |"
              for i, r in enumerate(rank_methods(rep), 1)]
    lines += ["", f"Selection (seeds {chosen_on}, mean failure at E = 2, 4 per multiple of the default):", ""]
    for name, v in selection.items():
        scored = ", ".join(f"{f:g}x {s['failure']:.3f} (multi-view error {s['multi_view_error']:.3f})"
                           for f, s in v["scores"].items())
        lines.append(f"- {name}: {scored}; chosen {v['chosen_factor']:g}x")
    return lines
