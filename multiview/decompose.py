"""The failure curve decomposed into what the student took, kept and invented, per (method, E), and the decision rule
that says whether a sweep follows the law 2^-(E+1).

Per student record (its views beside its own run's and its teachers' union):
  p    teachers' views taken: of the (class, view) cells its teachers hold and its own run lacks, the fraction learned;
  q    views nobody had: of all 2k cells, the fraction learned that neither its own run nor a teacher holds;
  kept own views kept: of the cells its own run holds, the fraction still learned;
and per (method, E) over seeds: uncovered / ideal union (1: the student covers what own + teachers cover), failure /
2^-(E+1) (the law) and failure / (failure at E = 0 x 2^-E) (the law measured from the method's own E = 0 failure).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass

import numpy as np

from fkdapp.stats import format_ci, mean_ci
from multiview.records import DistillResults, StudentRecord

#: The decision rule, fixed before the transfer-channel and regime studies ran: the law holds when failure / 2^-(E+1)
#: <= RATIO at every E = 1..4, own views kept >= KEPT and every student's multi-view error <= MULTI; by the theory's
#: mechanism when also views nobody had <= NOBODY of the cells at every E.
RULE = {"ratio": 1.25, "kept": 0.9, "multi": 0.02, "nobody": 0.05, "teachers": (1, 2, 3, 4)}


def law(e: int) -> float:
    """The theory's failure of a student of E teachers: 2^-(E+1)."""
    return 2.0 ** -(e + 1)


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

    def to_dict(self) -> dict:
        return asdict(self)


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
        ))
    return rows


def verdict(rows: list[Row], method: str) -> dict[str, bool | None]:
    """The decision rule (:data:`RULE`) on one method's rows: ``law_holds`` and ``by_mechanism`` (None where an E of
    the rule is missing)."""
    mine = {r.teachers: r for r in rows if r.method == method}
    if not all(e in mine for e in RULE["teachers"]):
        return {"law_holds": None, "by_mechanism": None}
    per_e = [mine[e] for e in RULE["teachers"]]
    ok = all(r.over_law <= RULE["ratio"] and (r.kept is None or r.kept[0] >= RULE["kept"])
             and r.multi_max <= RULE["multi"] for r in per_e)
    return {"law_holds": ok, "by_mechanism": ok and all(r.q[0] <= RULE["nobody"] for r in per_e)}


def _pm(v: tuple[float, float] | None, digits: int = 3) -> str:
    return "-" if v is None else format_ci(*v, digits)


def decomposition_markdown(results: DistillResults) -> str:
    """The decomposition table of a sweep and, per method with teachers, the rule's verdict."""
    rows = decompose(results)
    lines = ["| method | E | seeds | failure | / 2^-(E+1) | / (failure at E=0 x 2^-E) | p: teachers' views taken "
             "| q: views nobody had | own views kept | uncovered / ideal | multi-view max |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        own = f"{r.over_own_law:.2f}" if r.over_own_law is not None else "-"
        ideal = f"{r.uncovered_over_ideal:.2f}" if r.uncovered_over_ideal is not None else "-"
        lines.append(f"| {r.method} | {r.teachers} | {r.seeds} | {_pm(r.failure)} | {r.over_law:.2f} | {own} "
                     f"| {_pm(r.p, 2)} | {_pm(r.q)} | {_pm(r.kept, 2)} | {ideal} | {r.multi_max:.3f} |")
    verdicts = []
    for method in dict.fromkeys(r.method for r in rows if r.teachers > 0):
        v = verdict(rows, method)
        if v["law_holds"] is not None:
            text = "holds by the mechanism" if v["by_mechanism"] else "holds" if v["law_holds"] else "fails"
            verdicts.append(f"{method}: {text}")
    if verdicts:
        lines += ["", f"The rule (failure / 2^-(E+1) <= {RULE['ratio']} at E = 1..4, own views kept >= {RULE['kept']},"
                      f" multi-view error <= {RULE['multi']:.0%}; by the mechanism also views nobody had <= "
                      f"{RULE['nobody']:.0%}): " + "; ".join(verdicts) + "."]
    return "\n".join(lines)


__all__ = ["RULE", "Row", "decompose", "decomposition_markdown", "law", "nobody_had", "verdict"]
