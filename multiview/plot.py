"""Figures from a results.json: failure rate against E on a log2 axis and the mechanism (``multiview plot``), and the
series and error-bar helpers the studies' figures (:mod:`studies.figures`) draw with.

Drawn on matplotlib's Agg canvas (no display, no pyplot state). Bad input is a one-line ValueError.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from fkdapp.runtime import atomic_save_figure
from fkdapp.stats import mean_ci
from multiview.decompose import law
from multiview.methods import parse_method
from multiview.records import DistillResults
from multiview.report import by_method, group_ensembles

FLOOR = 1e-3  # failure rates below this are drawn at it (log axis)
ENSEMBLE_COLOR = "C3"
MECHANISM = (  # (key, label, marker, line style)
    ("mechanism_exact", "learned = own ∪ teachers' (fraction of students)", "o", "-"),
    ("own_views_kept", "own views kept", "s", "--"),
    ("teacher_new_views_covered", "teachers' new views covered", "^", ":"),
)


def check_results(results: object) -> None:
    if not isinstance(results, DistillResults):
        raise ValueError("this is a population file from `multiview train` (no students); plot a results.json "
                         "written by `multiview simulate` or `multiview sweep`")
    if not results.students:
        raise ValueError("the results file holds no students; run `multiview simulate` or `multiview sweep` first")


def styles(specs: Sequence[str]) -> dict[str, tuple[str, str]]:
    """Method spec -> (label, colour): the registry's label and colour for the first spec of each method, the
    spec itself and a colour of its own for the others (``kd:kd_weight=10`` beside ``kd``)."""
    out, used = {}, set()
    spare = (f"C{i}" for i in range(4, 100) if i != 7)
    for spec in specs:
        m = parse_method(spec)
        color = m.COLOR if m.COLOR not in used else next(spare)
        used.add(color)
        out[spec] = (m.LABEL if spec == m.NAME else spec, color)
    return out


def order_methods(specs: Sequence[str]) -> list[str]:
    """Distillation methods first, the no-teacher reference last."""
    return sorted(specs, key=lambda s: not parse_method(s).USES_TEACHERS)


def rate_stats(values: Sequence[float | None]) -> tuple[float, float] | None:
    """(mean, 95% half-width, 0 where undefined) over the values that are not None; None when there are none."""
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return None
    m, h = mean_ci(vals)
    return m, 0.0 if math.isnan(h) else h


def rate_series(groups: dict[int, list[Any]], key: str) -> tuple[list[int], list[float], list[float]]:
    """E, means and half-widths of the records' ``key`` for each E in ``groups`` that has a value."""
    es, ms, hs = [], [], []
    for e, records in sorted(groups.items()):
        st = rate_stats([getattr(r, key) for r in records])
        if st is not None:
            es.append(e)
            ms.append(st[0])
            hs.append(st[1])
    return es, ms, hs


def rate_errorbar(ax: Axes, es: list[float], means: list[float], hs: list[float], floor: float, **kw: Any) -> None:
    """Error bars for rates: means and interval ends clipped to [floor, 1] (a t-interval over few seeds can reach
    past both ends)."""
    ys = [min(max(m, floor), 1.0) for m in means]
    lo = [y - min(max(m - h, floor), y) for y, m, h in zip(ys, means, hs, strict=True)]
    hi = [max(min(m + h, 1.0), y) - y for y, m, h in zip(ys, means, hs, strict=True)]
    ax.errorbar(es, ys, yerr=[lo, hi], capsize=3, **kw)


def log_rate_errorbar(ax: Axes, es: list[float], means: list[float], hs: list[float], **kw: Any) -> None:
    rate_errorbar(ax, es, means, hs, FLOOR, **kw)


