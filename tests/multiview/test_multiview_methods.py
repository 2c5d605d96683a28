"""multiview: the method registry, its losses against fkd's functions, training options, and the statistics."""

import math

import numpy as np
import pytest
import torch
from scipy import stats
from tiny_sim import LOTTERY

from fkd import dkd_loss, feature_regularizer, fkd_loss, kd_loss, pkt_loss, rkd_loss, sp_loss
from fkdapp.errors import ConfigError
from fkdapp.stats import format_mean_ci, mean_ci
from multiview.config import Config
from multiview.data import make_data
from multiview.distill import Student, students_for
from multiview.experiment import distill_experiment
from multiview.methods import (
    CE,
    DKD,
    FKD,
    KD,
    METHODS,
    PKT,
    RKD,
    SP,
    Batch,
    FKDRaw,
    Targets,
    parse_method,
    parse_methods,
    split_specs,
)
from multiview.population import evaluate, init_weights
from multiview.records import from_dict
from multiview.report import log2_slope, lottery_report
from multiview.train import cross_entropy, train

TINY = LOTTERY


def test_specs_parameters_and_precedence():
    cfg = Config(method_params={"fkd": {"lambda": 20}})
    assert parse_method("fkd").params["lambda"] == 10.0 and parse_method("fkd").spec == "fkd"
    m = parse_method("fkd", cfg.method_params)
    assert m.params["lambda"] == 20.0 and m.spec == "fkd:lambda=20"
    assert parse_method("fkd:lambda=30,feature_reg=0.01", cfg.method_params).params == {**FKD.DEFAULTS, "lambda": 30.0,
                                                                        "feature_reg": 0.01}
    assert split_specs("fkd:lambda=30,feature_reg=0.01,kd,ce") == ["fkd:lambda=30,feature_reg=0.01", "kd", "ce"]
    assert [m.NAME for m in parse_methods("all")] == list(METHODS)
    assert parse_method("fkd:ensemble=concat").params["ensemble"] == "concat"
    for bad, message in (("fdk", "did you mean 'fkd'"), ("fkd:lamda=1", "did you mean 'lambda'"),
                         ("fkd:lambda=-1", ">= 0"), ("fkd:ensemble=max", "one of"), ("kd:3", "NAME=VALUE")):
        with pytest.raises(ConfigError, match=message):
            parse_method(bad)
    with pytest.raises(ConfigError, match="given twice"):
        parse_methods("kd,kd:kd_weight=3")


def test_weight_rules_and_own_lottery():
    assert FKD().weight(2, 20) == 10.0 * 2 * 20 / 10 and FKD().weight(0, 10) == 0
    assert FKDRaw().weight(3, 10) == pytest.approx(0.03)
    assert KD().weight(1, 10) == KD().weight(4, 30) == 3.0 and KD().weight(0, 10) == 0
    assert CE().weight(3, 10) == 0
    assert FKD().own_lottery() == CE() and KD().own_lottery() == CE()
    reg = FKD(feature_reg=0.01)
    assert reg.own_lottery() == reg  # the regulariser acts without teachers
    students = students_for([reg, KD(), CE()], [0, 1, 2])
    assert [(s.method.spec, s.teachers) for s in students] == [
        ("ce", 0), ("fkd:feature_reg=0.01", 0), ("fkd:feature_reg=0.01", 1), ("fkd:feature_reg=0.01", 2),
        ("kd", 1), ("kd", 2)]


