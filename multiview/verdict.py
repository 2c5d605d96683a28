"""Rule v2: the decision rule that says whether a sweep's students follow the theory's law, and where they do not,
which clause failed at which E. It can fail for the right reason: it checks first that the runs are in the theory's
regime, then that the teachers' ensemble alone (the null) would fail the test, and only then the law and its
mechanism, on the mean over fresh seeds and seed by seed.

With f0 the own run's single-view failure (the student's E = 0 lottery, on the same seeds), the law at E is
L(E) = min(2^-(E+1), f0 x 2^-E): the union of its own and its E teachers' views when a single network fails f0
rather than 1/2 (the E-teacher ensemble then fails near 2 L(E)). The clauses, with the thresholds in :data:`RULE`:

  a  regime:         teachers and the own run learn exactly one view in >= 0.85 of their (network, class) pairs,
                     f0 >= 0.3, multi-view error of teachers and own run <= 2%; else no verdict on the law;
  b  discrimination: the E-teacher ensemble fails above 1.25 L(E) at E = 3 and 4; else the test cannot tell the
                     union from the ensemble;
  c  law:            at every E = 1..4 mean failure <= 1.25 L(E) and every student's multi-view error <= 2%;
  d  mechanism:      at every E: p (teachers' views taken) >= 0.9, own views kept >= 0.9, views nobody had <= 0.05,
                     uncovered <= 1.25 x the ideal union's + 1/(2k);
  e  robustness:     >= 8 seeds, and c and d hold for at least 3 in 4 of the seeds alone (L(E) from each seed's f0).

The rule judges the seeds it is given; they must be fresh (never used to choose a setting): which seeds are fresh is
the protocol's to say (``multiview report --judge-seeds``, a verdicts manifest's ``seeds``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from multiview.decompose import law_v2, nobody_had
from multiview.records import DistillResults, StudentRecord

#: Rule v2's thresholds (data, read by :func:`judge` and printed by :func:`rule_text`).
RULE = {
    "version": 2,
    "teachers": (1, 2, 3, 4),
    "regime": {"one_view": 0.85, "f0": 0.3, "multi": 0.02},
    "discrimination": {"ratio": 1.25, "at": (3, 4)},
    "law": {"ratio": 1.25, "multi": 0.02},
    "mechanism": {"p": 0.9, "kept": 0.9, "nobody": 0.05, "uncovered": 1.25},
    "robustness": {"seeds": 8, "share": 0.75},
}


def _one_view(views: Sequence[list[list[bool]]]) -> float:
    """Fraction of (network, class) pairs that learned exactly one view."""
    pairs = [sum(p) for v in views for p in v]
    return sum(n == 1 for n in pairs) / len(pairs) if pairs else math.nan


@dataclass
class Cell:
    """A method's numbers on a set of seeds: the regime (teachers, own run), the ensembles and every E's student."""

    seeds: list[int]
    k: int
    one_view_teachers: float
    one_view_own: float
    f0: float
    multi_regime: float
    ensemble: dict[int, float]  # E -> mean ensemble failure
    failure: dict[int, float]
    multi: dict[int, float]  # max over seeds
    p: dict[int, float]
    kept: dict[int, float]
    nobody: dict[int, float]
    uncovered: dict[int, float]
    ideal: dict[int, float]

    def law(self, e: int) -> float:
        return law_v2(e, self.f0)


def _mean(values: list[float | None]) -> float:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else math.nan


def cell(results: DistillResults, method: str, seeds: Sequence[int]) -> Cell:
    """The numbers rule v2 reads, for ``method`` on ``seeds`` (means over seeds; multi-view error as a maximum)."""
    keep = set(seeds)
    students = [s for s in results.students if s.method == method and s.seed in keep]
    own = [s for s in students if s.teachers == 0]
    by_e: dict[int, list[StudentRecord]] = {}
    for s in students:
        if s.teachers > 0:
            by_e.setdefault(s.teachers, []).append(s)
    teachers = [t for t in results.teachers if t.seed in keep]
    ens: dict[int, list[float]] = {}
    for x in results.ensembles:
        if x.seed in keep:
            ens.setdefault(x.size, []).append(x.single_view_failure)
    k = int(results.config.get("k") or len((students or teachers)[0].views_learned))
    return Cell(
        seeds=sorted(keep & {s.seed for s in students}), k=k,
        one_view_teachers=_one_view([t.views_learned for t in teachers]),
        one_view_own=_one_view([s.views_learned for s in own]),
        f0=_mean([s.single_view_failure for s in own]),
        multi_regime=max([x.multi_view_error for x in (*teachers, *own)], default=math.nan),
        ensemble={e: float(np.mean(v)) for e, v in ens.items()},
        failure={e: _mean([s.single_view_failure for s in ss]) for e, ss in by_e.items()},
        multi={e: max(s.multi_view_error for s in ss) for e, ss in by_e.items()},
        p={e: _mean([s.teacher_new_views_covered for s in ss]) for e, ss in by_e.items()},
        kept={e: _mean([s.own_views_kept for s in ss]) for e, ss in by_e.items()},
        nobody={e: _mean([nobody_had(s) for s in ss]) for e, ss in by_e.items()},
        uncovered={e: _mean([s.uncovered_fraction for s in ss]) for e, ss in by_e.items()},
        ideal={e: _mean([s.ideal_uncovered for s in ss]) for e, ss in by_e.items()},
    )


@dataclass
class Clause:
    """One clause of the rule: whether it holds (None: not reached or not measurable), and what failed, with its
    number (empty where it holds)."""

    name: str
    ok: bool | None
    failed: list[str] = field(default_factory=list)
    numbers: dict = field(default_factory=dict)


def _at_least(name: str, value: float, bar: float, where: str = "") -> list[str]:
    return [] if value >= bar else [f"{name} {value:.3f} < {bar:g}{where}"]


def _at_most(name: str, value: float, bar: float, where: str = "") -> list[str]:
    return [] if value <= bar else [f"{name} {value:.3f} > {bar:g}{where}"]


def regime_clause(c: Cell) -> Clause:
    r = RULE["regime"]
    failed = (_at_least("teachers one-view", c.one_view_teachers, r["one_view"])
              + _at_least("own run one-view", c.one_view_own, r["one_view"])
              + _at_least("f0", c.f0, r["f0"]) + _at_most("teachers/own multi-view error", c.multi_regime, r["multi"]))
    return Clause("a regime", not failed, failed, {"one_view_teachers": c.one_view_teachers,
                                                   "one_view_own": c.one_view_own, "f0": c.f0,
                                                   "multi_regime": c.multi_regime})


def discrimination_clause(c: Cell) -> Clause:
    r = RULE["discrimination"]
    ratios = {e: c.ensemble[e] / c.law(e) for e in r["at"] if e in c.ensemble}
    failed = [f"ensemble {ratios[e]:.3f} L(E) <= {r['ratio']:g} at E = {e}" for e in r["at"]
              if e in ratios and ratios[e] <= r["ratio"]]
    return Clause("b discrimination", not failed, failed, {"ensemble_over_L": ratios})


def law_clause(c: Cell) -> Clause:
    r = RULE["law"]
    ratios = {e: c.failure[e] / c.law(e) for e in RULE["teachers"]}
    failed = []
    for e in RULE["teachers"]:
        failed += _at_most("failure / L(E)", ratios[e], r["ratio"], f" at E = {e}")
        failed += _at_most("multi-view error", c.multi[e], r["multi"], f" at E = {e}")
    return Clause("c law", not failed, failed, {"over_L": ratios})


def mechanism_clause(c: Cell) -> Clause:
    r = RULE["mechanism"]
    failed = []
    for e in RULE["teachers"]:
        at = f" at E = {e}"
        failed += _at_least("p", c.p[e], r["p"], at) if not math.isnan(c.p[e]) else []
        failed += _at_least("own views kept", c.kept[e], r["kept"], at) if not math.isnan(c.kept[e]) else []
        failed += _at_most("views nobody had", c.nobody[e], r["nobody"], at)
        bar = r["uncovered"] * c.ideal[e] + 1 / (2 * c.k)
        if c.uncovered[e] > bar:
            failed.append(f"uncovered {c.uncovered[e]:.3f} > {r['uncovered']:g} x ideal {c.ideal[e]:.3f} + 1/2k"
                          f"{at}")
    return Clause("d mechanism", not failed, failed, {"p": c.p, "kept": c.kept, "nobody": c.nobody,
                                                      "uncovered": c.uncovered, "ideal": c.ideal})


@dataclass
class Judgement:
    """Rule v2 on one method and a set of seeds: every clause with its numbers, the seeds that pass c and d alone,
    and the verdict in words."""

    method: str
    seeds: list[int]
    clauses: list[Clause]
    seeds_passing: list[int]
    verdict: str
    holds: bool | None  # True: holds by the mechanism, robustly; False: fails a clause on the law; None: no verdict
    cell: Cell | None = None  # the numbers read (judged where ``clauses`` is not empty)
    per_seed: dict[int, list[float]] = field(default_factory=dict)  # each seed's failure / L(E) at E = 1..4

    def to_dict(self) -> dict:
        return asdict(self)


def missing(c: Cell) -> list[str]:
    """What rule v2 needs that a cell lacks (empty: it can judge)."""
    lacks = [f"E = {e}" for e in RULE["teachers"] if e not in c.failure]
    if math.isnan(c.f0):
        lacks.append("its own E = 0 run")
    lacks += [f"the ensemble of {e}" for e in RULE["discrimination"]["at"] if e not in c.ensemble]
    return lacks


def judge(results: DistillResults, method: str, seeds: Sequence[int] | None = None) -> Judgement:
    """Rule v2 on ``method`` over ``seeds`` (default: every seed of the sweep)."""
    seeds = sorted(seeds if seeds is not None else results.seeds_done)
    c = cell(results, method, seeds)
    lacks = missing(c)
    if lacks:
        return Judgement(method, seeds, [], [], "not judged: the sweep lacks " + ", ".join(lacks)
                         + " (rule v2 needs E = 0..4 on the judged seeds)", None, c)
    a, b, law, mech = regime_clause(c), discrimination_clause(c), law_clause(c), mechanism_clause(c)
    alone = {s: cell(results, method, [s]) for s in c.seeds}  # each seed judged alone, L(E) from its own f0
    passing = [s for s, one in alone.items() if law_clause(one).ok and mechanism_clause(one).ok]
    per_seed = {s: [one.failure[e] / one.law(e) for e in RULE["teachers"]] for s, one in alone.items()}
    r = RULE["robustness"]
    robust_failed = []
    if len(c.seeds) < r["seeds"]:
        robust_failed.append(f"{len(c.seeds)} seeds < {r['seeds']}")
    if len(passing) < r["share"] * len(c.seeds):
        robust_failed.append(f"{len(passing)} of {len(c.seeds)} seeds pass c and d alone (< {r['share']:.0%})")
    e_clause = Clause("e robustness", not robust_failed, robust_failed,
                      {"seeds": len(c.seeds), "seeds_passing": len(passing)})
    clauses = [a, b, law, mech, e_clause]
    if not a.ok:
        return Judgement(method, c.seeds, clauses, passing, "outside the theory's regime (" + "; ".join(a.failed)
                         + "): no verdict on the law", None, c, per_seed)
    if not b.ok:
        return Judgement(method, c.seeds, clauses, passing, "cannot tell the union from the ensemble ("
                         + "; ".join(b.failed) + "): no verdict on the law", None, c, per_seed)
    if not law.ok:
        return Judgement(method, c.seeds, clauses, passing, "fails the law (" + "; ".join(law.failed) + ")", False,
                         c, per_seed)
    if not mech.ok:
        return Judgement(method, c.seeds, clauses, passing, "meets the ratio, fails the mechanism ("
                         + "; ".join(mech.failed) + ")", False, c, per_seed)
    if not e_clause.ok:
        return Judgement(method, c.seeds, clauses, passing, "holds on the mean, not established ("
                         + "; ".join(robust_failed) + ")", None, c, per_seed)
    return Judgement(method, c.seeds, clauses, passing, f"holds by the mechanism ({len(passing)} of {len(c.seeds)} "
                     "seeds alone)", True, c, per_seed)


def rule_text() -> str:
    """Rule v2 in one paragraph, from :data:`RULE`."""
    a, b, c, d, e = (RULE[x] for x in ("regime", "discrimination", "law", "mechanism", "robustness"))
    return (f"Rule v2, with L(E) = min(2^-(E+1), f0 x 2^-E) and f0 the own run's failure: (a) regime: teachers and own "
            f"run one-view in >= {a['one_view']} of classes, f0 >= {a['f0']}, multi-view error <= {a['multi']:.0%}; "
            f"(b) the teachers' ensemble above {b['ratio']} L(E) at E = {', '.join(map(str, b['at']))}; (c) failure "
            f"<= {c['ratio']} L(E) at E = 1..4; (d) p >= {d['p']}, own views kept >= {d['kept']}, views nobody had "
            f"<= {d['nobody']:.0%}, uncovered <= {d['uncovered']} x ideal + 1/(2k); (e) >= {e['seeds']} fresh seeds, "
            f"c and d on >= {e['share']:.0%} of them alone.")


def verdict_markdown(results: DistillResults, seeds: Sequence[int] | None = None) -> str:
    """Per method with teachers: rule v2's verdict and its clauses' numbers per E, on ``seeds``."""
    from multiview.methods import parse_method

    judged = sorted(seeds if seeds is not None else results.seeds_done)
    lines = [f"Rule v2 on seeds {', '.join(map(str, judged))} (judge only seeds that chose no setting). "
             + rule_text(), ""]
    for method in results.methods:
        if not parse_method(method).USES_TEACHERS:
            continue
        j = judge(results, method, judged)
        lines.append(f"- **{method}**: {j.verdict}")
        if j.clauses:
            c = j.cell
            lines.append(f"  - regime: teachers one-view {c.one_view_teachers:.3f}, own run one-view "
                         f"{c.one_view_own:.3f}, f0 {c.f0:.3f}; seeds passing c and d alone: "
                         f"{', '.join(map(str, j.seeds_passing)) or 'none'}")
            lines.append("  - per E (1..4): failure / L(E) " + ", ".join(f"{c.failure[e] / c.law(e):.3f}"
                                                                     for e in RULE["teachers"])
                         + "; ensemble / L(E) " + ", ".join(f"{c.ensemble[e] / c.law(e):.3f}" for e in RULE["teachers"]
                                                           if e in c.ensemble)
                         + "; p " + ", ".join(f"{c.p[e]:.3f}" for e in RULE["teachers"])
                         + "; own kept " + ", ".join(f"{c.kept[e]:.3f}" for e in RULE["teachers"])
                         + "; nobody had " + ", ".join(f"{c.nobody[e]:.3f}" for e in RULE["teachers"]))
            seeds_text = "; ".join(f"{s}: " + ", ".join(f"{v:.2f}" for v in vals)
                                   for s, vals in j.per_seed.items())
            lines.append(f"  - per seed, failure / L(E) at E = 1..4: {seeds_text}")
    return "\n".join(lines)


__all__ = ["RULE", "Cell", "Clause", "Judgement", "cell", "judge", "law_v2", "missing", "rule_text",
           "verdict_markdown"]
