"""The failure curve decomposed into what the student took, kept and invented, per (method, E); and rule v1, the
decision rule the transfer and regime studies were judged by (rule v2, in :mod:`multiview.verdict`, supersedes it).

Per student record (its views beside its own run's and its teachers' union):
  p    teachers' views taken: of the (class, view) cells its teachers hold and its own run lacks, the fraction learned;
  q    views nobody had: of all 2k cells, the fraction learned that neither its own run nor a teacher holds;
  kept own views kept: of the cells its own run holds, the fraction still learned;
and per (method, E) over seeds: uncovered / ideal union (1: the student covers what own + teachers cover), failure /
2^-(E+1) (the law), failure / L(E) (rule v2's law, :mod:`multiview.verdict`) and failure / (failure at E = 0 x 2^-E)
(the law measured from the method's own E = 0 failure); partial views: how strong the teachers' views it did not take
grew (max_r <w, v> / varrho, 1 the threshold), and its failure on samples whose view it did not learn.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass

import numpy as np

from fkdapp.stats import format_ci, mean_ci
from multiview.records import DistillResults, StudentRecord

#: Rule v1, fixed before the transfer-channel and regime studies ran (their committed tables were judged by it; rule
#: v2, :mod:`multiview.verdict`, supersedes it): the law holds when failure / 2^-(E+1) <= RATIO at every E = 1..4, own
#: views kept >= KEPT and every student's multi-view error <= MULTI; by the theory's mechanism when also views nobody
#: had <= NOBODY of the cells at every E.
RULE_V1 = {"ratio": 1.25, "kept": 0.9, "multi": 0.02, "nobody": 0.05, "teachers": (1, 2, 3, 4)}


def law(e: int) -> float:
    """The theory's failure of a student of E teachers: 2^-(E+1)."""
    return 2.0 ** -(e + 1)


def law_v2(e: int, f0: float) -> float:
    """L(E) = min(2^-(E+1), f0 x 2^-E): the failure of the union of own and E teachers' views, for a single network
    that fails f0 (rule v2's law, :mod:`multiview.verdict`)."""
    return min(law(e), f0 * 2.0**-e)


def nobody_had(s: StudentRecord) -> float:
    """Fraction of the 2k (class, view) cells the student learned that neither its own run nor its teachers hold."""
    learned, own, union = (np.asarray(v, dtype=bool) for v in (s.views_learned, s.own_views, s.teacher_views_union))
    return float((learned & ~own & ~union).mean())


@dataclass(frozen=True)
class Row:
    """One (method, E) over its seeds: mean and 95% half-width (NaN for one seed) of each quantity."""

    method: str
    teachers: int
    seeds: int
    failure: tuple[float, float]
    p: tuple[float, float] | None
    q: tuple[float, float]
    kept: tuple[float, float] | None
    uncovered_over_ideal: float | None
    over_law: float
    over_own_law: float | None
    multi_max: float
    over_law_v2: float | None = None  # failure / L(E), L(E) = min(2^-(E+1), f0 x 2^-E) (rule v2's law)
    strength_missed: float | None = None  # mean max_r <w, v> / varrho of the teachers' new views it did not take
    fail_not_learned: float | None = None  # single-view failure on samples whose view it did not learn

    def to_dict(self) -> dict:
        return asdict(self)


