"""The two-stage family (realdata/methods/two_stage.py): FT, FSP and AB train an initialisation stage first, which
resumes bit for bit and names a non-finite loss's step; FT's and AB's terms against their cores."""

from __future__ import annotations

import pytest
import torch
from interrupt import train_until_killed
from tiny_models import four_images

from realdata.checkpoints import read_checkpoint
from realdata.config import ConfigError, TrainConfig
from realdata.engine import Trainer, run_training
from realdata.methods import METHODS
from realdata.models import build


class _KilledInInit(Exception):
    pass


@pytest.mark.parametrize("method", ["ft", "fsp", "ab"])
def test_an_initialisation_stage_runs_first_and_resumes_bit_for_bit(tmp_path, data_dir, teachers, method,
                                                                    monkeypatch):
    """FT's paraphraser, FSP's student stages and AB's connectors and stages train for init_epochs first
    (init.jsonl, saved in last.pt each init epoch); a run stopped after init epoch 1, and one stopped after main
    epoch 1, resume to the weights and metrics of a run never stopped; FT's paraphraser stays frozen after it."""
    import json


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
