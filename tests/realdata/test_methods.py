"""realdata.methods, what every method shares: the registry, each method lowering its loss, frozen teachers, the
cores at the standard weights, ensembles, transfer images, channels, parameters, and the CLI end to end with a
bit-identical resume. Each family's own tests: test_logit_methods, test_relational_methods, test_stage_methods,
test_two_stage_methods, test_contrastive_methods."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from interrupt import train_until_killed
from tiny_images import image_data
from tiny_models import make, net

from fkd import (
    feature_regularizer,
    fkd_loss,
    kd_loss,
    kernel_distance,
    normalized_kernel,
    pkt_loss,
    rkd_loss,
    sp_loss,
    teacher_kernel,
)
from fkdapp.errors import ConfigError
from realdata.checkpoints import read_checkpoint
from realdata.cli import main
from realdata.config import TrainConfig
from realdata.engine import Trainer, run_training
from realdata.methods import METHODS, Distiller, Outputs, StepContext
from realdata.methods.plan import method_class, resolve


def config(method: str, **kw) -> TrainConfig:
    teachers = ("teacher.pt",) if method_class(method).NEEDS.teacher else ()
    return TrainConfig(model="resnet8", dataset="cifar10", method=method, teachers=teachers,
                       teacher_archs=("resnet8",) * len(teachers), batch_size=16, **kw)


def test_the_method_decides_the_strong_view():
    """A two-view method gets its strong view without a flag, because its needs say so; the old field is recorded as
    the method trains, whatever a config gave."""
    assert resolve(config("mlkd")).needs.views == 2 and resolve(config("kd")).needs.views == 1
    assert resolve(config("mlkd", strong_view=False)).config.strong_view is True
    assert resolve(config("kd", strong_view=True)).config.strong_view is False


def test_the_plan_adds_a_kd_term_where_a_kd_weight_has_no_term():
    """X+kd is the plan's decision: a kd_weight given to a method without a KD term of its own (``--kd-weight``, or a
    config's params) composes NAME+kd, recorded so; a method with its own kd_weight only takes the value."""
    plan = resolve(config("crd", params={"kd_weight": 2.0}))
    assert plan.method is method_class("crd+kd") and plan.config.method == "crd+kd"
    assert plan.params["kd_weight"] == 2.0 and plan.params["kd_temperature"] == 4.0 and plan.needs.logits
    assert resolve(plan.config).config == plan.config  # a recorded config resolves to itself
    kd = resolve(config("kd", params={"kd_weight": 2.0}))
    assert kd.config.method == "kd" and kd.params["kd_weight"] == 2.0
    with pytest.raises(ConfigError, match="already has a KD term"):
        resolve(config("kd+kd"))
    with pytest.raises(ConfigError, match="'ce' uses no teacher, so ce\\+kd has no KD term"):
        resolve(config("ce", params={"kd_weight": 1.0}))


