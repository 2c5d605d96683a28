"""Tables from typed results: mean and 95% interval over seeds per (method, E), ensembles, and the log2 slope."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
from scipy import stats

from fkdapp.stats import format_mean_ci
from multiview.decompose import law
from multiview.methods import StudentMethod, parse_method
from multiview.records import DistillResults, EnsembleRecord, NetworkRecord, StudentRecord


def _fmt(values: list[float | None]) -> str:
    return format_mean_ci([v for v in values if v is not None], 3)


def group_students(results: DistillResults) -> dict[tuple[str, int], list[StudentRecord]]:
    """Students by (method spec, E), sorted."""
    groups: dict[tuple[str, int], list[StudentRecord]] = defaultdict(list)
    for s in results.students:
        groups[(s.method, s.teachers)].append(s)
    return dict(sorted(groups.items()))


def by_method(results: DistillResults, min_teachers: int = 0) -> dict[str, dict[int, list[StudentRecord]]]:
    """Students by method spec, then by E (E >= ``min_teachers``)."""
    out: dict[str, dict[int, list[StudentRecord]]] = defaultdict(dict)
    for (method, e), records in group_students(results).items():
        if e >= min_teachers:
            out[method][e] = records
    return dict(out)


def group_ensembles(results: DistillResults) -> dict[int, list[EnsembleRecord]]:
    groups: dict[int, list[EnsembleRecord]] = defaultdict(list)
    for e in results.ensembles:
        groups[e.size].append(e)
    return dict(sorted(groups.items()))


def log2_slope(results: DistillResults, method: str, max_e: int = 4, key: str = "single_view_failure") -> float | None:
    """Least-squares slope of log2(mean failure) against E over E = 0..max_e (theory: -1)."""
    pts = [
        (e, np.mean([getattr(s, key) for s in ss]))
        for (m, e), ss in group_students(results).items()
        if m == method and e <= max_e
    ]
    pts = [(e, v) for e, v in pts if v > 0]
    if len(pts) < 2:
        return None
    e, v = np.array(pts).T
    return float(np.polyfit(e, np.log2(v), 1)[0])


def lottery_purity(networks: Sequence[NetworkRecord]) -> tuple[float, float] | None:
    """Fractions of (network, class) pairs that learned exactly one view and both views; None without networks."""
    pairs = [sum(p) for n in networks for p in n.views_learned]
    if not pairs:
        return None
    return sum(p == 1 for p in pairs) / len(pairs), sum(p == 2 for p in pairs) / len(pairs)


def lottery_report(networks: Sequence[NetworkRecord]) -> str:
    """The single-network claims from a list of network records (teachers of a sweep, or a population)."""
    pairs = [tuple(p) for n in networks for p in n.views_learned]
    one = [p for p in pairs if sum(p) == 1]
    first = sum(1 for p in one if p[0])
    p_value = stats.binomtest(first, len(one), 0.5).pvalue if one else float("nan")
    split = [n.failure_view_not_learned for n in networks if n.failure_view_not_learned is not None]
    split_l = [n.failure_view_learned for n in networks if n.failure_view_learned is not None]
    return "\n".join(
        [
            f"Single networks: {len(networks)}; training accuracy {_fmt([n.train_accuracy for n in networks])}; "
            f"multi-view error {_fmt([n.multi_view_error for n in networks])}; single-view failure "
            f"{_fmt([n.single_view_failure for n in networks])}; present view not learned "
            f"{_fmt([n.uncovered_fraction for n in networks])}.",
            f"Lottery: {len(one)}/{len(pairs)} = {len(one) / max(len(pairs), 1):.3f} of (network, class) pairs learned "
            f"exactly one view ({sum(1 for p in pairs if sum(p) == 2)} both, {sum(1 for p in pairs if sum(p) == 0)} "
            f"none); the first view won {first}/{len(one)} (two-sided binomial test against 1/2: p = {p_value:.3f}).",
            f"Failure when the present view was learned: {_fmt(split_l)}; when it was not: {_fmt(split)}.",
        ]
    )


def markdown_report(results: DistillResults) -> str:
    """Students per (method, E) and teacher ensembles per E, as Markdown tables."""
    cfg = results.config
    n = len(results.seeds_done)
    spread = "mean ± 95% interval over seeds" if n > 1 else "one seed: single values, no interval"
    lines = [
        f"k = {cfg['k']}, {n} seed(s); {spread}; views: {results.view_threshold}",
        "",
        "| method | E | failure | FKD theory 2^-(E+1) | uncovered | ideal union | uncovered / ideal | own views kept "
        "| teachers' new views covered | multi-view error |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (method, e), ss in group_students(results).items():
        unc = np.mean([s.uncovered_fraction for s in ss])
        ideal = np.mean([s.ideal_uncovered for s in ss])
        ratio = f"{unc / ideal:.2f}" if ideal > 0 else "-"
        lines.append(
            f"| {method} | {e} | {_fmt([s.single_view_failure for s in ss])} | {law(e):.4f} "
            f"| {_fmt([s.uncovered_fraction for s in ss])} | {_fmt([s.ideal_uncovered for s in ss])} "
            f"| {ratio} | {_fmt([s.own_views_kept for s in ss])} "
            f"| {_fmt([s.teacher_new_views_covered for s in ss])} "
            f"| {_fmt([s.multi_view_error for s in ss])} |"
        )
    ens = group_ensembles(results)
    if ens:
        lines += [
            "",
            "| teacher ensemble E | failure | uncovered | predicted from the lottery (≈ 2^-E) | multi-view error |",
            "|---|---|---|---|---|",
        ]
        for e, es in ens.items():
            lines.append(
                f"| {e} | {_fmt([x.single_view_failure for x in es])} "
                f"| {_fmt([x.uncovered_fraction for x in es])} "
                f"| {_fmt([x.predicted_uncovered for x in es])} "
                f"| {_fmt([x.multi_view_error for x in es])} |"
            )
    if results.teachers:
        lines += ["", lottery_report(results.teachers)]
    slopes = []
    for method in results.methods:
        sl = log2_slope(results, method)
        if sl is not None and parse_method(method).USES_TEACHERS:
            slopes.append(f"{method}: {sl:.2f}")
    if slopes:
        es = sorted({s.teachers for s in results.students if s.teachers <= 4})
        lines += ["", f"log2 slope of the failure rate against E over E = {', '.join(map(str, es))} (theory -1): "
                  + ", ".join(slopes)]
    ranking = rank_methods(results)
    if len(ranking) > 1:
        lines += ["", "Methods ranked by single-view failure, mean over E >= 1 (" + (
                      "mean ± 95% interval over seeds of each seed's mean" if n > 1 else "one seed") + "):", "",
                  "| rank | method | family | failure (E >= 1) | own views kept | teachers' new views covered "
                  "| early gradient ratio to CE (steps <= 100) |", "|---|---|---|---|---|---|---|"]
        for i, row in enumerate(ranking, 1):
            lines.append(f"| {i} | {row['method']} | {row['family']} | {row['failure']} | {row['own']} | "
                         f"{row['new']} | {row['ratio']} |")
    return "\n".join(lines)


def early_ratio(student: StudentRecord, last_step: int = 100) -> float | None:
    """Mean over the probe steps <= ``last_step`` of the distillation term's gradient norm over CE's."""
    d = student.diagnostics or {}
    vals = [r for s, r in zip(d.get("probe_steps", []), d.get("grad_ratio", []), strict=False) if s <= last_step]
    return float(np.mean(vals)) if vals else None


def applied_ratio(method: StudentMethod, student: StudentRecord, i: int, step: int) -> float:
    """The distillation / CE gradient-norm ratio that acted in the update at probe ``i``: c where the method
    balances the term at this step (the record holds the ratio before rescaling), the recorded one otherwise."""
    c = method.balance(student.teachers, step)
    return c if c > 0 else student.diagnostics["grad_ratio"][i]


def collapsed_views(student: StudentRecord, high: float = 1.0, low: float = 0.3) -> int | None:
    """The (class, view) cells whose correlation max_r <w_j,r, v_j,l> reached ``high`` at a probe step and fell
    below ``low`` at a later one: views the student had grown well past the learning threshold (0.3 at the
    defaults) and then lost. None without recorded correlations."""
    corr = (student.diagnostics or {}).get("view_corr")
    if not corr:
        return None
    c = np.asarray(corr).reshape(len(corr), -1)  # (probes, 2k)
    reached = np.maximum.accumulate(c >= high, axis=0)
    return int(((reached[:-1] & (c[1:] < low)).any(axis=0)).sum())


def rank_methods(results: DistillResults) -> list[dict[str, str]]:
    """The methods with teachers, best first by the mean over E >= 1 of their single-view failure (per seed, then
    mean and interval over seeds), with own views kept, teachers' new views covered and the early gradient ratio."""
    rows = []
    for method in results.methods:
        m = parse_method(method)
        if not m.USES_TEACHERS:
            continue
        ss = [s for s in results.students if s.method == method and s.teachers >= 1]
        if not ss:
            continue
        per_seed = defaultdict(list)
        for s in ss:
            per_seed[s.seed].append(s.single_view_failure)
        means = [float(np.mean(v)) for v in per_seed.values()]
        ratios = [r for r in (early_ratio(s) for s in ss) if r is not None]
        rows.append({"method": method, "family": m.FAMILY, "key": float(np.mean(means)), "failure": _fmt(means),
                     "own": _fmt([s.own_views_kept for s in ss]),
                     "new": _fmt([s.teacher_new_views_covered for s in ss]),
                     "ratio": f"{np.median(ratios):.3g} (median)" if ratios else "-"})
    return sorted(rows, key=lambda r: r["key"])


