"""DKD, AT and FitNet on images: losses against numbers computed independently here, end to end from the CLI,
bit-identical resume (FitNet's regressors included), ensembles, transfer data, and the kernel-alignment monitor."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from interrupt import train_until_killed
from tiny_images import image_data

from fkd import at_loss
from fkdapp.runtime import atomic_save
from realdata.checkpoints import model_checkpoint, read_checkpoint
from realdata.cli import main
from realdata.config import ConfigError, TrainConfig
from realdata.data import ImageData
from realdata.engine import run_training
from realdata.methods import METHODS
from realdata.methods.plan import resolve
from realdata.models import build


@pytest.fixture(scope="module")
def teachers(tmp_path_factory):
    paths = []
    for seed, arch in ((1, "resnet8"), (2, "resnet14")):
        torch.manual_seed(seed)
        path = tmp_path_factory.mktemp("t") / f"{arch}.pt"
        atomic_save(model_checkpoint(build(arch, num_classes=10), arch, 10, 3, 32, "cifar10"), path)
        paths.append(str(path))
    return paths


def four_images() -> tuple[torch.Tensor, torch.Tensor, ImageData]:
    """A batch of 4 random (normalised) 32x32 images, their labels, and a data set to size heads from."""
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    return x, y, ImageData("cifar10", torch.zeros(4, 3, 32, 32, dtype=torch.uint8), y,
                           torch.zeros(2, 3, 32, 32, dtype=torch.uint8), y[:2], 10, (0.5,) * 3, (0.5,) * 3)


def test_at_loss_against_its_definition():
    g = torch.Generator().manual_seed(0)
    # float64: the loss pools and normalises in another order than the loop below (rounding ~1e-16 against rel 1e-9)
    s, t = torch.randn(3, 4, 8, 8, generator=g, dtype=torch.float64), torch.randn(3, 6, 4, 4, generator=g,
                                                                                  dtype=torch.float64)
    t_pooled = t  # the smaller map stays; the student's 8x8 map is average-pooled to 4x4
    s_pooled = s.reshape(3, 4, 4, 2, 4, 2).mean((3, 5))
    want = 0.0
    for i in range(3):
        a = s_pooled[i].pow(2).mean(0).flatten()
        b = t_pooled[i].pow(2).mean(0).flatten()
        want += ((a / a.norm() - b / b.norm()) ** 2).mean() / 3
    assert float(at_loss(s, t)) == pytest.approx(float(want), rel=1e-9)
    assert float(at_loss(s, s)) == 0.0


def test_fitnet_heads_and_at_stages():
    torch.manual_seed(0)
    fit = METHODS["fitnet"](build("resnet8", num_classes=10), [build("resnet32x4", num_classes=10)])
    fit.build_heads(image_data())
    conv = fit.heads["regressor0"][0]
    assert (conv.in_channels, conv.out_channels) == (32, 128)  # resnet8's middle stage -> resnet32x4's
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    _, losses = fit(x, y)
    s = fit.student.forward_stages(x)[2][1]
    with torch.no_grad():
        t = fit.teachers[0].forward_stages(x)[2][1]
    want = 100 * F.mse_loss(fit.heads["regressor0"](s), t)
    assert float(losses["hint"].detach()) == pytest.approx(float(want.detach()), rel=1e-5)
    at = METHODS["at"](build("resnet8", num_classes=10), [build("vgg8", num_classes=10)])
    _, losses = at(x, y)
    st, tt = at.student.forward_stages(x)[2], at.teachers[0].forward_stages(x)[2]
    want = 1000 * sum(at_loss(a, b) for a, b in zip(st, tt[-3:], strict=True))  # 3 student stages, vgg's last 3
    assert float(losses["at"].detach()) == pytest.approx(float(want.detach()), rel=1e-5)


def test_dkd_warms_up_and_refuses_transfer_data(data_dir, teachers):
    torch.manual_seed(0)
    d = METHODS["dkd"](build("resnet8", num_classes=10), [build("resnet8", num_classes=10)])
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    early = float(d(x, y, epoch=5)[1]["dkd"].detach())  # the epoch is an argument of the step, not an attribute
    assert float(d(x, y, epoch=20)[1]["dkd"].detach()) == pytest.approx(4 * early, rel=1e-5)  # 5/20 at epoch 5
    with pytest.raises(ConfigError, match="transfer-data"):
        resolve(TrainConfig(model="resnet8", dataset="cifar10", method="dkd", teachers=(teachers[0],),
                            transfer_data="cifar100"))


@pytest.mark.parametrize("method", ["dkd", "at", "fitnet", "crd", "cc", "vid", "nst", "dist", "wttm", "ctkd",
                                    "reviewkd", "ofd", "mlkd --strong-view", "crd+kd", "kd --optimizer dot",
                                    "dkd --param logit_stand=1", "fkd-add --param target=1"])
def test_cli_end_to_end_ensemble_and_bit_identical_resume(tmp_path, data_dir, teachers, method):
    method, *extra = method.split()
    common = ["--student", "resnet8", "--method", method, "--dataset", "cifar10", "--data-dir", str(data_dir),
              "--epochs", "2", "--batch-size", "16", "--device", "cpu", "--no-progress", *extra]
    tt = sum((["--teacher", t] for t in teachers), [])
    whole = tmp_path / "whole"
    r = CliRunner().invoke(main, ["distill", *tt, *common, "--out", str(whole)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    config = TrainConfig.load(whole / "config.json")

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


def test_cc_vid_nst_are_the_cores_with_the_benchmarks_weights():
    from fkd import cc_loss, nst_loss, pool_pair, vid_loss

    x, y, data = four_images()
    torch.manual_seed(0)
    cc = METHODS["cc"](build("resnet8", num_classes=10), [build("vgg8", num_classes=10)])
    cc.build_heads(data)
    _, losses = cc(x, y)
    hs, ht = cc.student.forward_features(x)[1], cc.teachers[0].forward_features(x)[1]
    want = 0.02 * cc_loss(cc.heads["embed_s"](hs), cc.heads["embed_t0"](ht))
    assert float(losses["cc"].detach()) == pytest.approx(float(want.detach()), rel=1e-5)
    assert cc.heads["embed_s"].out_features == 128
    vid = METHODS["vid"](build("resnet8", num_classes=10), [build("resnet20", num_classes=10)])
    vid.build_heads(data)
    _, losses = vid(x, y)
    st, tt = vid.student.forward_stages(x)[2], vid.teachers[0].forward_stages(x)[2]
    want = 0
    for j, (a, b) in enumerate(zip(st, tt, strict=True)):
        head = vid.heads[f"vid0_{j}"]
        a, b = pool_pair(a, b)
        want = want + vid_loss(head.regressor(a), b, head.log_scale)
    assert float(losses["vid"].detach()) == pytest.approx(float(want.detach()), rel=1e-5)
    assert torch.allclose(F.softplus(vid.heads["vid0_0"].log_scale) + 1e-5, torch.full((16,), 5.0))  # init var 5
    nst = METHODS["nst"](build("resnet8", num_classes=10), [build("resnet20", num_classes=10)])
    _, losses = nst(x, y)
    st, tt = nst.student.forward_stages(x)[2], nst.teachers[0].forward_stages(x)[2]
    want = 50 * sum(nst_loss(a, b) for a, b in zip(st, tt, strict=True))
    assert float(losses["nst"].detach()) == pytest.approx(float(want.detach()), rel=1e-5)


class _KilledInInit(Exception):
    pass


@pytest.mark.parametrize("method", ["ft", "fsp", "ab"])
def test_an_initialisation_stage_runs_first_and_resumes_bit_for_bit(tmp_path, data_dir, teachers, method,
                                                                    monkeypatch):
    """FT's paraphraser, FSP's student stages and AB's connectors and stages train for init_epochs first
    (init.jsonl, saved in last.pt each init epoch); a run stopped after init epoch 1, and one stopped after main
    epoch 1, resume to the weights and metrics of a run never stopped; FT's paraphraser stays frozen after it."""
    import json

    from realdata.engine import Trainer

    teacher = [teachers[0]] if method == "fsp" else teachers  # fsp: equal stage channels (resnet8 and resnet8)
    config = TrainConfig(model="resnet8", dataset="cifar10", method=method, teachers=tuple(teacher), epochs=2,
                         batch_size=16, device="cpu", data_dir=str(data_dir), params={"init_epochs": 2})
    run_training(config, tmp_path / "whole")
    init_rows = [json.loads(x) for x in (tmp_path / "whole" / "init.jsonl").read_text().splitlines()]
    assert [r["init_epoch"] for r in init_rows] == [1, 2] and all(r["init_loss"] > 0 for r in init_rows)
    original = Trainer.init_epoch

    def stop_after_first(self):
        if self.init_done == 1:
            raise _KilledInInit
        return original(self)

    monkeypatch.setattr(Trainer, "init_epoch", stop_after_first)
    with pytest.raises(_KilledInInit):
        run_training(config, tmp_path / "cut")
    mid_init = read_checkpoint(tmp_path / "cut" / "last.pt")
    assert mid_init["init_done"] == 1
    monkeypatch.setattr(Trainer, "init_epoch", original)
    run_training(config, tmp_path / "cut", resume=True)
    train_until_killed(config, tmp_path / "cut2")  # stopped after main epoch 1
    after_main_1 = read_checkpoint(tmp_path / "cut2" / "last.pt")
    run_training(config, tmp_path / "cut2", resume=True)
    a = read_checkpoint(tmp_path / "whole" / "last.pt")
    for other in ("cut", "cut2"):
        b = read_checkpoint(tmp_path / other / "last.pt")
        for key in ("model", "heads"):
            assert a[key].keys() == b[key].keys() and all(torch.equal(a[key][k], b[key][k]) for k in a[key]), other
        rows = [{k: v for k, v in json.loads(x).items() if "seconds" not in k and k != "images_per_s"}
                for x in (tmp_path / other / "metrics.jsonl").read_text().splitlines()]
        assert rows == [{k: v for k, v in json.loads(x).items() if "seconds" not in k and k != "images_per_s"}
                        for x in (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()]
    if method == "ft":
        paraphraser = {k: v for k, v in a["heads"].items() if k.startswith("paraphraser")}
        assert paraphraser and all(torch.equal(v, after_main_1["heads"][k]) for k, v in paraphraser.items())  # frozen
        assert not all(torch.equal(v, mid_init["heads"][k]) for k, v in paraphraser.items())  # trained in init epoch 2
        assert set(json.loads((tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()[0])["losses"]) == {
            "ce", "ft"}
    else:
        assert set(json.loads((tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()[0])["losses"]) == {"ce"}


def test_ft_is_the_core_with_the_benchmarks_weight_and_fsp_refuses_unequal_channels(data_dir, teachers):
    from fkd import ft_loss

    x, y, data = four_images()
    torch.manual_seed(0)
    ft = METHODS["ft"](build("resnet8", num_classes=10), [build("resnet20", num_classes=10)])
    ft.build_heads(data)
    ft.eval()
    _, losses = ft(x, y)
    fs, ftt = ft.student.forward_features(x)[2], ft.teachers[0].forward_features(x)[2]
    want = 200 * ft_loss(ft.heads["translator0"](fs), ft.heads["paraphraser0"].encoder(ftt))
    assert float(losses["ft"].detach()) == pytest.approx(float(want.detach()), rel=1e-5)
    assert ft.heads["paraphraser0"].encoder[2].out_channels == 32  # the factor: half the teacher's 64 channels
    fsp = METHODS["fsp"](build("resnet8", num_classes=10), [build("vgg8", num_classes=10)])
    with pytest.raises(ConfigError, match="fsp needs the teacher's stage channels to equal the student's"):
        fsp.build_heads(data)


def test_ab_connects_pre_activation_maps_and_refuses_models_without_them():
    from fkd import ab_loss

    x, y, data = four_images()
    torch.manual_seed(0)
    ab = METHODS["ab"](build("resnet8", num_classes=10), [build("resnet32x4", num_classes=10)])
    ab.build_heads(data)
    assert [type(ab.heads[f"connector0_{j}"][0]).__name__ for j in range(3)] == ["Conv2d"] * 3  # 16 -> 64 channels...
    s, t = ab.student.preact_stages(x), ab.teachers[0].preact_stages(x)
    want = ab_loss([ab.heads[f"connector0_{j}"](m) for j, m in enumerate(s)], t).sum()
    assert float(ab.init_loss(x).detach()) == pytest.approx(float(want.detach()), rel=1e-5)
    same = METHODS["ab"](build("resnet8", num_classes=10), [build("resnet20", num_classes=10)])
    same.build_heads(data)
    assert all(isinstance(same.heads[f"connector0_{j}"], torch.nn.Identity) for j in range(3))  # shapes match
    with pytest.raises(ConfigError, match="'ab' needs pre-activation maps of the teacher, which ShuffleV1 does not"):
        METHODS["ab"](build("resnet8", num_classes=10), [build("ShuffleV1", num_classes=10)])  # checked when built


def test_a_non_finite_initialisation_loss_names_its_step(tmp_path, data_dir, teachers, monkeypatch):
    """The init stage checks its losses as the main stage does: the first non-finite one, with its epoch and step."""
    from realdata.engine import NonFiniteLoss
    from realdata.methods import FSP

    original, calls = FSP.init_loss, []

    def nan_at_third(self, images):
        calls.append(1)
        loss = original(self, images)
        return loss * float("nan") if len(calls) == 3 else loss

    monkeypatch.setattr(FSP, "init_loss", nan_at_third)
    config = TrainConfig(model="resnet8", dataset="cifar10", method="fsp", teachers=(teachers[0],), epochs=1,
                         batch_size=8, device="cpu", data_dir=str(data_dir), params={"init_epochs": 1})  # 5 steps
    with pytest.raises(NonFiniteLoss, match="initialisation loss is nan at init epoch 1, step 3"):
        run_training(config, tmp_path / "run")