def test_losses_equal_fkd_functions():
    """Each method's batched loss against fkd's functions called per student."""
    g = torch.Generator().manual_seed(0)
    e_max, n, d, k = 3, 24, 8, 4
    targets = Targets(torch.randn(e_max, n, d, generator=g), torch.randn(e_max, n, k, generator=g))
    h, f = torch.randn(3, n, d, generator=g), torch.randn(3, n, k, generator=g)
    index = torch.arange(n)
    labels = torch.randint(0, k, (n,), generator=g)
    batch = Batch(h, f, index, h, index, labels)
    counts = [0, 1, 3]
    w = torch.tensor([0.0, 2.0, 5.0])
    for method, want in (
        (FKD(feature_reg=0.1), lambda i, e: w[i] * fkd_loss(h[i], list(targets.h[:e]), eps=0.1) if e else 0.0),
        (FKDRaw(), lambda i, e: w[i] * fkd_loss(h[i], list(targets.h[:e]), normalize=False) if e else 0.0),
        (KD(), lambda i, e: w[i] * kd_loss(f[i], list(targets.logits[:e])) if e else 0.0),
        (DKD(), lambda i, e: w[i] * dkd_loss(f[i], list(targets.logits[:e]), labels) if e else 0.0),
        (SP(), lambda i, e: w[i] * sum(sp_loss(h[i], t) for t in targets.h[:e]) / e if e else 0.0),
        (PKT(), lambda i, e: w[i] * sum(pkt_loss(h[i], t) for t in targets.h[:e]) / e if e else 0.0),
        (RKD(angle_samples=10), lambda i, e: w[i] * sum(
            rkd_loss(h[i], t, w_a=0.0) + rkd_loss(h[i, :10], t[:10], w_d=0.0) for t in targets.h[:e]) / e
         if e else 0.0),
    ):
        got = method.loss(batch, method.prepare(targets, counts), w, counts)
        reg = 0.1 * feature_regularizer(h) if method == FKD(feature_reg=0.1) else torch.zeros(3)
        for i, e in enumerate(counts):
            assert float(got[i]) == pytest.approx(float(want(i, e) + reg[i]), rel=1e-4, abs=1e-6), method


@pytest.mark.parametrize("options", [dict(batch_size=50), dict(kernel_batch=64), dict(gamma=0.1)])
def test_training_options_run_and_are_deterministic(options):
    cfg = Config(**TINY, **options)
    a = distill_experiment(cfg, [0], [0, 1], ["fkd", "fkd-raw", "kd:kd_weight=1"], torch.device("cpu"), None)
    b = distill_experiment(cfg, [0], [0, 1], ["fkd", "fkd-raw", "kd:kd_weight=1"], torch.device("cpu"), None)
    assert a.students == b.students
    assert {s.method for s in a.students} == {"fkd", "fkd-raw", "kd:kd_weight=1"}


def test_gamma_adds_feature_noise():
    data = make_data(Config(**TINY, gamma=0.1), 0)
    coef = data.test_multi.x @ data.features.T  # (N, P, 2k)
    assert (coef > 1e-3).float().mean() > 0.9  # every feature on (almost) every patch, as alpha ~ U[0, gamma]
    clean = make_data(Config(**TINY), 0).test_multi.x @ data.features.T
    assert (clean > 1e-3).float().mean() < 0.2


def test_minibatch_training_fits():
    cfg = Config(**TINY, batch_size=64)
    data = make_data(cfg, 0)

    w0 = init_weights(cfg, [1, 2])
    w, log = train(w0, data.train.x, data.train.y, cross_entropy(data.train.y), cfg,
                   generator=torch.Generator().manual_seed(0))
    acc = (evaluate(w, data.train.x, cfg)[1].argmax(-1) == data.train.y).float().mean(-1)
    acc0 = (evaluate(w0, data.train.x, cfg)[1].argmax(-1) == data.train.y).float().mean(-1)
    assert (acc > 0.9).all() and (acc0 < 0.5).all()
    # the stop rule on mini-batches: fitted networks stop `patience` steps after they first fit, the others at the cap
    assert all(s == (f + cfg.patience if f >= 0 else cfg.max_steps) for f, s in zip(log.fit_step, log.steps,
                                                                                  strict=True))


def test_feature_regularizer_student_records_its_own_lottery():
    cfg = Config(**TINY)
    r = distill_experiment(cfg, [0], [0, 1], ["fkd:feature_reg=0.01", "ce"], torch.device("cpu"), None)
    by = {(s.method, s.teachers): s for s in r.students}
    assert by["fkd:feature_reg=0.01", 0].trained_as == "fkd:feature_reg=0.01@0"
    assert by["fkd:feature_reg=0.01", 1].own_views == by["fkd:feature_reg=0.01", 0].views_learned
    assert by["ce", 0].trained_as == "ce@0"