def test_registry_and_standard_weights():
    assert list(METHODS) == ["ce", "kd", "dkd", "dist", "wttm", "ctkd", "mlkd", "fkd", "fkd-add", "sp", "pkt", "rkd",
                             "at", "fitnet", "crd", "cc", "vid", "nst", "reviewkd", "ofd", "ft", "ab", "fsp"]
    assert all(cls.NAME == name and issubclass(cls, Distiller) for name, cls in METHODS.items())
    assert not METHODS["ce"].NEEDS.teacher and all(METHODS[m].NEEDS.teacher for m in ("kd", "fkd", "sp", "pkt", "rkd"))
    assert METHODS["kd"].PARAMS == {"ce_weight": 0.1, "kd_weight": 0.9, "temperature": 4.0, "logit_stand": 0.0}
    assert METHODS["dist"].PARAMS == {"ce_weight": 1.0, "dist_weight": 2.0, "beta": 1.0, "gamma": 1.0,
                                      "temperature": 4.0, "logit_stand": 0.0}
    assert METHODS["reviewkd"].PARAMS == {"ce_weight": 1.0, "reviewkd_weight": 5.0, "warmup": 20.0}
    assert METHODS["mlkd"].PARAMS == {"ce_weight": 0.1, "kd_weight": 0.9, "temperature": 4.0,  # MLKD's cfg.KD
                                      "logit_stand": 0.0}
    assert METHODS["ofd"].PARAMS == {"ce_weight": 1.0, "ofd_weight": 1e-3}  # mdistiller's CE_WEIGHT, FEAT_WEIGHT
    assert method_class("crd+kd").PARAMS == {**METHODS["crd"].PARAMS, "kd_weight": 1.0, "kd_temperature": 4.0}
    assert method_class("crd+kd") is method_class("crd+kd") and "crd+kd" not in METHODS
    with pytest.raises(ConfigError, match="unknown method 'nothing\\+kd'"):
        method_class("nothing+kd")
    assert METHODS["sp"].PARAMS["sp_weight"] == 3000 and METHODS["pkt"].PARAMS["pkt_weight"] == 30000
    assert METHODS["rkd"].PARAMS == {"ce_weight": 1.0, "rkd_weight": 1.0, "w_d": 25.0, "w_a": 50.0}
    assert set(METHODS["fkd"].PARAMS) == {"ce_weight", "lambda", "feature_reg", "reg_power", "norm_head"}
    assert METHODS["fkd"].PARAMS["reg_power"] == 2 and METHODS["fkd"].PARAMS["norm_head"] == 0  # the method's form
    assert METHODS["crd"].PARAMS == {"ce_weight": 1.0, "crd_weight": 0.8, "feat_dim": 128, "negatives": 16384,
                                     "temperature": 0.07, "momentum": 0.5}
    # run configs written before the parameters were named for what they weigh still load
    assert METHODS["fkd"].resolve_params({"beta": 0.5})["feature_reg"] == 0.5
    assert METHODS["sp"].resolve_params({"beta": 7.0})["sp_weight"] == 7.0


@pytest.mark.parametrize("method", list(METHODS))
def test_each_method_lowers_its_loss(method):
    data = image_data(n_train=16)
    # CRD against 16 images: 16384 negatives would be all noise, and with every image in every batch momentum 0.5
    # makes the memory chase the embeddings (its loss rises after 4 steps here; on a real set a row moves once per
    # epoch)
    params = {"negatives": 8, "momentum": 0.9} if method == "crd" else {}
    trainer = Trainer(config(method, lr=0.02, params=params), make(method, **params), data)
    x, y = data.train_x, data.train_y
    totals = []
    for _ in range(8):
        row = trainer.train_step(x, y, None, torch.arange(x.shape[0]))  # the whole set: its indices
        assert all(torch.isfinite(v) for v in row.values())
        named = [k for k in row if k not in ("total", "correct")]
        assert row["total"].item() == pytest.approx(sum(row[k].item() for k in named), rel=1e-5)
        totals.append(row["total"].item())
    assert named[0] == "ce" and (method in ("ce", "fsp", "ab")) == (len(named) == 1)  # CE after their init stage
    assert 0 <= row["correct"].item() <= x.shape[0]
    assert sum(totals[-2:]) < sum(totals[:2]), totals


def test_teachers_frozen_and_kept_in_eval_mode():
    teachers = [net("resnet8", seed=1), net("resnet14", seed=2)]
    before = [{k: v.clone() for k, v in t.state_dict().items()} for t in teachers]
    distiller = make("fkd", teachers)
    distiller.train()
    assert distiller.student.training and not any(t.training for t in teachers)
    assert not any(p.requires_grad for t in teachers for p in t.parameters())
    data = image_data(n_train=16)
    trainer = Trainer(config("fkd"), distiller, data)
    student_before = {k: v.clone() for k, v in distiller.student.state_dict().items()}
    trainer.train_step(data.train_x, data.train_y)
    trainer.train_epoch()
    assert not any(t.training for t in teachers)
    for t, b in zip(teachers, before, strict=True):  # weights and BatchNorm running statistics untouched
        assert all(torch.equal(v, b[k]) for k, v in t.state_dict().items())
    assert not all(torch.equal(v, student_before[k]) for k, v in distiller.student.state_dict().items())
    assert all(id(p) not in {id(q) for t in teachers for q in t.parameters()}
               for g in trainer.optimizer.param_groups for p in g["params"])


