"""multiview plot / report on a synthetic results file (nothing is trained), and their one-line errors."""

from __future__ import annotations

import json
import random

import pytest
from click.testing import CliRunner

from multiview.cli import main
from multiview.config import Config
from multiview.plot import plot_results
from multiview.records import from_dict
from studies.figures import plot_frontier, plot_mu

PNG = b"\x89PNG\r\n\x1a\n"
K = 4


def _views(rng: random.Random) -> list[list[bool]]:
    """One view per class, as the lottery gives."""
    out = []
    for _ in range(K):
        first = rng.random() < 0.5
        out.append([first, not first])
    return out


def _student(rng: random.Random, seed: int, method: str, e: int) -> dict:
    own, union = _views(rng), [[False, False] for _ in range(K)]
    for _ in range(e):
        union = [[a or b for a, b in zip(u, t, strict=True)] for u, t in zip(union, _views(rng), strict=True)]
    learned = [[a or b for a, b in zip(o, u, strict=True)] for o, u in zip(own, union, strict=True)]
    new = any(u and not o for ou, uu in zip(own, union, strict=True) for o, u in zip(ou, uu, strict=True))
    theory = 2.0 ** -(e + 1) if method != "kd" else 2.0**-e if e else 0.5
    failure = min(1.0, max(0.0, theory * rng.uniform(0.7, 1.3)))
    return {
        "seed": seed,
        "method": method,
        "teachers": e,
        "trained_as": f"{method if e else 'ce'}@{e}",
        "lambda": 10.0 * e if method == "fkd" else float(bool(e)),
        "train_accuracy": 1.0,
        "multi_view_error": 0.0,
        "single_view_failure": failure,
        "failure_view_learned": 0.0,
        "failure_view_not_learned": 0.8,
        "uncovered_fraction": min(1.0, failure * 1.2),
        "ideal_uncovered": failure * 0.9,
        "own_views_kept": 1.0 if method != "kd" or e == 0 else rng.choice([0.5, 0.75]),
        "teacher_new_views_covered": rng.choice([0.75, 1.0]) if e and new else None,
        "mechanism_exact": e == 0 or (method == "fkd" and rng.random() < 0.6),
        "theory_failure": 2.0 ** -(e + 1),
        "views_learned": learned,
        "teacher_views_union": union,
        "own_views": own,
    }


def synthetic_results(seeds: int = 2, counts: tuple[int, ...] = (0, 1, 2)) -> dict:
    """A results dict shaped like `multiview sweep` output before schema 2 (the committed files' layout, migrated when
    read): methods fkd, kd, ce; E = 0..2; ensembles of 1..2."""
    rng = random.Random(0)
    methods = ["fkd", "kd", "ce"]
    students, ensembles, teachers = [], [], []
    for seed in range(seeds):
        for method in methods:
            for e in counts:
                if method != "ce" or e == 0:
                    students.append(_student(rng, seed, method, e))
        for size in (e for e in counts if e >= 1):
            failure = 2.0**-size * rng.uniform(0.7, 1.3)
            ensembles.append(
                {
                    "seed": seed,
                    "size": size,
                    "multi_view_error": 0.0,
                    "single_view_failure": failure,
                    "failure_view_learned": 0.0,
                    "failure_view_not_learned": 0.9,
                    "uncovered_fraction": failure * 1.1,
                    "predicted_uncovered": 2.0**-size,
                }
            )
        for i in range(max(counts)):
            teachers.append(
                {"experiment_seed": seed, "seed": 100 + i, "train_accuracy": 1.0, "multi_view_error": 0.0,
                 "single_view_failure": 0.45, "failure_view_learned": 0.0, "failure_view_not_learned": 0.9,
                 "uncovered_fraction": 0.5, "views_learned": _views(rng), "fit_step": 50}
            )  # fmt: skip
    return {
        "kind": "distill",
        "config": json.loads(json.dumps(Config(k=K, d=64).to_dict())),
        "teacher_counts": list(counts),
        "methods": methods,
        "view_threshold": "max_r <w_j,r, v_j,l> > 1 * varrho = 0.3 and >= 0.3 x the larger of the class's two",
        "environment": {"device": "cpu (test)", "torch": "test"},
        "seeds_done": list(range(seeds)),
        "teachers": teachers,
        "ensembles": ensembles,
        "students": students,
    }