def test_statistics_against_scipy():
    values = [0.1, 0.3, 0.25, 0.4]
    m, h = mean_ci(values)
    lo, hi = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    assert m == pytest.approx(np.mean(values)) and h == pytest.approx((hi - lo) / 2)
    assert math.isnan(mean_ci([0.2])[1])
    # the tables' text form: t(0.975, 2) = 4.303, sd 1 over 3 seeds -> half-width 2.484
    assert format_mean_ci([1.0, 2.0, 3.0]) == "2.00 ± 2.48" and format_mean_ci([1.0, 2.0, 3.0], 4) == "2.0000 ± 2.4841"
    assert format_mean_ci([5.0]) == "5.00" and format_mean_ci([]) == "-"
    # log2 slope: exact on a 2^-(E+1) curve
    students = [{"seed": 0, "method": "fkd", "teachers": e, "trained_as": "", "lambda": 0.0,
                 "train_accuracy": 1.0, "multi_view_error": 0.0, "single_view_failure": 2.0 ** -(e + 1),
                 "failure_view_learned": None, "failure_view_not_learned": None, "uncovered_fraction": 0.0,
                 "ideal_uncovered": 0.0, "own_views_kept": None, "teacher_new_views_covered": None,
                 "mechanism_exact": True, "theory_failure": 0.0, "views_learned": [], "teacher_views_union": [],
                 "own_views": []} for e in range(5)]
    r = from_dict({"kind": "distill", "config": Config().to_dict(), "teacher_counts": list(range(5)),
                   "methods": ["fkd"], "view_threshold": "", "environment": {}, "seeds_done": [0],
                   "teachers": [], "ensembles": [], "students": students})
    assert log2_slope(r, "fkd") == pytest.approx(-1.0)
    # the binomial p-value of the lottery report
    nets = from_dict({"kind": "population", "config": Config().to_dict(), "seed": 0, "view_threshold": "",
                      "environment": {}, "lottery": {}, "ensembles": [],
                      "networks": [{"seed": i, "train_accuracy": 1.0, "multi_view_error": 0.0,
                                    "single_view_failure": 0.5, "failure_view_learned": None,
                                    "failure_view_not_learned": None, "uncovered_fraction": 0.5, "fit_step": 1,
                                    "views_learned": [[True, False]] * 7 + [[False, True]] * 3} for i in range(2)]})
    p = stats.binomtest(14, 20, 0.5).pvalue
    assert f"p = {p:.3f}" in lottery_report(nets.networks)


def test_probes_record_without_changing_training_and_balance_rescales():
    """Probes record the gradient balance and view correlations and leave the weights bit for bit as they are; a
    balanced student's distillation gradient is c times CE's in norm."""
    from multiview.distill import student_objective
    from multiview.engine import Engine
    from multiview.experiment import network_seeds, train_networks

    cfg = Config(**TINY)
    data = make_data(cfg, 0)
    w_t, _ = train_networks(cfg, data, network_seeds(0, 2), Engine())
    targets = Targets(*evaluate(w_t, data.train.x, cfg))
    students = [Student(CE(), 0), Student(FKD(), 2), Student(KD(), 2)]
    w0 = init_weights(cfg, [5] * 3)
    run = dict(min_steps=20)
    cfg_short = cfg.with_(max_steps=20)
    plain, _ = train(w0, data.train.x, data.train.y, student_objective(students, targets, data.train.y, cfg), cfg_short,
                     **run)
    probed, log = train(w0, data.train.x, data.train.y, student_objective(students, targets, data.train.y, cfg),
                        cfg_short, probe_steps=(0, 10), views=data.features, **run)
    assert torch.equal(plain, probed)
    assert log.probe_steps == [[0, 10]] * 3 and len(log.grad_ratio) == 3 and log.grad_ratio[0] == [0.0, 0.0]
    assert log.grad_ratio[2][0] > 1.0 > log.grad_ratio[1][0] > 0  # KD steers from step 0, FKD's eps mutes it
    assert np.array(log.view_corr).shape == (3, 2, cfg.k, 2)
    balanced = [Student(FKD(balance=0.5), 2)]
    obj = student_objective(balanced, targets, data.train.y, cfg)
    _, blog = train(w0[:1], data.train.x, data.train.y, obj, cfg.with_(max_steps=1), min_steps=1, probe_steps=(0,),
                    views=data.features)
    assert blog.grad_ratio[0][0] > 0  # the recorded ratio is before balancing
    assert obj.balance.tolist() == [0.5]


def test_student_key():
    assert Student(FKD(), 2).key == "fkd@2" and Student(KD(kd_weight=10), 1).key == "kd:kd_weight=10@1"
