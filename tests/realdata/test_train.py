"""realdata.engine, runs, checkpoints and config: the loop, run folders, checkpoints, resume, NaN stop."""

from __future__ import annotations

import json

import pytest
import torch
from interrupt import sigint_after_steps, train_until_killed

from fkdapp.runtime import atomic_save
from realdata.checkpoints import CheckpointError, RunError, load_model, model_checkpoint, read_checkpoint
from realdata.config import ConfigError, TrainConfig, scale_milestones
from realdata.data import load_dataset, normalize
from realdata.engine import NonFiniteLoss, run_training
from realdata.evaluate import evaluate_checkpoint
from realdata.methods import CE, METHODS
from realdata.methods.plan import resolve
from realdata.models import build


def save_teacher(path, arch="resnet8", seed=1, record_arch=True):
    torch.manual_seed(seed)
    model = build(arch, num_classes=10)
    ckpt = model_checkpoint(model, arch, 10, 3, 32, "cifar10") if record_arch else {"model": model.state_dict()}
    atomic_save(ckpt, path)
    return path


def cfg(data_dir, **kw) -> TrainConfig:
    base = {"model": "resnet8", "dataset": "cifar10", "epochs": 2, "batch_size": 16, "data_dir": str(data_dir),
            "device": "cpu"}
    return TrainConfig(**{**base, **kw})


def weights(path):
    return read_checkpoint(path)["model"]


# ------------------------------------------------------------------------------------------------- config


def test_milestones_scale_with_epochs():
    assert scale_milestones(240) == (150, 180, 210)
    assert scale_milestones(24) == (15, 18, 21)
    assert scale_milestones(3) == (2,)
    assert scale_milestones(2) == (1,)
    assert scale_milestones(1) == ()


def test_config_defaults_validation_and_json(tmp_path):
    assert TrainConfig(model="resnet8", dataset="Fashion-MNIST").dataset == "fashion_mnist"
    c = TrainConfig(model="resnet8x4", dataset="cifar100")
    assert (c.lr, c.momentum, c.weight_decay, c.batch_size, c.epochs) == (0.05, 0.9, 5e-4, 64, 240)
    assert c.milestones == (150, 180, 210) and c.lr_decay == 0.1
    assert TrainConfig(model="ShuffleV1", dataset="cifar100").lr == 0.01
    d = TrainConfig(model="resnet8", dataset="cifar10", method="kd", teachers=("t.pt",), epochs=24, seed=3)
    assert d.params == {} and resolve(d).params == {"ce_weight": 0.1, "kd_weight": 0.9, "temperature": 4.0,
                                                    "logit_stand": 0.0}
    assert d.milestones == (15, 18, 21)
    d.save(tmp_path / "c.json")
    assert TrainConfig.load(tmp_path / "c.json") == d
    bad = [({"epochs": 0}, "epochs must be an integer >= 1"), ({"model": "resnet9"}, "unknown model 'resnet9'"),
           ({"dataset": "mnist"}, "unknown data set"), ({"method": "vvd"}, "unknown method 'vvd'"),
           ({"lr": -0.1}, "lr must be"), ({"lr": float("nan")}, "lr must be"), ({"momentum": 1.0}, "momentum"),
           ({"method": "fkd"}, "needs at least one --teacher"), ({"milestones": (5, 3)}, "milestones must be"),
           ({"batch_size": 1}, "batch_size"), ({"params": {"lambda": 1.0}}, "has no parameter 'lambda'")]
    for kw, match in bad:
        with pytest.raises(ConfigError, match=match):
            resolve(TrainConfig(**{"model": "resnet8", "dataset": "cifar10", **kw}))


# ---------------------------------------------------------------------------------------------------- runs


def test_run_folder_files(tmp_path, data_dir):
    teacher = save_teacher(tmp_path / "t.pt")
    out = tmp_path / "run"
    summary = run_training(cfg(data_dir, method="fkd", teachers=(str(teacher),)), out)
    config = json.loads((out / "config.json").read_text())
    assert config["teachers"] == [str(teacher)] and config["teacher_archs"] == ["resnet8"]
    assert config["seed"] == 0 and config["method"] == "fkd"
    assert set(config["params"]) == {"ce_weight", "lambda", "feature_reg", "reg_power", "norm_head"}
    env = json.loads((out / "environment.json").read_text())
    assert {"python", "torch", "numpy", "device_name", "hostname"} <= set(env)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert {"lr", "loss", "losses", "train_acc", "test_acc", "best_acc", "images_per_s", "seconds"} <= set(rows[0])
    assert set(rows[0]["losses"]) == {"ce", "fkd", "reg"}
    assert summary["last_acc"] == rows[-1]["test_acc"]
    last, best = read_checkpoint(out / "last.pt"), read_checkpoint(out / "best.pt")
    assert last["arch"] == "resnet8" and last["num_classes"] == 10 and last["in_channels"] == 3 and last["epoch"] == 2
    assert {"optimizer", "scheduler", "rng", "best_acc"} <= set(last) and last["best_acc"] == summary["best_acc"]
    assert best["test_acc"] == summary["best_acc"]
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    # the checkpoint loads without naming its architecture, and evaluates to the recorded accuracy
    assert load_model(out / "last.pt").arch == "resnet8"
    result = evaluate_checkpoint(out / "last.pt", data_dir=str(data_dir), device="cpu")
    assert result["dataset"] == "cifar10" and result["test_acc"] == pytest.approx(rows[-1]["test_acc"])


