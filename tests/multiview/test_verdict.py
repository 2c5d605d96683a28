"""Rule v2 on made-up records: each clause can fail, and fails for its own reason, named with its number."""

import json

import pytest
from click.testing import CliRunner

from multiview.cli import main
from multiview.records import DistillResults, EnsembleRecord, NetworkRecord, StudentRecord, write_results
from multiview.verdict import RULE, judge, law_v2
from multiview.verdicts_table import write_verdicts

K = 10
ONE = [[True, False]] * K  # one view per class: the first
OTHER = [[False, True]] * K
BOTH = [[True, True]] * K


def _errors(failure, multi=0.0):
    return dict(multi_view_error=multi, single_view_failure=failure, failure_view_learned=None,
                failure_view_not_learned=None, uncovered_fraction=failure)


def _seed(seed, f0=0.5, ens=None, fail=None, p=1.0, kept=1.0, own_views=ONE, teacher_views=OTHER, multi=0.0):
    """One seed's records: 4 teachers, ensembles of 1..4, the own run (E = 0) and students at E = 1..4; by default
    everything the rule asks for (students at L(E), ensembles at 2 L(E), one view per class)."""
    ens = ens or (lambda e: 2 * law_v2(e, f0))
    fail = fail or (lambda e: law_v2(e, f0))
    teachers = [NetworkRecord(**_errors(0.5), seed=seed, init_seed=i, train_accuracy=1.0, views_learned=teacher_views,
                              fit_step=1) for i in range(4)]
    ensembles = [EnsembleRecord(**_errors(ens(e)), seed=seed, size=e, predicted_uncovered=0.0) for e in range(1, 5)]

    def student(e, failure, learned):
        union = teacher_views if e else [[False, False]] * K
        return StudentRecord(**_errors(failure, multi if e else 0.0), seed=seed, method="fkd", teachers=e,
                             trained_as="", weight=1.0, params={}, train_accuracy=1.0, ideal_uncovered=failure,
                             own_views_kept=kept, teacher_new_views_covered=p if e else None, mechanism_exact=False,
                             theory_failure=2.0 ** -(e + 1), views_learned=learned, teacher_views_union=union,
                             own_views=own_views)

    students = [student(0, f0, own_views)] + [student(e, fail(e), BOTH) for e in range(1, 5)]
    return teachers, ensembles, students


def _results(seeds=range(8), per_seed=None, **kw):
    r = DistillResults(config={"k": K}, teacher_counts=[0, 1, 2, 3, 4], methods=["fkd"], view_threshold="",
                       environment={})
    for s in seeds:
        t, e, st = _seed(s, **(per_seed(s) if per_seed else kw))
        r.seeds_done.append(s)
        r.teachers += t
        r.ensembles += e
        r.students += st
    return r


def test_the_law_is_the_union_of_own_and_teachers_views():
    assert law_v2(1, 0.5) == 0.25 and law_v2(4, 0.5) == 2.0**-5
    assert law_v2(1, 0.4) == pytest.approx(0.2) and law_v2(3, 0.3) == pytest.approx(0.0375)


def test_a_student_at_the_law_with_a_clean_lottery_holds_on_8_seeds():
    j = judge(_results(), "fkd")
    assert j.holds is True and j.verdict == "holds by the mechanism (8 of 8 seeds alone)"
    assert [c.ok for c in j.clauses] == [True] * 5


def test_two_view_networks_are_outside_the_regime_and_get_no_verdict():
    half = [[True, True]] * 3 + [[True, False]] * 7  # both views in 3 of 10 classes
    j = judge(_results(own_views=half), "fkd")
    assert j.holds is None and j.verdict.startswith("outside the theory's regime (own run one-view 0.700 < 0.85)")
    j = judge(_results(teacher_views=half), "fkd")
    assert "teachers one-view 0.700 < 0.85" in j.verdict


def test_a_low_own_failure_is_outside_the_regime():
    j = judge(_results(f0=0.25), "fkd")
    assert j.verdict.startswith("outside the theory's regime (f0 0.250 < 0.3)")