def _mean_or_none(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def _strength_missed(ss: list[StudentRecord]) -> float | None:
    """Partial views: the mean strength (max_r <w, v> / varrho; 1 is the learning threshold) of the teachers' new
    views the students did not take; None for records made before strengths were recorded, or none missed."""
    vals = []
    for s in ss:
        if s.view_strength is None:
            return None
        learned, own, union = (np.asarray(v, dtype=bool) for v in (s.views_learned, s.own_views,
                                                                   s.teacher_views_union))
        vals += np.asarray(s.view_strength)[union & ~own & ~learned].tolist()
    return float(np.mean(vals)) if vals else None


def _ci(values: list[float | None]) -> tuple[float, float] | None:
    vals = [v for v in values if v is not None]
    return mean_ci(vals) if vals else None


def decompose(results: DistillResults) -> list[Row]:
    """Every (method, E) of a sweep, decomposed (rows sorted by method as the sweep lists them, then E)."""
    groups: dict[tuple[str, int], list[StudentRecord]] = defaultdict(list)
    for s in results.students:
        groups[(s.method, s.teachers)].append(s)
    order = {m: i for i, m in enumerate(results.methods)}
    rows = []
    for (method, e), ss in sorted(groups.items(), key=lambda kv: (order.get(kv[0][0], 99), kv[0][1])):
        fail = float(np.mean([s.single_view_failure for s in ss]))
        base = groups.get((method, 0))
        f0 = float(np.mean([s.single_view_failure for s in base])) if base else None
        ideal = float(np.mean([s.ideal_uncovered for s in ss]))
        unc = float(np.mean([s.uncovered_fraction for s in ss]))
        rows.append(Row(
            method=method, teachers=e, seeds=len(ss), failure=mean_ci([s.single_view_failure for s in ss]),
            p=_ci([s.teacher_new_views_covered for s in ss]) if e else None, q=mean_ci([nobody_had(s) for s in ss]),
            kept=_ci([s.own_views_kept for s in ss]), uncovered_over_ideal=unc / ideal if ideal > 0 else None,
            over_law=fail / law(e), over_own_law=fail / (f0 * 2.0**-e) if f0 else None,
            multi_max=max(s.multi_view_error for s in ss),
            over_law_v2=fail / law_v2(e, f0) if f0 else None, strength_missed=_strength_missed(ss),
            fail_not_learned=_mean_or_none([s.failure_view_not_learned for s in ss]),
        ))
    return rows


def verdict_v1(rows: list[Row], method: str) -> dict[str, bool | None]:
    """The decision rule (:data:`RULE_V1`) on one method's rows: ``law_holds`` and ``by_mechanism`` (None where an E of
    the rule is missing)."""
    mine = {r.teachers: r for r in rows if r.method == method}
    if not all(e in mine for e in RULE_V1["teachers"]):
        return {"law_holds": None, "by_mechanism": None}
    per_e = [mine[e] for e in RULE_V1["teachers"]]
    ok = all(r.over_law <= RULE_V1["ratio"] and (r.kept is None or r.kept[0] >= RULE_V1["kept"])
             and r.multi_max <= RULE_V1["multi"] for r in per_e)
    return {"law_holds": ok, "by_mechanism": ok and all(r.q[0] <= RULE_V1["nobody"] for r in per_e)}


def _pm(v: tuple[float, float] | None, digits: int = 3) -> str:
    return "-" if v is None else format_ci(*v, digits)


def decomposition_markdown(results: DistillResults) -> str:
    """The decomposition table of a sweep (rule v2's verdict: :func:`multiview.verdict.verdict_markdown`)."""
    lines = ["| method | E | seeds | failure | / 2^-(E+1) | / L(E) | / (failure at E=0 x 2^-E) | p: teachers' views "
             "taken | q: views nobody had | own views kept | uncovered / ideal | strength of views not taken "
             "| failure where view not learned | multi-view max |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in decompose(results):
        def num(v: float | None, digits: int = 2) -> str:
            return "-" if v is None else f"{v:.{digits}f}"

        lines.append(f"| {r.method} | {r.teachers} | {r.seeds} | {_pm(r.failure)} | {r.over_law:.2f} "
                     f"| {num(r.over_law_v2)} | {num(r.over_own_law)} | {_pm(r.p, 2)} | {_pm(r.q)} | {_pm(r.kept, 2)} "
                     f"| {num(r.uncovered_over_ideal)} | {num(r.strength_missed)} | {num(r.fail_not_learned, 3)} "
                     f"| {r.multi_max:.3f} |")
    return "\n".join(lines)


__all__ = ["RULE_V1", "Row", "decompose", "decomposition_markdown", "law", "law_v2", "nobody_had", "verdict_v1"]
