"""Figures from a results.json: failure rate against E on a log2 axis, the mechanism, and a transfer frontier.

Drawn on matplotlib's Agg canvas (no display, no pyplot state). Bad input is a one-line ValueError.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from fkdapp.runtime import atomic_save_figure
from multiview.methods import parse_method
from multiview.records import DistillResults
from multiview.report import applied_ratio, by_method, group_ensembles, lottery_purity, mean_ci

FLOOR = 1e-3  # failure rates below this are drawn at it (log axis)
ENSEMBLE_COLOR = "C3"
MECHANISM = (  # (key, label, marker, line style)
    ("mechanism_exact", "learned = own ∪ teachers' (fraction of students)", "o", "-"),
    ("own_views_kept", "own views kept", "s", "--"),
    ("teacher_new_views_covered", "teachers' new views covered", "^", ":"),
)


def _check(results: object) -> None:
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


def _order(specs: Sequence[str]) -> list[str]:
    """Distillation methods first, the no-teacher reference last."""
    return sorted(specs, key=lambda s: not parse_method(s).USES_TEACHERS)


def _stats(values: Sequence[float | None]) -> tuple[float, float] | None:
    """(mean, 95% half-width, 0 where undefined) over the values that are not None; None when there are none."""
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return None
    m, h = mean_ci(vals)
    return m, 0.0 if math.isnan(h) else h


def _series(groups: dict[int, list[Any]], key: str) -> tuple[list[int], list[float], list[float]]:
    """E, means and half-widths of the records' ``key`` for each E in ``groups`` that has a value."""
    es, ms, hs = [], [], []
    for e, records in sorted(groups.items()):
        st = _stats([getattr(r, key) for r in records])
        if st is not None:
            es.append(e)
            ms.append(st[0])
            hs.append(st[1])
    return es, ms, hs


def _errorbar(ax: Axes, es: list[float], means: list[float], hs: list[float], floor: float, **kw: Any) -> None:
    """Error bars for rates: means and interval ends clipped to [floor, 1] (a t-interval over few seeds can reach
    past both ends)."""
    ys = [min(max(m, floor), 1.0) for m in means]
    lo = [y - min(max(m - h, floor), y) for y, m, h in zip(ys, means, hs, strict=True)]
    hi = [max(min(m + h, 1.0), y) - y for y, m, h in zip(ys, means, hs, strict=True)]
    ax.errorbar(es, ys, yerr=[lo, hi], capsize=3, **kw)


def _log_errorbar(ax: Axes, es: list[float], means: list[float], hs: list[float], **kw: Any) -> None:
    _errorbar(ax, es, means, hs, FLOOR, **kw)