def _failure_panel(ax: Axes, results: DistillResults) -> None:
    groups = by_method(results)
    ensembles = group_ensembles(results)
    all_e = sorted({e for g in groups.values() for e in g} | set(ensembles))
    series = order_methods(list(groups))
    style = styles(series)
    shift = 0.06
    names = [*series, "ensemble"]
    offsets = {name: shift * (i - (len(names) - 1) / 2) for i, name in enumerate(names)}
    for method in series:
        es, ms, hs = rate_series(groups[method], "single_view_failure")
        label, color = style[method]
        distills = parse_method(method).USES_TEACHERS
        log_rate_errorbar(ax, [e + offsets[method] for e in es], ms, hs, color=color, marker="o",
                      ls="-" if distills else "none", label=label)
    main = next((m for m in series if parse_method(m).USES_TEACHERS), None)
    if main is not None:  # the first distillation method's uncovered views and ideal union
        for key, what, marker in (
            ("uncovered_fraction", "views uncovered", "v"),
            ("ideal_uncovered", "ideal union uncovered", "D"),
        ):
            es, ms, hs = rate_series(groups[main], key)
            log_rate_errorbar(ax, [e + offsets[main] for e in es], ms, hs, color=style[main][1], alpha=0.4,
                          marker=marker, ms=4, ls=":" if key == "uncovered_fraction" else "-.",
                          label=f"{main}: {what}")
    if ensembles:
        es, ms, hs = rate_series(ensembles, "single_view_failure")
        log_rate_errorbar(
            ax,
            [e + offsets["ensemble"] for e in es],
            ms,
            hs,
            color=ENSEMBLE_COLOR,
            marker="s",
            ls="-",
            label="teacher ensemble",
        )
    if all_e:
        grid = list(range(min(all_e), max(all_e) + 1))
        ax.plot(
            grid, [law(e) for e in grid], "k--", marker="x", ms=5, lw=1, label="theory FKD student 2^-(E+1)"
        )
        ens_grid = [e for e in grid if e >= 1]
        if ens_grid:
            ax.plot(
                ens_grid,
                [2.0**-e for e in ens_grid],
                "--",
                color="0.5",
                marker="x",
                ms=5,
                lw=1,
                label="theory ensemble 2^-E",
            )
        ax.set_xticks(grid)
        ax.set_xlim(grid[0] - 0.5, grid[-1] + 0.5)
    ax.set_yscale("log", base=2)
    ax.set_xlabel("E (teachers / ensemble size)")
    ax.set_ylabel(f"single-view failure rate (log2; values < {FLOOR:g} drawn at {FLOOR:g})")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the axes, off the data


def _mechanism_panel(ax: Axes, results: DistillResults) -> None:
    groups = {m: g for m, g in by_method(results, min_teachers=1).items() if parse_method(m).USES_TEACHERS}
    if not groups:
        ax.text(0.5, 0.5, "no students with teachers (E >= 1)", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    methods = order_methods(list(groups))
    style = styles(methods)
    for i, method in enumerate(methods):
        for j, (key, label, marker, ls) in enumerate(MECHANISM):
            es, ms, hs = rate_series(groups[method], key)
            dx = 0.05 * (i * len(MECHANISM) + j - (len(methods) * len(MECHANISM) - 1) / 2)
            rate_errorbar(ax, [e + dx for e in es], ms, hs, 0.0, color=style[method][1], marker=marker, ls=ls,
                      label=f"{method}: {label}")
    all_e = sorted({e for g in groups.values() for e in g})
    ax.set_xticks(list(range(all_e[0], all_e[-1] + 1)))
    ax.set_xlim(all_e[0] - 0.5, all_e[-1] + 0.5)
    ax.set_ylim(-0.05, 1.1)
    ax.set_xlabel("E (teachers)")
    ax.set_ylabel("fraction (mean over seeds, 95% interval)")
    ax.set_title("mechanism: does the student learn own ∪ teachers' views?", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))


def _save(fig: Figure, output: Path) -> None:
    """The figure rendered in memory, then written atomically (a failed write: one WriteError line)."""
    FigureCanvasAgg(fig)
    atomic_save_figure(fig, output, 120)