def test_an_ensemble_that_meets_the_ratio_leaves_the_law_undecided():
    """The null: where the teachers' ensemble alone is within 1.25 L(E), the ratio cannot tell union from ensemble."""
    j = judge(_results(ens=lambda e: 1.2 * law_v2(e, 0.5)), "fkd")
    assert j.holds is None
    assert j.verdict.startswith("cannot tell the union from the ensemble (ensemble 1.200 L(E) <= 1.25 at E = 3")


def test_a_student_that_copies_the_ensemble_fails_the_law():
    j = judge(_results(fail=lambda e: 2 * law_v2(e, 0.5)), "fkd")
    assert j.holds is False and "failure / L(E) 2.000 > 1.25 at E = 1" in j.verdict


def test_the_law_fails_at_the_E_that_breaks_it_only():
    j = judge(_results(fail=lambda e: law_v2(e, 0.5) * (1.3 if e == 4 else 1.0)), "fkd")
    assert j.verdict == "fails the law (failure / L(E) 1.300 > 1.25 at E = 4)"


def test_the_ratio_compares_unrounded_numbers():
    """1.2505 prints as 1.250 at 3 decimals and as 1.25 in a table, and still fails."""
    j = judge(_results(fail=lambda e: law_v2(e, 0.5) * (1.2505 if e == 2 else 1.0)), "fkd")
    assert j.holds is False and "at E = 2" in j.verdict


def test_multi_view_errors_of_students_fail_the_law():
    j = judge(_results(multi=0.05), "fkd")
    assert j.holds is False and "multi-view error 0.050 > 0.02 at E = 1" in j.verdict


def test_a_student_that_meets_the_ratio_without_taking_the_views_fails_the_mechanism():
    j = judge(_results(p=0.8), "fkd")
    assert j.verdict.startswith("meets the ratio, fails the mechanism (p 0.800 < 0.9 at E = 1")
    j = judge(_results(kept=0.85), "fkd")
    assert "own views kept 0.850 < 0.9 at E = 1" in j.verdict


def test_views_nobody_had_fail_the_mechanism():
    own = [[True, False]] * K
    teacher = [[True, False]] * (K - 1) + [[False, True]]  # students learn both views: 9 cells nobody had
    j = judge(_results(own_views=own, teacher_views=teacher), "fkd")
    assert "views nobody had 0.450 > 0.05 at E = 1" in j.verdict


def test_four_seeds_are_too_few_and_a_mean_carried_by_few_seeds_is_not_robust():
    j = judge(_results(seeds=range(4)), "fkd")
    assert j.holds is None and j.verdict == "holds on the mean, not established (4 seeds < 8)"

    def per_seed(s):  # 3 seeds fail at E = 4 alone (1.5 L), 5 pass far under it: the mean passes
        return {"fail": (lambda e: law_v2(e, 0.5) * (1.5 if e == 4 else 1.0)) if s < 3 else
                (lambda e: law_v2(e, 0.5) * (0.9 if e == 4 else 1.0))}

    j = judge(_results(per_seed=per_seed), "fkd")
    assert j.clauses[2].ok and j.seeds_passing == [3, 4, 5, 6, 7]
    assert j.verdict == "holds on the mean, not established (5 of 8 seeds pass c and d alone (< 75%))"


def test_only_the_judged_seeds_count():
    r = _results(per_seed=lambda s: {"fail": (lambda e: 3 * law_v2(e, 0.5))} if s >= 8 else {}, seeds=range(12))
    assert judge(r, "fkd", range(8)).holds is True and judge(r, "fkd", range(8, 12)).holds is False


def test_a_sweep_without_every_E_is_not_judged_and_says_why():
    r = _results()
    r.students = [s for s in r.students if s.teachers != 3]
    j = judge(r, "fkd")
    assert j.holds is None and j.verdict.startswith("not judged: the sweep lacks E = 3")