def test_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path, data_dir):
    teacher = save_teacher(tmp_path / "t.pt")
    config = cfg(data_dir, method="fkd", teachers=(str(teacher),), epochs=3, transfer_data="fashion_mnist")
    run_training(config, tmp_path / "full")

    train_until_killed(config, tmp_path / "cut")
    assert read_checkpoint(tmp_path / "cut" / "last.pt")["epoch"] == 1
    with pytest.raises(RunError, match="already holds this run; continue it with: realdata resume"):
        run_training(config, tmp_path / "cut")
    run_training(config, tmp_path / "cut", resume=True)
    full, cut = weights(tmp_path / "full" / "last.pt"), weights(tmp_path / "cut" / "last.pt")
    assert all(torch.equal(full[k], cut[k]) for k in full)
    rows = [[json.loads(line) for line in (tmp_path / d / "metrics.jsonl").read_text().splitlines()]
            for d in ("full", "cut")]
    assert [(r["epoch"], r["loss"], r["test_acc"]) for r in rows[0]] == [(r["epoch"], r["loss"], r["test_acc"])
                                                                        for r in rows[1]]
    env = json.loads((tmp_path / "cut" / "environment.json").read_text())
    assert env["resumed"][0]["after_epoch"] == 1


def test_a_different_run_in_the_same_folder_is_refused(tmp_path, data_dir):
    run_training(cfg(data_dir, epochs=1), tmp_path / "run")
    with pytest.raises(RunError, match="holds a different run.*seed 0 there, 1 here"):
        run_training(cfg(data_dir, epochs=1, seed=1), tmp_path / "run", resume=True)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    with pytest.raises(RunError, match="holds no run"):
        run_training(cfg(data_dir, epochs=1), tmp_path / "other")


def test_nan_loss_stops_with_where_and_keeps_the_last_good_checkpoint(tmp_path, data_dir, monkeypatch):
    class NaNAtEpoch2Step2(CE):
        NAME = "nan_test"
        calls = 0

        def forward(self, images, labels, *args):
            logits, losses = super().forward(images, labels)
            type(self).calls += 1
            if type(self).calls == 2 + 2:  # 2 steps per epoch (40 images, batch 16): epoch 2, step 2
                losses["ce"] = losses["ce"] * float("nan")
            return logits, losses

    monkeypatch.setitem(METHODS, "nan_test", NaNAtEpoch2Step2)
    out = tmp_path / "run"
    with pytest.raises(NonFiniteLoss, match=r"epoch 2, step 2/2: the 'ce' loss is nan; .*last good checkpoint: .*"
                                            r"last.pt \(epoch 1\)"):
        run_training(cfg(data_dir, method="nan_test", epochs=3), out)
    assert read_checkpoint(out / "last.pt")["epoch"] == 1
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1


def test_checkpoint_errors_are_one_line(tmp_path):
    ours = save_teacher(tmp_path / "ours.pt")
    crd = save_teacher(tmp_path / "crd.pt", record_arch=False)
    with pytest.raises(CheckpointError, match=r"ours.pt holds a 'resnet8', not the resnet14 asked for; give a "
                                              r"resnet14 checkpoint, or drop the arch"):
        load_model(ours, "resnet14")
    with pytest.raises(CheckpointError, match="does not record its architecture: add --teacher-arch"):
        load_model(crd)
    with pytest.raises(CheckpointError, match=r"crd.pt does not fit arch 'resnet14': found \d+ missing entries"):
        load_model(crd, "resnet14")
    with pytest.raises(CheckpointError, match=r"entries of another shape \(e.g. conv1.weight"):
        load_model(crd, "resnet8x4")
    loaded = load_model(crd, "resnet8")  # a published {'model': state_dict} file: classes read off the head
    assert (loaded.arch, loaded.num_classes, loaded.in_channels) == ("resnet8", 10, 3)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    for path, match in ((tmp_path / "junk.pt", "cannot read checkpoint"), (tmp_path / "none.pt", "not found")):
        with pytest.raises(CheckpointError, match=match) as err:
            load_model(path)
        assert "\n" not in str(err.value)