def views_text(v: list[list[bool]]) -> str:
    """k pairs of booleans -> one character per class: 1 (first view), 2 (second), B (both), - (none)."""
    return "".join(
        {(True, False): "1", (False, True): "2", (True, True): "B", (False, False): "-"}[tuple(p)] for p in v
    )


def simulate_table(results: DistillResults, teachers: int, method: str) -> str:
    """Per seed: teachers' views, the ensemble's failure, the student's failure and views, and the theory."""
    lines = [f"views per class: 1 first, 2 second, B both, - none ({results.view_threshold})", ""]
    for seed in results.seeds_done:
        lines.append(f"seed {seed}")
        for i, t in enumerate(x for x in results.teachers if x.seed == seed):
            lines.append(
                f"  teacher {i}: views {views_text(t.views_learned)}  single-view failure {t.single_view_failure:.3f}"
            )
        for e in (x for x in results.ensembles if x.seed == seed and x.size == teachers):
            lines.append(
                f"  ensemble of {teachers}: failure {e.single_view_failure:.3f}, uncovered "
                f"{e.uncovered_fraction:.3f}, multi-view error {e.multi_view_error:.3f}"
            )
        for s in (x for x in results.students if x.seed == seed and x.method == method):
            lines.append(
                f"  student E={s.teachers} ({method}): views {views_text(s.views_learned)}  failure "
                f"{s.single_view_failure:.3f}  (theory {s.theory_failure:.3f})  uncovered "
                f"{s.uncovered_fraction:.3f}  ideal union {s.ideal_uncovered:.3f}  multi-view error "
                f"{s.multi_view_error:.3f}"
            )
    if len(results.seeds_done) > 1:
        lines += ["", markdown_report(results)]
    return "\n".join(lines)
