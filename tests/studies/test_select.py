"""The select-then-report rule every study uses: the lowest (or highest) score among eligible candidates, ties to
the first, a fallback or the best of all where none is eligible."""

from studies.select import choose


def test_choose_takes_the_best_eligible_candidate_and_the_first_of_ties():
    scores = {"a": {"failure": 0.2, "multi": 0.0}, "b": {"failure": 0.1, "multi": 0.5},
              "c": {"failure": 0.15, "multi": 0.0}, "d": {"failure": 0.15, "multi": 0.01}}
    ok = lambda v: v["multi"] <= 0.02  # noqa: E731
    assert choose(scores, ok, "failure") == "c"  # b is lower but not eligible; c before d on the tie
    assert choose(scores, lambda v: True, "failure") == "b"
    assert choose(scores, ok, "failure", highest=True) == "a"


def test_choose_falls_back_when_no_candidate_is_eligible():
    scores = {1.0: {"failure": 0.3}, 3.0: {"failure": 0.1}}
    assert choose(scores, lambda v: False, "failure", fallback=1.0) == 1.0
    assert choose(scores, lambda v: False, "failure") == 3.0  # no fallback: the best of all
