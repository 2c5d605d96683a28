"""multiview: generator, smoothed ReLU, population, measurements, config, distillation, sweeps and the CLI."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from tiny_sim import LOTTERY

from fkdapp.errors import UserError
from multiview.cli import main
from multiview.config import Config, ConfigError
from multiview.data import make_data
from multiview.engine import Engine
from multiview.experiment import distill_experiment
from multiview.measure import covered, ensemble_report, error_report, views_learned
from multiview.population import _Features, evaluate, features, init_weights, smooth_relu, view_correlations
from multiview.records import read_results
from multiview.train import cross_entropy, train

# small and fast, with a visible lottery: see the E = 1 test below
TINY = {**LOTTERY, "student_steps": 500, "max_steps": Config.max_steps}  # the default network length


@pytest.fixture(scope="module")
def tiny() -> Config:
    return Config(**TINY)


@pytest.fixture(scope="module")
def tiny_data(tiny):
    return make_data(tiny, 0)


# ---------------------------------------------------------------- generator


def test_features_orthonormal_and_not_basis_vectors(tiny_data):
    v = tiny_data.features
    assert v.shape == (12, 64)
    assert torch.allclose(v @ v.T, torch.eye(12), atol=1e-5)
    assert v.abs().max() < 0.9  # a random rotation, not coordinate axes


def test_generator_shapes_and_determinism(tiny):
    a, b = make_data(tiny, 3), make_data(tiny, 3)
    assert a.train.x.shape == (200, 8, 64) and a.train.y.shape == (200,)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test_single.view, b.test_single.view)
    assert not torch.equal(make_data(tiny, 4).train.x, a.train.x)


def test_generator_coefficients(tiny, tiny_data):
    v = tiny_data.features
    for samples, single in ((tiny_data.test_multi, False), (tiny_data.test_single, True)):
        coef = samples.x @ v.T  # (N, P, 2k): the noise is orthogonal to the features
        total = coef.sum(1)
        n = len(samples)
        own = total.view(n, tiny.k, 2)[torch.arange(n), samples.y]  # (N, 2)
        if single:
            shown = own[torch.arange(n), samples.view]
            hidden = own[torch.arange(n), 1 - samples.view]
            assert shown.min() >= 1 - 1e-4 and shown.max() <= 2 + 1e-4
            assert torch.allclose(hidden, torch.full_like(hidden, tiny.rho), atol=1e-4)
            assert samples.single.all() and (samples.view >= 0).all()
        else:
            assert own.min() >= 1 - 1e-4 and own.max() <= 2 + 1e-4
            assert not samples.single.any() and (samples.view == -1).all()
        other = total.clone().view(n, tiny.k, 2)
        other[torch.arange(n), samples.y] = 0
        hi = tiny.other_coef_single[1] if single else tiny.other_coef_multi[1]
        assert other.max() <= hi + 1e-4 and other.min() >= -1e-4
        # each view of the label class sits on C_p patches
        assert ((coef.abs() > 1e-3).sum(1).view(n, tiny.k, 2)[torch.arange(n), samples.y] == tiny.C_p).all()


def test_single_view_fraction(tiny):
    cfg = tiny.with_(mu=0.3, n_train=4000)
    frac = make_data(cfg, 1).train.single.float().mean().item()
    assert abs(frac - 0.3) < 4 * np.sqrt(0.3 * 0.7 / 4000)


def test_noise_orthogonal_to_features_and_scale(tiny):
    data = make_data(tiny.with_(s=0.0), 2)
    x = data.test_multi.x
    resid = x - (x @ data.features.T) @ data.features
    expected = tiny.sigma_p * np.sqrt(tiny.d - 2 * tiny.k)
    assert abs(resid.norm(dim=-1).mean().item() / expected - 1) < 0.05


# ---------------------------------------------------------------- smoothed ReLU


def test_smooth_relu_values_and_continuity():
    q, r = 4, 0.3
    z = torch.tensor([-1.0, 0.0, 0.15, 0.3, 1.0], dtype=torch.float64)
    want = torch.tensor([0.0, 0.0, 0.15**4 / (4 * 0.3**3), 0.3 / 4, 1.0 - 0.75 * 0.3], dtype=torch.float64)
    assert torch.allclose(smooth_relu(z, q, r), want)
    eps = 1e-9
    for joint in (0.0, r):
        lo, hi = smooth_relu(torch.tensor([joint - eps, joint + eps], dtype=torch.float64), q, r)
        assert abs(hi - lo) < 1e-8


@pytest.mark.parametrize("q", [3, 4, 5])
def test_smooth_relu_derivative_at_joints(q):
    r = 0.3
    z = torch.tensor([-1e-7, 1e-7, r - 1e-7, r + 1e-7, 0.5 * r], dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(smooth_relu(z, q, r).sum(), z)
    assert g[0] == 0 and g[1] < 1e-12
    assert abs(g[2] - 1) < 1e-5 and g[3] == 1
    assert torch.isclose(g[4], torch.tensor(0.5 ** (q - 1), dtype=torch.float64))


def test_fused_features_match_reference(tiny, tiny_data):
    w = (init_weights(tiny, [1, 2, 3]) * 30).double().requires_grad_(True)
    x = tiny_data.train.x[:50].double()
    h = features(w, x, tiny)
    z = torch.einsum("npd,akrd->ankrp", x, w)
    ref = smooth_relu(z, tiny.q, tiny.varrho).sum(-1).flatten(2)
    assert torch.allclose(h, ref, atol=1e-12)
    (g1,) = torch.autograd.grad((h * h.sin()).sum(), w)
    (g2,) = torch.autograd.grad((ref * ref.sin()).sum(), w)
    assert torch.allclose(g1, g2, atol=1e-10)
    assert type(h.grad_fn).__name__ == f"{_Features.__name__}Backward"  # the fused path, not autograd's graph


# ---------------------------------------------------------------- population


def test_population_agrees_with_networks_trained_alone(tiny, tiny_data):
    """The batched path (one population) and the exact one (each network alone) are two code paths: their float64
    weights agree to a tolerance far above float64 rounding (1e-16 per operation, a few hundred steps), not bit
    for bit (bit for bit holds within the exact path: tests/test_engine.py)."""
    x, y = tiny_data.train.x.double(), tiny_data.train.y
    seeds = [11, 12, 13]
    w = init_weights(tiny, seeds).double()
    together, log = train(w, x, y, cross_entropy(y), tiny)
    alone, log1 = train(w[1:2], x, y, cross_entropy(y), tiny)
    assert log.fit_step[1] == log1.fit_step[0] and log.steps[1] == log1.steps[0]
    assert torch.allclose(together[1], alone[0], rtol=1e-9, atol=1e-12)
    assert all(f >= 0 for f in log.fit_step)
    # the stop rule: each network stopped `patience` steps after it first fitted
    assert log.steps == [f + tiny.patience for f in log.fit_step]
    assert (evaluate(together, x, tiny)[1].argmax(-1) == y).all()


# ---------------------------------------------------------------- measurements on hand-made weights


def test_views_learned_on_hand_made_weights(tiny, tiny_data):
    v = tiny_data.features.view(tiny.k, 2, tiny.d)
    w = torch.zeros(2, tiny.k, tiny.m, tiny.d)
    pattern = torch.zeros(2, tiny.k, 2, dtype=torch.bool)
    for j in range(tiny.k):
        w[0, j, 0] = 2.0 * v[j, j % 2]  # network 0: view j % 2 of class j
        pattern[0, j, j % 2] = True
        w[1, j, 1] = v[j, 0] + v[j, 1]  # network 1: both views
        pattern[1, j] = True
    w[1, 0, 1] = 0.2 * v[0, 0] + 1.0 * v[0, 1]  # 0.2 < varrho: view 0 of class 0 not learned
    pattern[1, 0, 0] = False
    learned = views_learned(view_correlations(w, tiny_data.features, tiny), tiny)
    assert torch.equal(learned, pattern)
    cov = covered(learned, tiny_data.test_single)
    assert cov[1].float().mean() > cov[0].float().mean()
    # ratio rule: a view far below the other is not learned even above varrho
    corr = torch.tensor([[[5.0, 1.0], [5.0, 2.0]]])
    assert torch.equal(views_learned(corr, tiny), torch.tensor([[[True, False], [True, True]]]))


def test_error_report_and_ensemble_on_hand_made_logits(tiny, tiny_data):
    tm, ts = tiny_data.test_multi, tiny_data.test_single
    k = tiny.k
    right_m = torch.nn.functional.one_hot(tm.y, k).float()[None]
    right_s = torch.nn.functional.one_hot(ts.y, k).float()[None]
    wrong_s = torch.nn.functional.one_hot((ts.y + 1) % k, k).float()[None]
    learned = torch.zeros(2, k, 2, dtype=torch.bool)
    learned[0, :, 0] = True
    learned[1, :, 1] = True
    cov = covered(learned, ts)
    # learner 0 right exactly where its view is covered, learner 1 always wrong on single-view data
    ls = torch.cat([torch.where(cov[0][:, None], right_s[0], wrong_s[0])[None], wrong_s])
    rep = error_report(torch.cat([right_m, right_m]), ls, tm, ts, cov)
    first_view = (ts.view == 0).float().mean().item()
    assert rep[0]["multi_view_error"] == 0
    assert rep[0]["single_view_failure"] == pytest.approx(1 - first_view)
    assert rep[0]["failure_view_learned"] == 0 and rep[0]["failure_view_not_learned"] == 1
    assert rep[1]["single_view_failure"] == 1
    ens = ensemble_report(torch.cat([right_m, right_m]), ls, tm, ts, learned, [1, 2])
    assert ens[0]["uncovered_fraction"] == pytest.approx(1 - first_view)
    assert ens[1]["uncovered_fraction"] == 0  # the two lotteries together cover every view
    assert ens[1]["predicted_uncovered"] == pytest.approx(first_view * (1 - first_view))


# ---------------------------------------------------------------- config


@pytest.mark.parametrize(
    "bad, name",
    [
        (dict(d=10), "d"),
        (dict(mu=1.5), "mu"),
        (dict(k=1), "k"),
        (dict(q=2), "q"),
        (dict(P=4, C_p=2), "P"),
        (dict(n_train=0), "n_train"),
        (dict(lr=-1.0), "lr"),
        (dict(view_coef=(2.0, 1.0)), "view_coef"),
        (dict(method_params={"fkd": {"ensemble": "max"}}), "ensemble"),
        (dict(batch_size=1), "batch_size"),
        (dict(m="8"), "m"),
    ],
)
def test_config_validation_names_the_field(bad, name):
    with pytest.raises(ConfigError, match=rf"(^config value |parameter ){name}="):
        Config(**bad)


def test_config_json_round_trip(tmp_path, tiny):
    p = tmp_path / "c.json"
    tiny.save(p)
    assert Config.load(p) == tiny
    p.write_text(json.dumps({"config": tiny.to_dict(), "students": []}))  # a results file works too
    assert Config.load(p) == tiny
    p.write_text('{"k": 4, "nope": 1}')
    with pytest.raises(ConfigError, match="unknown config key"):
        Config.load(p)
    p.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        Config.load(p)
    with pytest.raises(ConfigError, match="not found"):
        Config.load(tmp_path / "missing.json")


# ---------------------------------------------------------------- distillation, sweeps


@pytest.mark.slow
def test_one_teacher_visibly_lowers_the_failure_rate(tiny):
    r = distill_experiment(tiny, [0, 1], [0, 1], ["fkd"], torch.device("cpu"), None)
    fail = {e: np.mean([s.single_view_failure for s in r.students if s.teachers == e]) for e in (0, 1)}
    assert fail[1] < 0.7 * fail[0]
    for s in r.students:
        assert s.train_accuracy == 1.0 and s.multi_view_error <= 0.02
        assert s.own_views == next(x.views_learned for x in r.students if x.seed == s.seed and x.teachers == 0)
    e1 = [s for s in r.students if s.teachers == 1]
    assert np.mean([s.uncovered_fraction for s in e1]) < np.mean([s.ideal_uncovered for s in e1]) + 0.15


@pytest.mark.slow
def test_killed_sweep_resumes_from_finished_seeds(tmp_path, tiny):
    cfg = tiny.with_(student_steps=200, max_steps=300)
    args = ([0, 1], [0, 1], ["fkd", "kd"], torch.device("cpu"))

    class Killed(Exception):
        pass

    def kill(_):
        raise Killed

    with pytest.raises(Killed):
        distill_experiment(cfg, *args, tmp_path, on_seed=kill)
    assert read_results(tmp_path / "results.json").seeds_done == [0]
    assert (tmp_path / "teachers" / "seed0.pt").is_file()  # the teacher pool
    done = []
    resumed = distill_experiment(cfg, *args, tmp_path, on_seed=lambda r: done.append(r.seeds_done[0]))
    assert done == [1]  # seed 0 was not run again
    whole = distill_experiment(cfg, *args, None)
    assert resumed.students == whole.students and resumed.ensembles == whole.ensembles
    with pytest.raises(UserError, match="different experiment"):
        distill_experiment(cfg.with_overrides(["fkd.lambda=3"]), *args, tmp_path)
    with pytest.raises(UserError, match=r"holds this sweep for E = \[0, 1\], not \[0, 1, 2\]; .*--teacher-pool"):
        distill_experiment(cfg, args[0], [0, 1, 2], *args[2:], tmp_path)
    # the pooled teachers are those a fresh run trains: another experiment on the same seeds reuses them
    other = distill_experiment(cfg, [0, 1], [0, 1], ["kd"], torch.device("cpu"), tmp_path / "other",
                               pool=tmp_path / "teachers")
    assert other.teachers == whole.teachers and other.ensembles == whole.ensembles


# ---------------------------------------------------------------- CLI


def _write_tiny(tmp_path: Path, **extra) -> Path:
    p = tmp_path / "tiny.json"
    p.write_text(json.dumps({**TINY, "student_steps": 200, "max_steps": 300, **extra}))
    return p


def test_cli_simulate_and_train(tmp_path):
    runner = CliRunner()
    cfg = _write_tiny(tmp_path)
    res = runner.invoke(
        main, ["simulate", "--teachers", "1", "--config", str(cfg), "--out", str(tmp_path / "s"), "--device", "cpu"]
    )
    assert res.exit_code == 0, res.output
    assert "student E=1" in res.output and "theory 0.250" in res.output
    r = read_results(tmp_path / "s" / "results.json")
    assert [(s.method, s.teachers) for s in r.students] == [("fkd", 0), ("fkd", 1)]
    assert r.students[1].weight == pytest.approx(10.0 * 6 / 10) and r.students[1].params["lambda"] == 10.0
    assert len(r.students[0].views_learned) == 6 and r.ensembles[0].size == 1
    res = runner.invoke(main, ["train", "-M", "2", "--config", str(cfg), "--out", str(tmp_path / "t")])
    assert res.exit_code == 0, res.output
    t = read_results(tmp_path / "t" / "results.json")
    assert len(t.networks) == 2 and len(t.networks[0].views_learned) == 6
    assert [e.size for e in t.ensembles] == [1, 2]


@pytest.mark.parametrize(
    "args, message",
    [
        (["simulate", "--teachers", "-1"], "-1"),
        (["simulate", "--method", "nope"], "nope"),
        (["sweep", "--methods", "fkd,nope"], "unknown method"),
        (["sweep", "--teachers", "a-b"], "range"),
        (["simulate", "--config", "/nonexistent/c.json"], "not found"),
        (["simulate", "--set", "k=1"], "k=1"),
        (["simulate", "--set", "k"], "KEY=VALUE"),
        (["simulate", "--set", "kk=1"], "did you mean 'k'"),
        (["simulate", "--set", "k=abc"], "must be an integer"),
        (["simulate", "--set", "fkd.lamda=1"], "did you mean 'lambda'"),
        (["sweep", "--methods", "fdk"], "did you mean 'fkd'"),
        (["sweep", "--methods", "fkd,fkd"], "given twice"),
        (
            ["simulate", "--device", "cuda:7"] if not torch.cuda.is_available() else ["simulate", "--device", "xyz"],
            "device",
        ),
    ],
)
def test_cli_bad_input_is_one_line(args, message, tmp_path):
    res = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "o")])
    assert res.exit_code != 0
    error = res.output.strip().splitlines()[-1]  # click's usage errors print the usage line above
    assert error.startswith("Error:") and message in error and len(error) < 200
    assert "Traceback" not in res.output and not isinstance(res.exception, (ValueError, TypeError))


def test_cli_malformed_config(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text("[1, 2")
    res = CliRunner().invoke(main, ["simulate", "--config", str(p), "--out", str(tmp_path / "o")])
    assert res.exit_code != 0 and "not valid JSON" in res.output and "Traceback" not in res.output


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("torchrun", path=os.path.dirname(sys.executable)) is None, reason="no torchrun")
def test_torchrun_sweep_shards_seeds_and_merges(tmp_path):
    cfg = _write_tiny(tmp_path)
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    out = tmp_path / "tr"
    cmd = [
        torchrun,
        "--nproc-per-node",
        "2",
        "--master-port",
        "29517",
        "-m",
        "multiview",
        "sweep",
        "--teachers",
        "0-1",
        "--methods",
        "fkd",
        "--seeds",
        "2",
        "--config",
        str(cfg),
        "--out",
        str(out),
        "--device",
        "cpu",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    merged = read_results(out / "results.json")
    assert merged.seeds_done == [0, 1]
    # one process (this one, its own thread count and two workers) gets every record bit for bit: the exact engine
    single = distill_experiment(Config.load(cfg), [0, 1], [0, 1], ["fkd"], torch.device("cpu"), None,
                                engine=Engine(workers=2))
    assert merged.students == single.students and merged.teachers == single.teachers
    assert merged.ensembles == single.ensembles


@pytest.mark.slow
@pytest.mark.parametrize("entry", [
    "from multiview.cli import main; from click.testing import CliRunner; CliRunner().invoke(main, ['report', 'x'])",
    "from multiview.cli import run_script; run_script(lambda: None)",
])
def test_commands_and_scripts_share_one_numerics_path(entry):
    """Both entry points flush denormals (a fresh process: the setting is global), so a script re-running a sweep's
    seeds gets the sweep's numbers bit for bit."""
    probe = "import torch; x = torch.tensor([1e-39]); print(float(x * 2))"
    before = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                            timeout=120).stdout
    after = subprocess.run([sys.executable, "-c", f"{entry}; {probe}"], capture_output=True, text=True, check=True,
                           timeout=120)
    assert float(before) > 0 and float(after.stdout.strip().splitlines()[-1]) == 0.0