def cli(*args) -> object:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def assert_one_line_error(result) -> None:
    assert result.exit_code != 0
    out = result.output.strip()
    assert out.startswith("Error:"), out
    assert len(out.splitlines()) == 1, out
    assert "Traceback" not in out


@pytest.mark.parametrize("seeds", [1, 2])
def test_plot_results_writes_png(tmp_path, seeds):
    out = tmp_path / "sub" / "fig.png"
    plot_results(from_dict(synthetic_results(seeds)), out)
    data = out.read_bytes()
    assert data.startswith(PNG) and len(data) > 10_000


def test_plot_results_without_ensembles_or_teachers(tmp_path):
    r = from_dict(synthetic_results(counts=(0,)))
    assert not r.ensembles
    plot_results(r, tmp_path / "fig.png")
    assert (tmp_path / "fig.png").read_bytes().startswith(PNG)


def test_cli_plot_and_report(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(synthetic_results()))
    fig = tmp_path / "fig.png"
    r = cli("plot", path, "-o", fig)
    assert r.exit_code == 0, r.output
    assert fig.read_bytes().startswith(PNG)
    r = cli("report", path)
    assert r.exit_code == 0, r.output
    for method in ("fkd", "kd", "ce"):
        assert f"| {method} |" in r.output
    assert "|---|" in r.output and "teacher ensemble" in r.output


def population_results() -> dict:
    return {
        "kind": "population",
        "config": Config(k=K, d=64).to_dict(),
        "seed": 0,
        "view_threshold": "...",
        "environment": {"device": "cpu"},
        "lottery": {"pairs": 8, "one_view": 8, "both_views": 0, "no_view": 0, "first_view_wins": 4},
        "networks": [],
        "ensembles": [],
    }


def test_plot_rejects_bad_results(tmp_path):
    with pytest.raises(ValueError, match="population"):
        plot_results(from_dict(population_results()), tmp_path / "a.png")
    r = synthetic_results()
    r["students"] = []
    with pytest.raises(ValueError, match="no students"):
        plot_results(from_dict(r), tmp_path / "b.png")
    r = synthetic_results()
    del r["students"][0]["single_view_failure"]
    with pytest.raises(ValueError, match="single_view_failure"):
        plot_results(from_dict(r), tmp_path / "c.png")
    assert not list(tmp_path.iterdir())


def test_cli_bad_files_are_one_line_errors(tmp_path):
    pop = tmp_path / "population.json"
    pop.write_text(json.dumps(population_results()))
    bad = tmp_path / "bad.json"
    bad.write_text('{"config": {"k": 4}, "students": [')
    fig = tmp_path / "fig.png"
    assert_one_line_error(cli("plot", pop, "-o", fig))
    assert_one_line_error(cli("plot", bad, "-o", fig))
    assert_one_line_error(cli("plot", tmp_path / "missing.json", "-o", fig))
    assert_one_line_error(cli("report", bad))
    assert not fig.exists()


def test_cli_report_on_population_file_is_a_one_line_error(tmp_path):
    pop = tmp_path / "population.json"
    pop.write_text(json.dumps(population_results()))
    assert_one_line_error(cli("report", pop))