def test_losses_are_the_cores_with_the_standard_weights():
    torch.manual_seed(0)
    s = Outputs(torch.randn(6, 10), torch.randn(6, 32).relu(), torch.randn(6, 8, 2, 2))
    ts = [Outputs(torch.randn(6, 10), torch.randn(6, 64).relu(), torch.randn(6, 16, 2, 2)) for _ in range(2)]
    ctx = StepContext(torch.randint(0, 10, (6,)))
    got = {m: METHODS[m].distill(make(m, [net(), net()]), s, ts, ctx) for m in ("kd", "fkd", "sp", "pkt", "rkd")}
    fkd = METHODS["fkd"].PARAMS
    assert torch.allclose(got["kd"]["kd"], 0.9 * kd_loss(s.logits, [t.logits for t in ts], 4.0))
    # an ensemble of teachers of any width: FKD matches the mean of their normalised kernels
    assert torch.allclose(got["fkd"]["fkd"], fkd["lambda"] * fkd_loss(s.pooled, [t.pooled for t in ts]))
    mean_kernel = (normalized_kernel(ts[0].pooled) + normalized_kernel(ts[1].pooled)) / 2
    assert torch.allclose(teacher_kernel([t.pooled for t in ts]), mean_kernel)
    assert torch.allclose(got["fkd"]["fkd"], fkd["lambda"] * kernel_distance(normalized_kernel(s.pooled), mean_kernel))
    assert torch.allclose(got["fkd"]["reg"], fkd["feature_reg"] * feature_regularizer(s.pooled))
    # feature baselines: the loss averaged over the teachers
    sp = torch.stack([sp_loss(s.fmap.flatten(1), t.fmap.flatten(1)) for t in ts]).mean()
    assert torch.allclose(got["sp"]["sp"], 3000 * sp)
    assert torch.allclose(got["pkt"]["pkt"], 30000 * torch.stack([pkt_loss(s.pooled, t.pooled) for t in ts]).mean())
    assert torch.allclose(got["rkd"]["rkd"], torch.stack([rkd_loss(s.pooled, t.pooled) for t in ts]).mean())


def test_ensemble_of_two_architectures_with_different_widths():
    teachers = [net("resnet8", seed=1), net("resnet8x4", seed=2)]  # pooled widths 64 and 256
    data = image_data(n_train=16)
    for method in ("kd", "fkd", "sp", "pkt", "rkd"):
        distiller = make(method, teachers)
        logits, losses = distiller(torch.randn(8, 3, 32, 32), data.train_y[:8])
        assert logits.shape == (8, 10) and all(torch.isfinite(v) for v in losses.values())
    x = torch.randn(8, 3, 32, 32)
    distiller = make("kd", teachers).eval()
    with torch.no_grad():
        logits, losses = distiller(x, data.train_y[:8])
        mean_logits = (teachers[0](x) + teachers[1](x)) / 2
    assert torch.allclose(losses["kd"], 0.9 * kd_loss(logits, mean_logits), atol=1e-5)


def test_transfer_images_feed_the_kernel_term_and_labels_the_ce():
    distiller = make("fkd", [net(seed=1)]).eval()
    x, t = torch.randn(8, 3, 32, 32), torch.randn(6, 3, 32, 32)
    y = torch.arange(8) % 10
    with torch.no_grad():
        logits, losses = distiller(x, y, transfer_images=t)
        s_logits, s_pooled, _ = distiller.student.forward_features(torch.cat([x, t]))
        _, t_pooled, _ = distiller.teachers[0].forward_features(t)
    assert logits.shape == (8, 10)
    assert torch.allclose(losses["ce"], F.cross_entropy(s_logits[:8], y), atol=1e-5)
    lam, beta = distiller.params["lambda"], distiller.params["feature_reg"]
    assert torch.allclose(losses["fkd"], lam * fkd_loss(s_pooled[8:], t_pooled), atol=1e-5)
    assert torch.allclose(losses["reg"], beta * feature_regularizer(s_pooled[8:]), atol=1e-5)


def test_three_channel_teacher_takes_one_channel_images():
    distiller = make("fkd", [net(seed=1, in_channels=3)])
    distiller.student = net(in_channels=1)
    logits, losses = distiller(torch.randn(4, 1, 28, 28), torch.arange(4))
    assert logits.shape == (4, 10) and torch.isfinite(losses["fkd"])