def test_an_ensemble_evaluates_with_its_mean_logits(tmp_path, data_dir):
    paths = [save_teacher(tmp_path / "a.pt", seed=1), save_teacher(tmp_path / "b.pt", "resnet14", seed=2)]
    got = evaluate_checkpoint(paths, data_dir=str(data_dir), device="cpu", batch_size=7)
    data = load_dataset("cifar10", str(data_dir))
    models = [load_model(p).model.eval() for p in paths]
    x = normalize(data.test_x, data.mean, data.std)
    with torch.no_grad():
        want = 100.0 * float(((models[0](x) + models[1](x)) / 2).argmax(1).eq(data.test_y).float().mean())
    assert got["test_acc"] == pytest.approx(want) and got["arch"] == "resnet8+resnet14"
    other = tmp_path / "c.pt"
    atomic_save(model_checkpoint(build("resnet8", num_classes=100), "resnet8", 100, 3, 32, "cifar100"), other)
    with pytest.raises(RunError, match="cannot join an ensemble"):
        evaluate_checkpoint([paths[0], other], data_dir=str(data_dir), device="cpu")


@pytest.mark.parametrize("method,transfer", [("ce", None), ("fkd", "fashion_mnist"), ("crd", None)])
def test_a_stop_mid_epoch_keeps_the_steps_and_resumes_to_the_same_numbers(tmp_path, data_dir, monkeypatch, method,
                                                                           transfer):
    """SIGINT in the middle of epoch 2 (40 images, batch 8: 5 steps an epoch; stopped after step 3): last.pt holds
    epoch 1 and 3 steps of epoch 2, and the resumed run ends with the uninterrupted run's weights and metrics."""
    from realdata.engine import Interrupted

    teachers = () if method == "ce" else (str(save_teacher(tmp_path / "t.pt")),)
    config = cfg(data_dir, method=method, teachers=teachers, epochs=3, batch_size=8, transfer_data=transfer)
    run_training(config, tmp_path / "whole")
    sigint_after_steps(monkeypatch, 8)
    with pytest.raises(Interrupted, match="epoch 2, step 3/5.*steps 1-3 of epoch 2.*realdata resume"):
        run_training(config, tmp_path / "cut")
    monkeypatch.undo()
    last = read_checkpoint(tmp_path / "cut" / "last.pt")
    assert last["epoch"] == 1 and last["partial"]["step"] == 3
    run_training(config, tmp_path / "cut", resume=True)
    for name in ("model", "heads"):
        a, b = (read_checkpoint(tmp_path / run / "last.pt")[name] for run in ("whole", "cut"))
        assert all(torch.equal(a[k], b[k]) if torch.is_tensor(a[k]) else a[k] == b[k] for k in a)
    rows = [[json.loads(line) for line in (tmp_path / r / "metrics.jsonl").read_text().splitlines()]
            for r in ("whole", "cut")]
    keys = ("epoch", "loss", "losses", "train_acc", "test_acc")
    assert [{k: r[k] for k in keys} for r in rows[0]] == [{k: r[k] for k in keys} for r in rows[1]]


def test_small_runs_evaluate_every_n_epochs_on_a_seeded_subset_and_the_last_epoch_whole(tmp_path, data_dir):
    """--eval-every and --test-size: rows say what they read; the last epoch reads the whole test set; by default a
    run with fewer training than test images reads as many test images as it trains on before its last epoch."""
    run_training(cfg(data_dir, epochs=3, eval_every=2, test_size=8), tmp_path / "a")
    rows = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert "test_acc" not in rows[0] and "test_acc_subset" not in rows[0]
    assert rows[1]["test_images"] == 8 and "test_acc" not in rows[1] and "test_acc_subset" in rows[1]
    assert "test_acc" in rows[2] and "test_images" not in rows[2]
    assert read_checkpoint(tmp_path / "a" / "last.pt")["epoch"] == 3
    run_training(cfg(data_dir, epochs=2, train_size=10, batch_size=4), tmp_path / "b")
    rows = [json.loads(line) for line in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["test_images"] == 10 and "test_acc" in rows[1]
    with pytest.raises(ConfigError, match="eval_every must be an integer >= 1"):
        cfg(data_dir, eval_every=0)
