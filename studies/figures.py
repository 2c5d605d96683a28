"""The studies' figures (each drawn for one study of :mod:`studies`), on matplotlib's Agg canvas and written
atomically; the series and error-bar helpers are :mod:`multiview.plot`'s."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from fkdapp.runtime import atomic_save_figure
from multiview.decompose import law
from multiview.methods import parse_method
from multiview.plot import check_results, log_rate_errorbar, order_methods, rate_errorbar, rate_series, styles
from multiview.records import DistillResults
from multiview.report import applied_ratio, by_method, lottery_purity

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
    atomic_save_figure(fig, output, 120)


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
        check_results(results)
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
        es, ms, hs = rate_series(by_method(results).get(method, {}), "single_view_failure")
        all_e |= set(es)
        n_seeds = len(results.seeds_done)
        log_rate_errorbar(ax_fail, es, ms, hs, color=f"C{i}", marker="o", label=f"mu = {mu:g} ({n_seeds} seeds)")
    if all_e:
        e_line = sorted(all_e)
        ax_fail.plot(e_line, [law(e) for e in e_line], "k--", lw=1, label="theory 2^-(E+1)")
    ax_fail.set_yscale("log", base=2)
    ax_fail.set_xlabel("teachers E")
    ax_fail.set_ylabel(f"{method} student: single-view failure")
    ax_fail.set_title("the FKD curve (mean, 95% interval over seeds)", fontsize=9)
    ax_fail.grid(True, alpha=0.3, which="both")
    ax_fail.legend(fontsize=8)
    atomic_save_figure(fig, output, 120)


def plot_testbed(results: DistillResults, output: Path) -> None:
    """One row of four panels, one line per method: single-view failure against E (log2, with 2^-(E+1)), own
    views kept, teachers' new views covered (mean and 95% interval over seeds), and the gradient-norm ratio of the
    distillation term to CE over the first training steps (median over students with teachers)."""
    check_results(results)
    groups = by_method(results)
    specs = order_methods(list(groups))
    style = styles(specs)
    fig = Figure(figsize=(18, 4.6), layout="constrained")
    ax_f, ax_own, ax_new, ax_g = fig.subplots(1, 4)
    for spec in specs:
        label, color = style[spec]
        es, ms, hs = rate_series(groups[spec], "single_view_failure")
        log_rate_errorbar(ax_f, es, ms, hs, color=color, marker="o", label=spec)
        for ax, key in ((ax_own, "own_views_kept"), (ax_new, "teacher_new_views_covered")):
            g = {e: r for e, r in groups[spec].items() if e >= 1}
            es, ms, hs = rate_series(g, key)
            if es:
                rate_errorbar(ax, es, ms, hs, 0.0, color=color, marker="o", label=spec)
        students = [s for e, ss in groups[spec].items() if e >= 1 for s in ss if s.diagnostics.get("grad_ratio")]
        if students:
            steps, med = _median_by_step(students, lambda s, i, t: s.diagnostics["grad_ratio"][i])
            ax_g.plot(steps, [max(m, 1e-6) for m in med], color=color, marker=".", label=spec)
    all_e = sorted({e for g in groups.values() for e in g})
    ax_f.plot(all_e, [law(e) for e in all_e], "k--", lw=1, label="2^-(E+1)")
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
    atomic_save_figure(fig, output, 120)


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
    check_results(results)
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
    atomic_save_figure(fig, output, 120)


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
    atomic_save_figure(fig, output, 120)


def plot_regime_map(rows: list[dict], path: Path, corners: Mapping[str, Any], levels: Mapping[str, Sequence],
                    baseline: str) -> None:
    """One panel per factor: its ``levels`` (around each of the ``corners``, cells of :mod:`studies.regime`)
    against FKD's failure / law at E = 2, 3, 4 (rows of the ``baseline`` method left out)."""
    fig = Figure(figsize=(13, 3.6), layout="constrained")
    axes = fig.subplots(1, len(levels))
    for ax, (factor, values) in zip(axes, levels.items(), strict=True):
        for (cname, corner), ls in zip(corners.items(), ("-", "--"), strict=True):
            others = {k: v for k, v in asdict(corner).items() if k != factor}
            for e, color in zip((2, 3, 4), ("C0", "C1", "C3"), strict=True):
                xs, ys = [], []
                for i, level in enumerate(values):
                    r = next((r for r in rows if r["method"] != baseline and r["cell"][factor] == level
                              and all(r["cell"][k] == v for k, v in others.items())), None)
                    if r is not None and e in r["per_e"]:
                        xs.append(i)
                        ys.append(r["per_e"][e]["ratio"])
                ax.plot(xs, ys, ls=ls, color=color, marker="o", label=f"{cname}, E = {e}")
        ax.axhline(1.25, color="k", lw=0.8, ls=":")
        ax.set_xticks(range(len(values)), [str(v) for v in values])
        ax.set_title({"per_class": "samples per class", "eps": "kernel eps", "lam": "lambda", "k": "k"}[factor],
                     fontsize=9)
        ax.set_ylabel("FKD failure / 2^-(E+1)")
        ax.set_yscale("log", base=2)
        ax.grid(True, alpha=0.3, which="both")
    axes[0].legend(fontsize=7)
    atomic_save_figure(fig, path, 120)


def ensemble_figure(students: Mapping[str, Mapping[int, tuple[float, float]]], ensemble: Mapping[int, float | None],
                    output: Path, xlabel: str, alone: float | None = None, title: str | None = None) -> None:
    """Last-epoch test accuracy against the number of teachers E: each student method's (mean, 95% half-width) per
    E, the teacher ensemble's own accuracy, and the student alone (a line) where given."""
    fig = Figure(figsize=(6, 4.4), layout="constrained")
    ax = fig.subplots()
    es = sorted(ensemble)
    for i, (method, by_e) in enumerate(students.items()):
        pts = [(e, *by_e[e]) for e in es if by_e.get(e) is not None]
        if pts:
            x, m, h = zip(*pts, strict=True)
            ax.errorbar(x, m, yerr=[0 if v != v else v for v in h], marker="o", capsize=3, color=f"C{i}",
                        label=f"{method.upper()} student")
    te = [(e, ensemble[e]) for e in es if ensemble[e] is not None]
    if te:
        ax.plot(*zip(*te, strict=True), "k--", marker="s", label="teacher ensemble")
    if alone is not None and alone == alone:
        ax.axhline(alone, color="gray", lw=1, label="student alone")
    ax.set_xscale("log", base=2)
    ax.set_xticks(es, [str(e) for e in es])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy (%), last epoch")
    if title:
        ax.set_title(title, fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="center right" if alone is not None else "best")
    atomic_save_figure(fig, output, 120)