def test_plot_frontier_writes_file(tmp_path):
    points = [
        {"variant": v, "lambda": lam, "teachers": e, "own_views_kept": 1 - lam / 100, "teacher_new_views_covered": lam
         / 40, **({"own_ci": 0.05, "new_ci": 0.04} if v == "mean" else {})}
        for v in ("mean", "concat") for e in (1, 2) for lam in (5.0, 10.0, 20.0)
    ]  # fmt: skip
    out = tmp_path / "frontier.png"
    plot_frontier(points, out)
    assert out.read_bytes().startswith(PNG)
    with_ratio = [{**p, "scale": p["lambda"] / 10, "uncovered_over_ideal": 1 + p["lambda"] / 20} for p in points]
    plot_frontier(with_ratio, tmp_path / "frontier2.png")  # adds the row of uncovered / ideal against the scale
    assert (tmp_path / "frontier2.png").read_bytes().startswith(PNG)
    with pytest.raises(ValueError):
        plot_frontier([], out)
    with pytest.raises(ValueError, match="lambda"):
        plot_frontier([{"variant": "mean", "teachers": 1, "own_views_kept": 1, "teacher_new_views_covered": 1}], out)


def test_plot_mu_writes_file(tmp_path):
    out = tmp_path / "mu.png"
    plot_mu([(0.0, from_dict(synthetic_results())), (0.05, from_dict(synthetic_results(seeds=3)))], out)
    assert out.read_bytes().startswith(PNG)
    with pytest.raises(ValueError, match="no results"):
        plot_mu([], out)
    with pytest.raises(ValueError, match="population"):
        plot_mu([(0.0, from_dict(population_results()))], out)


def test_results_round_trip_and_committed_files_load(tmp_path):
    from pathlib import Path

    from multiview.records import SCHEMA, read_results, write_results

    r = from_dict(synthetic_results())
    assert r.schema == SCHEMA and r.teachers[0].seed == 0 and r.teachers[0].init_seed == 100
    fkd1 = next(s for s in r.students if s.method == "fkd" and s.teachers == 1)
    assert fkd1.weight == 10.0 and fkd1.params["lambda"] == 10.0
    write_results(tmp_path / "r.json", r)
    assert read_results(tmp_path / "r.json") == r
    figures = Path(__file__).resolve().parents[2] / "figures"
    files = sorted(figures.glob("**/*_results.json"))
    assert files
    for path in files:
        loaded = read_results(path)
        assert loaded.students and loaded.seeds_done
    lam5 = read_results(figures / "multiview_k20_lambda" / "fkd_lambda5_results.json")
    assert lam5.methods == ["fkd:lambda=5"] and lam5.students[-1].params["lambda"] == 5.0
    newer = {**synthetic_results(), "schema": SCHEMA + 1}
    with pytest.raises(ValueError, match="newer"):
        from_dict(newer)


def test_collapsed_views_and_applied_ratio():
    from types import SimpleNamespace

    from multiview.methods import parse_method
    from multiview.report import applied_ratio, collapsed_views

    # probes x k=2 classes x 2 views: (0,1) grows past 1 then falls to 0.1 (collapsed); (1,0) reaches 1.2 and
    # stays; (0,0) falls below 0.3 without having reached 1; (1,1) reaches 1 only at the last probe
    corr = [[[0.5, 0.2], [0.1, 0.0]], [[0.4, 2.0], [1.2, 0.1]], [[0.1, 0.1], [1.1, 1.0]]]
    s = SimpleNamespace(teachers=2, diagnostics={"view_corr": corr, "probe_steps": [0, 100, 200],
                                                 "grad_ratio": [1e6, 3e3, 40.0]})
    assert collapsed_views(s) == 1
    assert collapsed_views(s, high=0.45) == 2  # (0,0) now counts: 0.5 at step 0, 0.1 at step 200
    assert collapsed_views(SimpleNamespace(diagnostics={})) is None
    balanced = parse_method("fkd:eps_rel=0.1,balance=0.5,balance_until=200")
    assert [applied_ratio(balanced, s, i, t) for i, t in enumerate([0, 100, 200])] == [0.5, 0.5, 40.0]
    assert applied_ratio(parse_method("fkd"), s, 0, 0) == 1e6
    assert applied_ratio(balanced, SimpleNamespace(**{**vars(s), "teachers": 0}), 0, 0) == 1e6  # no teachers
