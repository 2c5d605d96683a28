"""The stage-map family (realdata/methods/stages.py): AT against its definition, FitNet's regressors, VID and NST
(with CC, relational) as the cores at the benchmark's weights."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from tiny_images import image_data
from tiny_models import four_images

from fkd import (
    at_loss,
)
from realdata.methods import METHODS
from realdata.models import build


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
