"""fkd.FKDLoss and fkd.FeatureTap: FKD in a user's own loop, on a user's own model."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from fkd import FeatureTap, FKDLoss, feature_regularizer, fkd_loss, layer_names


class Net(nn.Module):
    """A small CNN with nested blocks (names like ``body.1.act``) and a linear head."""

    def __init__(self, width: int = 8, classes: int = 5) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU()),
            nn.Sequential(nn.Conv2d(width, width, 3, padding=1)),
        )
        self.body[1].add_module("act", nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, classes)

    def forward(self, x):
        return self.fc(self.pool(self.body(x)).flatten(1))


def test_fkd_loss_module_is_the_weighted_core_for_one_teacher_or_several():
    g = torch.Generator().manual_seed(0)
    hs, ht, ht2 = torch.randn(8, 6, generator=g), torch.randn(8, 4, generator=g), torch.randn(8, 9, generator=g)
    terms = FKDLoss(weight=50, feature_reg=0.01)(hs, ht)
    assert torch.allclose(terms.kernel, 50 * fkd_loss(hs, ht)) and torch.allclose(terms.reg,
                                                                                  0.01 * feature_regularizer(hs))
    assert torch.allclose(terms.total, terms.kernel + terms.reg)
    both = FKDLoss(weight=50, feature_reg=0)(hs, [ht, ht2])
    assert torch.allclose(both.total, 50 * fkd_loss(hs, [ht, ht2])) and both.reg.item() == 0
    norm = FKDLoss(weight=0, feature_reg=1, reg_power=1)(hs, ht)
    assert torch.allclose(norm.total, hs.norm(dim=1).mean())
    with pytest.raises(ValueError, match=r"FKDLoss takes \(B, D\) features"):  # M students: fkd_loss, not the module
        FKDLoss()(torch.randn(3, 8, 6, generator=g), torch.randn(3, 8, 4, generator=g))
    for bad in ({"weight": -1}, {"feature_reg": float("nan")}, {"ensemble": "max"}, {"reg_power": 3}):
        with pytest.raises(ValueError, match="FKDLoss"):
            FKDLoss(**bad)


def test_fkd_loss_module_trains_the_student_only_under_autocast_and_compile():
    g = torch.Generator().manual_seed(1)
    hs = torch.randn(16, 6, generator=g, requires_grad=True)
    ht = torch.randn(16, 4, generator=g, requires_grad=True)
    loss = FKDLoss()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        terms = loss(hs.bfloat16(), ht.bfloat16())
    assert terms.total.dtype == torch.float32
    terms.total.backward()
    assert hs.grad is not None and ht.grad is None  # the teacher is a target
    eager = loss(hs, ht).total
    compiled = torch.compile(loss, backend="aot_eager")(hs, ht).total
    assert torch.allclose(eager, compiled, rtol=1e-5)


def test_feature_tap_reads_nested_layers_and_the_input_of_the_head():
    torch.manual_seed(0)
    net, x = Net(), torch.randn(4, 3, 6, 6)
    with FeatureTap(net, "body.1.act") as tap:
        out, h = tap(x)
        assert torch.equal(out, net(x)) and h.shape == (4, 8 * 6 * 6)
        assert torch.equal(h, net.body(x).flatten(1))
        with torch.no_grad():
            _, h2 = tap(x)
        assert torch.equal(h2, h) and not h2.requires_grad and h.requires_grad
    assert not net.body[1].act._forward_hooks  # removed on leaving the block
    with pytest.raises(RuntimeError, match="removed"):
        tap(x)
    _, penultimate = FeatureTap(net, "fc", input=True)(x)
    assert torch.equal(penultimate, net.pool(net.body(x)).flatten(1))
    assert "body.1.act" in layer_names(net)


def test_feature_tap_errors_name_the_closest_layers():
    net = Net()
    with pytest.raises(ValueError, match=r"Net has no layer .body.1.relu.; closest: .*body.1.act"):
        FeatureTap(net, "body.1.relu")
    with pytest.raises(ValueError, match="has no layer 'zzz'; it has: body, body.0"):
        FeatureTap(net, "zzz")


def test_feature_tap_on_a_ddp_model_with_or_without_its_prefix(tmp_path):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        net = Net()
        ddp = nn.parallel.DistributedDataParallel(net)
        x, y = torch.randn(4, 3, 6, 6), torch.tensor([0, 1, 2, 3])
        for name in ("body.0", "module.body.0"):
            tap = FeatureTap(ddp, name)
            logits, h = tap(x)
            (F.cross_entropy(logits, y) + FKDLoss()(h, torch.randn(4, 5)).total).backward()
            assert net.body[0][0].weight.grad is not None
            tap.remove()
    finally:
        dist.destroy_process_group()


def test_the_api_page_lists_exactly_fkd_all():
    import re
    from pathlib import Path

    import fkd

    page = (Path(__file__).parents[2] / "docs" / "api.md").read_text()
    assert sorted(re.findall(r"^### `(\w+)`$", page, flags=re.M)) == sorted(fkd.__all__)
    assert all(hasattr(fkd, name) for name in fkd.__all__)


def test_the_readme_snippet_runs_as_written():
    """The README's "FKD in your own loop" block, run whole: it trains (the loss falls) and takes pooled features."""
    from pathlib import Path

    text = (Path(__file__).parents[2] / "README.md").read_text()
    block = text.split("## FKD in your own loop", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    scope: dict = {}
    exec(compile(block, "README.md", "exec"), scope)
    assert scope["h_s"].shape == (32, 16) and scope["h_t"].shape == (32, 64) and torch.isfinite(scope["loss"])


@pytest.mark.parametrize(("shape_s", "shape_t", "says"), [
    ((8, 16, 4, 4), (8, 16, 4, 4), r"h_s must be features of shape \(B, D\) or \(M, B, D\), got shape \(8, 16, 4, 4\): "
                                   r"pool"),
    ((8, 32, 4, 4), (8, 64), r"got shape \(8, 32, 4, 4\)"),
    ((8, 5, 16), (8, 5, 16), r"h_t of shape \(8, 5, 16\) needs h_s of shape \(8, B, D\)|"),
    ((8, 16), (3, 8, 16), r"h_t of shape \(3, 8, 16\) needs h_s of shape \(3, B, D\), got \(8, 16\)"),
    ((2, 1, 5, 16), (5, 16), r"got shape \(2, 1, 5, 16\)"),
])
def test_features_that_are_not_pooled_are_a_valueerror(shape_s, shape_t, says):
    from fkd import FKDLoss, fkd_loss

    h_s, h_t = torch.randn(*shape_s), torch.randn(*shape_t)
    if shape_s == (8, 5, 16):  # (B, T, D) tokens: the function reads 8 students of 5 samples; the module refuses
        assert fkd_loss(h_s, h_t).shape == (8,)
        with pytest.raises(ValueError, match=r"FKDLoss takes \(B, D\) features, got h_student of shape \(8, 5, 16\): "
                                             r"pool \(B, T, D\) tokens"):
            FKDLoss()(h_s, h_t)
        return
    with pytest.raises(ValueError, match=says):
        fkd_loss(h_s, h_t)
    with pytest.raises(ValueError, match=says.replace("h_s", "h_student").replace("h_t", "h_teachers")):
        FKDLoss()(h_s, h_t)