def test_the_rule_is_data():
    assert RULE["version"] == 2 and RULE["law"]["ratio"] == 1.25 and RULE["robustness"] == {"seeds": 8, "share": 0.75}


def test_report_and_verdicts_commands(tmp_path):
    write_results(tmp_path / "a.json", _results(seeds=range(10)))
    res = CliRunner().invoke(main, ["report", str(tmp_path / "a.json"), "--decompose", "--judge-seeds", "2-9"])
    assert res.exit_code == 0, res.output
    assert "**fkd**: holds by the mechanism (8 of 8 seeds alone)" in res.output and "| fkd | 1 | 8 |" in res.output
    res = CliRunner().invoke(main, ["report", str(tmp_path / "a.json"), "--judge-seeds", "9-12"])
    assert res.exit_code != 0 and "judge seeds it has" in res.output
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps({"entries": [
        {"label": "clean", "results": "a.json", "seeds": "2-9"},
        {"label": "chosen on", "results": "a.json", "seeds": "0-1", "fresh": False}]}))
    md = write_verdicts(manifest, tmp_path / "table")
    assert "| clean | fkd | 2-9 | 1.00, 1.00, 1.00, 1.00 | 2.00, 2.00 | 1.00, 1.00; 0.50 | holds by the mechanism" in md
    assert "| chosen on | fkd | 0-1 (selection) |" in md and "selection seeds, no verdict" in md
    rows = json.loads((tmp_path / "table.json").read_text())["rows"]
    assert rows[0]["holds"] is True and rows[1]["holds"] is None
    manifest.write_text(json.dumps({"entries": [{"label": "x", "results": "a.json", "seeds": "20-21"}]}))
    res = CliRunner().invoke(main, ["verdicts", str(manifest), "--out", str(tmp_path / "t")])
    assert res.exit_code != 0 and "seeds [20, 21] are not in the file" in res.output


def test_readme_rows_and_the_verdict_figure(tmp_path):
    from multiview.plot import plot_verdict

    r = _results(seeds=range(8))
    write_results(tmp_path / "a.json", r)
    (tmp_path / "m.json").write_text(json.dumps({"entries": [
        {"label": "clean", "results": "a.json", "seeds": "0-7", "readme": ["fkd"]}]}))
    write_verdicts(tmp_path / "m.json", tmp_path / "t")
    table = json.loads((tmp_path / "t.json").read_text())["readme_table"]
    assert table.splitlines()[2].startswith("| clean | fkd | 0-7 | 1.00, 1.00, 1.00, 1.00 |")
    plot_verdict(r, range(8), tmp_path / "v.png", "k = 10, made-up records")
    assert (tmp_path / "v.png").stat().st_size > 10_000
    with pytest.raises(ValueError, match="no students on seeds"):
        plot_verdict(r, [20], tmp_path / "w.png")


def test_merge_joins_seeds_of_one_experiment_and_refuses_others(tmp_path):
    write_results(tmp_path / "a.json", _results(seeds=range(0, 4)))
    write_results(tmp_path / "b.json", _results(seeds=range(4, 8)))
    res = CliRunner().invoke(main, ["merge", str(tmp_path / "b.json"), str(tmp_path / "a.json"), "--out",
                                    str(tmp_path / "m.json")])
    assert res.exit_code == 0, res.output
    from multiview.records import read_distill

    assert read_distill(tmp_path / "m.json").seeds_done == list(range(8))
    res = CliRunner().invoke(main, ["merge", str(tmp_path / "a.json"), str(tmp_path / "a.json"), "--out",
                                    str(tmp_path / "x.json")])
    assert res.exit_code != 0 and "holds seeds [0, 1, 2, 3] again" in res.output
    other = _results(seeds=range(8, 9))
    other.config = {"k": 20}
    write_results(tmp_path / "c.json", other)
    res = CliRunner().invoke(main, ["merge", str(tmp_path / "a.json"), str(tmp_path / "c.json"), "--out",
                                    str(tmp_path / "y.json")])
    assert res.exit_code != 0 and "is another experiment than" in res.output and "config" in res.output