def _failure_panel(ax: Axes, results: DistillResults) -> None:
    groups = by_method(results)
    ensembles = group_ensembles(results)
    all_e = sorted({e for g in groups.values() for e in g} | set(ensembles))
    series = _order(list(groups))
    style = styles(series)
    shift = 0.06
    names = [*series, "ensemble"]
    offsets = {name: shift * (i - (len(names) - 1) / 2) for i, name in enumerate(names)}
    for method in series:
        es, ms, hs = _series(groups[method], "single_view_failure")
        label, color = style[method]
        distills = parse_method(method).USES_TEACHERS
        _log_errorbar(ax, [e + offsets[method] for e in es], ms, hs, color=color, marker="o",
                      ls="-" if distills else "none", label=label)
    main = next((m for m in series if parse_method(m).USES_TEACHERS), None)
    if main is not None:  # the first distillation method's uncovered views and ideal union
        for key, what, marker in (
            ("uncovered_fraction", "views uncovered", "v"),
            ("ideal_uncovered", "ideal union uncovered", "D"),
        ):
            es, ms, hs = _series(groups[main], key)
            _log_errorbar(ax, [e + offsets[main] for e in es], ms, hs, color=style[main][1], alpha=0.4,
                          marker=marker, ms=4, ls=":" if key == "uncovered_fraction" else "-.",
                          label=f"{main}: {what}")
    if ensembles:
        es, ms, hs = _series(ensembles, "single_view_failure")
        _log_errorbar(
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
            grid, [2.0 ** -(e + 1) for e in grid], "k--", marker="x", ms=5, lw=1, label="theory FKD student 2^-(E+1)"
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
    methods = _order(list(groups))
    style = styles(methods)
    for i, method in enumerate(methods):
        for j, (key, label, marker, ls) in enumerate(MECHANISM):
            es, ms, hs = _series(groups[method], key)
            dx = 0.05 * (i * len(MECHANISM) + j - (len(methods) * len(MECHANISM) - 1) / 2)
            _errorbar(ax, [e + dx for e in es], ms, hs, 0.0, color=style[method][1], marker=marker, ls=ls,
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
    _check(results)
    fig = Figure(figsize=(16, 5.2), layout="constrained")
    ax_fail, ax_mech = fig.subplots(1, 2)
    _failure_panel(ax_fail, results)
    _mechanism_panel(ax_mech, results)
    ax_fail.set_title(f"k = {results.config.get('k', '?')}, {len(results.seeds_done)} seed(s)", fontsize=9)
    _save(fig, output)


FRONTIER_KEYS = ("variant", "lambda", "teachers", "own_views_kept", "teacher_new_views_covered")


def plot_frontier(points: list[dict[str, Any]], output: Path) -> None:
    """Own views kept (x) against teachers' new views covered (y): one series per ``variant``, each point labelled
    by its lambda, optional 95% half-widths ``own_ci`` / ``new_ci``; one panel per number of teachers E. Where the
    points carry ``scale`` (lambda over the variant's default) and ``uncovered_over_ideal``, a second row draws that
    ratio against the scale (1 = the ideal union)."""
    if not points:
        raise ValueError("no frontier points to plot")
    for p in points:
        missing = [key for key in FRONTIER_KEYS if key not in p]
        if missing:
            raise ValueError(f"a frontier point lacks {missing}")
    counts = sorted({int(p["teachers"]) for p in points})
    variants = list(dict.fromkeys(str(p["variant"]) for p in points))
    ratio_row = all("scale" in p and p.get("uncovered_over_ideal") is not None for p in points)
    rows = 2 if ratio_row else 1
    fig = Figure(figsize=(4.6 * len(counts), 4.4 * rows), layout="constrained")
    axes = fig.subplots(rows, len(counts), squeeze=False)
    for col, e in enumerate(counts):
        ax = axes[0][col]
        for i, variant in enumerate(variants):
            pts = sorted(
                (p for p in points if int(p["teachers"]) == e and str(p["variant"]) == variant),
                key=lambda p: float(p["lambda"]),
            )
            if not pts:
                continue
            xs = [float(p["own_views_kept"]) for p in pts]
            ys = [float(p["teacher_new_views_covered"]) for p in pts]
            xerr = [float(p.get("own_ci") or 0.0) for p in pts]
            yerr = [float(p.get("new_ci") or 0.0) for p in pts]
            ax.errorbar(xs, ys, xerr=xerr, yerr=yerr, color=f"C{i}", marker="o", lw=0.8, capsize=2, label=variant)
            for p, x, y in zip(pts, xs, ys, strict=True):
                ax.annotate(f"λ={float(p['lambda']):g}", (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
            if ratio_row:
                axes[1][col].plot([float(p["scale"]) for p in pts], [float(p["uncovered_over_ideal"]) for p in pts],
                                  color=f"C{i}", marker="o", lw=0.8, label=variant)  # fmt: skip
        ax.plot([1.0], [1.0], "k*", ms=10)
        ax.annotate("ideal", (1.0, 1.0), fontsize=7, xytext=(-22, -10), textcoords="offset points")
        ax.set_xlim(-0.05, 1.1)
        ax.set_ylim(-0.05, 1.1)
        ax.set_title(f"E = {e}", fontsize=9)
        ax.set_xlabel("own views kept")
        ax.set_ylabel("teachers' new views covered")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="best")
        if ratio_row:
            ax2 = axes[1][col]
            ax2.axhline(1.0, color="k", ls="--", lw=1, label="ideal union")
            ax2.axhline(1.25, color="k", ls=":", lw=1, label="goal: 1.25x")
            ax2.set_xscale("log")
            scales = sorted({float(p["scale"]) for p in points})
            ax2.set_xticks(scales, [f"{x:g}" for x in scales])
            ax2.minorticks_off()
            ax2.set_yscale("log", base=2)
            ax2.set_xlabel("lambda / the variant's default")
            ax2.set_ylabel("uncovered / ideal union")
            ax2.set_title(f"E = {e}: distance from the ideal union", fontsize=9)
            ax2.grid(True, alpha=0.3, which="both")
            ax2.legend(fontsize=7, loc="best")
    _save(fig, output)


def plot_mu(runs: Sequence[tuple[float, DistillResults]], output: Path, method: str = "fkd") -> None:
    """What single-view training data do: ``runs`` are (mu, results dict) pairs. Left, the lottery purity of the
    teachers (fraction of (network, class) pairs that learned exactly one view, and both views) against mu; right,
    the ``method`` student's single-view failure against E on a log2 axis, one line per mu, with 2^-(E+1)."""
    if not runs:
        raise ValueError("no results to plot")
    fig = Figure(figsize=(12, 4.8), layout="constrained")
    ax_lot, ax_fail = fig.subplots(1, 2)
    mus, one, both = [], [], []
    for mu, results in sorted(runs, key=lambda r: r[0]):
        _check(results)
        purity = lottery_purity(results.teachers)
        if purity is not None:
            mus.append(mu)
            one.append(purity[0])
            both.append(purity[1])
    ax_lot.plot(mus, one, "o-", label="exactly one view")
    ax_lot.plot(mus, both, "s--", label="both views")
    ax_lot.set_xlabel("mu (fraction of single-view training samples)")
    ax_lot.set_ylabel("fraction of (teacher, class) pairs")
    ax_lot.set_ylim(-0.05, 1.05)
    ax_lot.set_title("lottery purity of the teachers", fontsize=9)
    ax_lot.grid(True, alpha=0.3)
    ax_lot.legend(fontsize=8)
    all_e: set[int] = set()
    for i, (mu, results) in enumerate(sorted(runs, key=lambda r: r[0])):
        es, ms, hs = _series(by_method(results).get(method, {}), "single_view_failure")
        all_e |= set(es)
        n_seeds = len(results.seeds_done)
        _log_errorbar(ax_fail, es, ms, hs, color=f"C{i}", marker="o", label=f"mu = {mu:g} ({n_seeds} seeds)")
    if all_e:
        e_line = sorted(all_e)
        ax_fail.plot(e_line, [2.0 ** -(e + 1) for e in e_line], "k--", lw=1, label="theory 2^-(E+1)")
    ax_fail.set_yscale("log", base=2)
    ax_fail.set_xlabel("teachers E")
    ax_fail.set_ylabel(f"{method} student: single-view failure")
    ax_fail.set_title("the FKD curve (mean, 95% interval over seeds)", fontsize=9)
    ax_fail.grid(True, alpha=0.3, which="both")
    ax_fail.legend(fontsize=8)
    _save(fig, output)


def plot_testbed(results: DistillResults, output: Path) -> None:
    """One row of four panels, one line per method: single-view failure against E (log2, with 2^-(E+1)), own
    views kept, teachers' new views covered (mean and 95% interval over seeds), and the gradient-norm ratio of the
    distillation term to CE over the first training steps (median over students with teachers)."""
    _check(results)
    groups = by_method(results)
    specs = _order(list(groups))
    style = styles(specs)
    fig = Figure(figsize=(18, 4.6), layout="constrained")
    ax_f, ax_own, ax_new, ax_g = fig.subplots(1, 4)
    for spec in specs:
        label, color = style[spec]
        es, ms, hs = _series(groups[spec], "single_view_failure")
        _log_errorbar(ax_f, es, ms, hs, color=color, marker="o", label=spec)
        for ax, key in ((ax_own, "own_views_kept"), (ax_new, "teacher_new_views_covered")):
            g = {e: r for e, r in groups[spec].items() if e >= 1}
            es, ms, hs = _series(g, key)
            if es:
                _errorbar(ax, es, ms, hs, 0.0, color=color, marker="o", label=spec)
        students = [s for e, ss in groups[spec].items() if e >= 1 for s in ss if s.diagnostics.get("grad_ratio")]
        if students:
            steps, med = _median_by_step(students, lambda s, i, t: s.diagnostics["grad_ratio"][i])
            ax_g.plot(steps, [max(m, 1e-6) for m in med], color=color, marker=".", label=spec)
    all_e = sorted({e for g in groups.values() for e in g})
    ax_f.plot(all_e, [2.0 ** -(e + 1) for e in all_e], "k--", lw=1, label="2^-(E+1)")
    ax_f.set_yscale("log", base=2)
    ax_g.set_yscale("log")
    for ax, title, ylabel in (
        (ax_f, "single-view failure", "failure rate (log2)"),
        (ax_own, "own views kept", "fraction"),
        (ax_new, "teachers' new views covered", "fraction"),
        (ax_g, "distillation / CE gradient norm (median, E >= 1)", "ratio (log)"),
    ):
        ax.set_title(title, fontsize=9)
        ax.set_ylabel(ylabel)
        ax.set_xlabel("E (teachers)" if ax is not ax_g else "training step")
        ax.grid(True, alpha=0.3, which="both")
    for ax in (ax_own, ax_new):
        ax.set_ylim(-0.05, 1.05)
    ax_f.legend(fontsize=7, loc="lower left")
    ax_g.axhline(1.0, color="k", lw=0.8, ls=":")
    fig.suptitle(f"every distillation loss as a student of the multi-view theory (k = {results.config.get('k')}, "
                 f"{len(results.seeds_done)} seeds)", fontsize=10)
    _save(fig, output)


def _by_step(students: Sequence[Any], value: Callable[[Any, int, int], float | None]) -> dict[int, list[float]]:
    """step -> the values ``value(student, i, step)`` of the students probed at that step (a student is probed only
    while it trains, so students that stopped early have fewer probes); None values are left out."""
    out: dict[int, list[float]] = {}
    for s in students:
        for i, t in enumerate(s.diagnostics.get("probe_steps", [])):
            v = value(s, i, t)
            if v is not None:
                out.setdefault(t, []).append(v)
    return dict(sorted(out.items()))


def _median_by_step(students: Sequence[Any], value: Callable[[Any, int, int], float]) -> tuple[list[int], list[float]]:
    """The probe steps and, at each, the median of ``value`` over the students probed there."""
    got = _by_step(students, value)
    return list(got), [float(np.median(v)) for v in got.values()]


def _cell_means(students: Sequence[Any], which: str) -> tuple[list[int], list[float]]:
    """The probe steps and, at each, the mean over students of their mean view correlation over the cells of
    ``which`` kind: "own" (views of the student's own lottery) or "new" (its teachers' views it did not have)."""
    def value(s: Any, i: int, t: int) -> float | None:
        corr = s.diagnostics.get("view_corr")
        own, union = np.array(s.own_views, bool), np.array(s.teacher_views_union, bool)
        mask = own if which == "own" else union & ~own
        return float(np.array(corr[i])[mask].mean()) if corr and mask.any() else None

    got = _by_step(students, value)
    return list(got), [float(np.mean(v)) for v in got.values()]


def plot_balance(results: DistillResults, specs: Sequence[str], output: Path) -> None:
    """When the teachers act: left, the gradient-norm ratio of the distillation term to CE over training (median
    over the students with teachers) as it acted in the update, and for balanced methods also before rescaling
    (thin dotted); right, the mean correlation of the student's own views and of its teachers' new views over
    training (E >= 1)."""
    _check(results)
    groups = by_method(results, min_teachers=1)
    style = styles(list(specs))
    fig = Figure(figsize=(12, 4.6), layout="constrained")
    ax_g, ax_c = fig.subplots(1, 2)
    for spec in specs:
        students = [s for ss in groups.get(spec, {}).values() for s in ss if s.diagnostics.get("probe_steps")]
        if not students:
            continue
        _, color = style[spec]
        method = parse_method(spec)
        steps, med = _median_by_step(students, lambda s, i, t, m=method: applied_ratio(m, s, i, t))
        _, raw = _median_by_step(students, lambda s, i, t: s.diagnostics["grad_ratio"][i])
        ax_g.plot(steps, [max(m, 1e-6) for m in med], color=color, marker="o", ms=3, label=spec)
        if raw != med:
            ax_g.plot(steps, [max(m, 1e-6) for m in raw], color=color, lw=0.8, ls=":",
                      label=f"{spec}: before rescaling")
        for which, ls in (("own", "-"), ("new", "--")):
            at, curve = _cell_means(students, which)
            if curve:
                ax_c.plot(at, curve, color=color, ls=ls, marker=".", label=f"{spec}: {which} views")
    ax_g.axhline(1.0, color="k", lw=0.8, ls=":")
    ax_g.set_yscale("log")
    ax_g.set_xlabel("training step")
    ax_g.set_ylabel("|grad distillation| / |grad CE| (median)")
    ax_g.set_title("gradient balance", fontsize=9)
    ax_c.set_xlabel("training step")
    ax_c.set_ylabel("mean max_r <w_j,r, v_j,l>")
    ax_c.set_title("own views (solid) and teachers' new views (dashed)", fontsize=9)
    for ax in (ax_g, ax_c):
        ax.grid(True, alpha=0.3, which="both")
        ax.legend(fontsize=7, loc="best")
    _save(fig, output)


def plot_k_trend(trend: dict[int, dict[str, dict]], output: Path) -> None:
    """The law against k: failure / 2^-(E+1) and uncovered / ideal union at E = 2, 3, 4, one line per (method, E).
    ``trend`` maps k -> method spec -> E -> a summary with ``failure_over_theory`` and ``uncovered_over_ideal``."""
    if not trend:
        raise ValueError("no k to plot")
    ks = sorted(trend)
    specs = list(dict.fromkeys(spec for k in ks for spec in trend[k]))
    style = styles(specs)
    fig = Figure(figsize=(11, 4.4), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, key, ylabel in ((axes[0], "failure_over_theory", "failure / 2^-(E+1)"),
                            (axes[1], "uncovered_over_ideal", "uncovered / ideal union")):
        for spec in specs:
            for e, marker in ((2, "o"), (3, "s"), (4, "^")):
                pts = [(k, trend[k][spec][e][key]) for k in ks
                       if spec in trend[k] and e in trend[k][spec] and trend[k][spec][e].get(key) is not None]
                if pts:
                    ax.plot(*zip(*pts, strict=True), color=style[spec][1], marker=marker, label=f"{spec}, E = {e}")
        ax.axhline(1.0, color="k", lw=0.8, ls="--")
        ax.set_xticks(ks)
        ax.set_xlabel("k (classes)")
        ax.set_ylabel(ylabel)
        ax.set_yscale("log", base=2)
        ax.grid(True, alpha=0.3, which="both")
    axes[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    _save(fig, output)