def plot_results(results: DistillResults, output: Path) -> None:
    """Two panels from distillation results: the failure rate against E (log2 axis, 95% intervals, theory
    lines) and the mechanism (exact union, own views kept, teachers' new views covered). Writes ``output``.
    The device that made the results is in the results file, not in the figure."""
    check_results(results)
    fig = Figure(figsize=(16, 5.2), layout="constrained")
    ax_fail, ax_mech = fig.subplots(1, 2)
    _failure_panel(ax_fail, results)
    _mechanism_panel(ax_mech, results)
    ax_fail.set_title(f"k = {results.config.get('k', '?')}, {len(results.seeds_done)} seed(s)", fontsize=9)
    _save(fig, output)


def plot_verdict(results: DistillResults, seeds: Sequence[int], output: Path, caption: str = "") -> None:
    """Rule v2's picture of a sweep on ``seeds``: each distillation method's and the teachers' ensemble's failure
    against E (mean, 95% interval, one small point per seed), the theory 2^-(E+1), the own-baseline law
    L(E) = min(2^-(E+1), f0 2^-E) and the ideal union's uncovered fraction; the verdict per method in the legend
    and ``caption`` (regime, seeds, machine) under the axes."""
    from multiview.verdict import judge, law_v2

    check_results(results)
    part = results.only(list(seeds))
    if not part.students:
        raise ValueError(f"no students on seeds {list(seeds)}; give seeds the file holds ({results.seeds_done})")
    fig = Figure(figsize=(13, 5.6), layout="constrained")
    ax = fig.subplots()
    groups = by_method(part, min_teachers=1)
    methods = [m for m in order_methods(list(groups)) if parse_method(m).USES_TEACHERS]
    style = styles(methods)
    names = [*methods, "ensemble"]
    offset = {n: 0.07 * (i - (len(names) - 1) / 2) for i, n in enumerate(names)}

    def draw(name: str, per_e: dict[int, list[Any]], color: str, label: str, marker: str) -> None:
        es, ms, hs = rate_series(per_e, "single_view_failure")
        log_rate_errorbar(ax, [e + offset[name] for e in es], ms, hs, color=color, marker=marker, ls="-", label=label)
        for e, records in per_e.items():
            ax.plot([e + offset[name] + 0.03] * len(records), [max(r.single_view_failure, FLOOR) for r in records],
                    "_", color=color, alpha=0.7, ms=7, mew=1.5)

    judged = {m: judge(results, m, seeds) for m in methods}
    for method in methods:
        label, color = style[method]
        verdict = textwrap.fill(judged[method].verdict, 60, subsequent_indent="  ")
        draw(method, groups[method], color, f"{label}: {verdict}", "o")
    draw("ensemble", group_ensembles(part), ENSEMBLE_COLOR, "teachers' ensemble (the null)", "s")
    grid = [1, 2, 3, 4]
    ax.plot(grid, [law(e) for e in grid], "k--", marker="x", lw=1, label="theory 2^-(E+1)")
    if methods:
        c = judged[methods[0]].cell
        ax.plot(grid, [law_v2(e, c.f0) for e in grid], "k-", lw=1.5, alpha=0.6,
                label=f"own-baseline law L(E) = min(2^-(E+1), f0 2^-E), f0 = {c.f0:.3f}")
        ax.plot(grid, [c.ideal[e] for e in grid], "-.", color=style[methods[0]][1], alpha=0.5,
                label=f"{methods[0]}: ideal union (own + teachers' views) uncovered")
    ax.set_yscale("log", base=2)
    ax.set_xticks(grid)
    ax.set_xlim(0.5, 4.5)
    ax.set_xlabel("E (teachers)")
    ax.set_ylabel("single-view failure (log2 axis)")
    ax.set_title(f"mean and 95% interval over seeds {seeds[0]}-{seeds[-1]}; each seed a dash (values < {FLOOR:g} at "
                 f"{FLOOR:g})", fontsize=8)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    if caption:
        fig.text(0.01, 0.005, caption, fontsize=7, va="bottom", wrap=True)
        fig.get_layout_engine().set(rect=(0, 0.06, 1, 0.94))
    _save(fig, output)