def test_params_are_checked():
    with pytest.raises(ValueError, match="has no parameter 'lambda'.*temperature=4"):
        METHODS["kd"].resolve_params({"lambda": 1.0})
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="finite number >= 0"):
            METHODS["fkd"].resolve_params({"beta": bad})
    with pytest.raises(ValueError, match="> 0"):
        METHODS["kd"].resolve_params({"temperature": 0.0})
    assert METHODS["fkd"].resolve_params({"lambda": 3})["lambda"] == 3.0
    with pytest.raises(ValueError, match="needs at least one teacher"):
        METHODS["fkd"](net(), [])
    with pytest.raises(ValueError, match="uses no teacher"):
        METHODS["ce"](net(), [net()])


@pytest.mark.parametrize("method", ["dkd", "at", "fitnet", "crd", "cc", "vid", "nst", "dist", "wttm", "ctkd",
                                    "reviewkd", "ofd", "mlkd --strong-view", "crd --kd-weight 1", "kd --optimizer dot",
                                    "dkd --param logit_stand=true", "fkd-add --param target=max"])
def test_cli_end_to_end_ensemble_and_bit_identical_resume(tmp_path, data_dir, teachers, method):
    method, *extra = method.split()
    common = ["--student", "resnet8", "--method", method, "--dataset", "cifar10", "--data-dir", str(data_dir),
              "--epochs", "2", "--batch-size", "16", "--device", "cpu", "--no-progress", *extra]
    tt = sum((["--teacher", t] for t in teachers), [])
    whole = tmp_path / "whole"
    r = CliRunner().invoke(main, ["distill", *tt, *common, "--out", str(whole)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    config = TrainConfig.load(whole / "config.json")
    method = config.method  # crd with --kd-weight runs, and is recorded, as crd+kd

    train_until_killed(config, tmp_path / "cut")
    run_training(config, tmp_path / "cut", resume=True)
    a, b = read_checkpoint(whole / "last.pt"), read_checkpoint(tmp_path / "cut" / "last.pt")
    for key in ("model", "heads"):
        assert a[key].keys() == b[key].keys()
        for k in a[key]:  # tensors, and CRD's memory's step count and constants
            assert torch.equal(a[key][k], b[key][k]) if torch.is_tensor(a[key][k]) else a[key][k] == b[key][k], k
    assert bool(a["heads"]) == (method in ("fitnet", "crd", "cc", "vid", "ctkd", "reviewkd", "ofd", "crd+kd"))
    rows = [__import__("json").loads(line) for line in (whole / "metrics.jsonl").read_text().splitlines()]
    assert len(rows[-1]["kernel_distance"]) == 2 and all(v >= 0 for v in rows[-1]["kernel_distance"])


def test_a_run_recorded_before_switches_were_typed_resumes_and_evaluates(tmp_path, data_dir, teachers):
    """A run whose config.json and checkpoints carry ``logit_stand`` and fkd-add's ``target`` as numbers (as runs did
    before the switches were typed) resumes, evaluates and reports with the typed code: its checkpoint identity is
    read in both forms, its recorded config resolved before it is compared."""
    import json

    from fkdapp.runtime import atomic_save, write_json
    from realdata.report import report

    for method, params in (("dkd", {"logit_stand": True}), ("fkd-add", {"target": "max"})):
        out = tmp_path / method
        config = resolve(TrainConfig(model="resnet8", dataset="cifar10", method=method, teachers=(teachers[0],),
                                     params=params, epochs=2, batch_size=16, data_dir=str(data_dir),
                                     device="cpu")).config
        train_until_killed(config, out)
        recorded = json.loads((out / "config.json").read_text())
        old = {**recorded, "params": {k: (1.0 if v in (True, "max") else 0.0 if v in (False, "mean") else v)
                                      for k, v in recorded["params"].items()}}
        write_json(out / "config.json", old)  # as the code before typed switches recorded it
        for name in ("last.pt", "best.pt"):
            state = read_checkpoint(out / name)
            atomic_save({**state, "run_identity": TrainConfig.from_dict(old).digest()}, out / name)
        r = CliRunner().invoke(main, ["evaluate", str(out / "best.pt"), "--data-dir", str(data_dir)])
        assert r.exit_code == 0, r.output
        r = CliRunner().invoke(main, ["resume", str(out), "--no-progress"])
        assert r.exit_code == 0 and "epoch 2/2" in r.output, r.output
    assert "logit_stand=true" in report([tmp_path / "dkd"]) and "target=max" in report([tmp_path / "fkd-add"])
