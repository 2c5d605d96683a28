"""CRD: the loss against a computation written out here, the memory (negatives, update, constants, resume), and the
method end to end."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from tiny_images import image_data

from fkd import crd_loss
from realdata.methods import METHODS, ContrastMemory
from realdata.models import build


def test_crd_loss_against_the_nce_written_out():
    g = torch.Generator().manual_seed(0)
    b, k, d, n = 3, 4, 5, 50
    e_s, e_t = (F.normalize(torch.randn(b, d, generator=g), dim=1) for _ in range(2))
    r_s, r_t = (F.normalize(torch.randn(b, k + 1, d, generator=g), dim=2) for _ in range(2))
    z_s, z_t, temp = 3.0, 5.0, 0.5
    want = 0.0
    for i in range(b):
        for anchor, rows, z in ((e_s[i], r_t[i], z_s), (e_t[i], r_s[i], z_t)):
            p = [math.exp(float(rows[j] @ anchor) / temp) / z for j in range(k + 1)]
            noise = k / n
            want -= math.log(p[0] / (p[0] + noise + 1e-7)) / b
            want -= sum(math.log(noise / (q + noise + 1e-7)) for q in p[1:]) / b
    scores_s, scores_t = torch.bmm(r_t, e_s[:, :, None])[:, :, 0], torch.bmm(r_s, e_t[:, :, None])[:, :, 0]
    got = crd_loss(scores_s, scores_t, z_s, z_t, n_data=n, temperature=temp)
    assert float(got) == pytest.approx(want, rel=1e-5)
    with pytest.raises(ValueError, match=r"\(B, K\+1\)"):
        crd_loss(scores_s, scores_t[:, :2], z_s, z_t, n_data=n)


def test_a_matching_positive_scores_lower_than_noise():
    g = torch.Generator().manual_seed(1)
    negatives = torch.rand(8, 32, generator=g) * 0.2
    matched, unmatched = torch.cat([torch.ones(8, 1), negatives], 1), torch.cat([negatives[:, :1], negatives], 1)
    assert crd_loss(matched, matched, 1.0, 1.0, 100, 0.1) < crd_loss(unmatched, unmatched, 1.0, 1.0, 100, 0.1)


@pytest.mark.parametrize("negatives", [20, 200])  # without replacement (30+ others per class), then with
def test_negatives_come_from_other_classes_and_repeat_only_when_they_must(negatives):
    labels = torch.arange(60) % 3
    mem = ContrastMemory(labels, dim=8, negatives=negatives, seed=0)
    idx = torch.tensor([0, 4, 11])
    rows = mem.sample(idx)
    assert rows.shape == (3, negatives + 1) and torch.equal(rows[:, 0], idx)
    assert (labels[rows[:, 1:]] != labels[idx][:, None]).all()
    distinct = [len(set(r.tolist())) for r in rows[:, 1:]]
    assert (distinct == [negatives] * 3) == (negatives <= 40)
    assert torch.equal(mem.sample(idx), rows)  # the draw depends on (seed, step) only
    mem.step += 1
    assert not torch.equal(mem.sample(idx), rows)


def test_memory_update_constants_and_state():
    torch.manual_seed(0)
    labels = torch.arange(40) % 4
    mem = ContrastMemory(labels, dim=6, negatives=10, seed=3)
    assert mem.bank_s.abs().max() <= math.sqrt(3 / 6)
    idx = torch.tensor([1, 7])
    e_s, e_t = F.normalize(torch.randn(2, 6), dim=1), F.normalize(torch.randn(2, 6), dim=1)
    old_s, rows = mem.bank_s[idx].clone(), mem.sample(idx)
    scores = [torch.bmm(bank[rows], e[:, :, None])[:, :, 0] for bank, e in ((mem.bank_t, e_s), (mem.bank_s, e_t))]
    z = [float(torch.exp(sc / 0.07).mean() * 40) for sc in scores]  # the published code's bmm over gathered rows
    want = crd_loss(*scores, *z, n_data=40, temperature=0.07)
    loss = mem(e_s, e_t, idx, temperature=0.07, momentum=0.5)
    # Two float32 paths (one product with the whole memory, then gathered; a bmm over gathered rows): a score of
    # unit 6-vectors carries an absolute rounding error up to about 6 * 2^-24 = 4e-7, which exp(s / 0.07) turns into
    # a relative error up to 4e-7 / 0.07 = 6e-6 per term (1.2e-6 was seen on an Intel Xeon): rel = 1e-4 leaves room.
    assert mem.z == pytest.approx(z, rel=1e-4) and float(loss) == pytest.approx(float(want), rel=1e-4)
    assert mem.step == 1
    assert torch.allclose(mem.bank_s[idx], F.normalize(0.5 * old_s + 0.5 * e_s, dim=1))
    copy = ContrastMemory(labels, dim=6, negatives=10, seed=3)
    copy.load_state_dict(mem.state_dict())
    assert (copy.step, copy.z) == (mem.step, mem.z) and torch.equal(copy.bank_t, mem.bank_t)


def test_crd_method_trains_its_heads_and_refuses_bad_parameters():
    torch.manual_seed(0)
    data = image_data(n_train=64)
    crd = METHODS["crd"](build("resnet8", num_classes=10), [build("resnet8", num_classes=10)] * 2)
    crd.build_heads(data)
    assert set(crd.heads) == {"embed_s0", "embed_t0", "memory0", "embed_s1", "embed_t1", "memory1"}
    x = torch.randn(8, 3, 32, 32)
    _, losses = crd(x, data.train_y[:8], indices=torch.arange(8))
    losses["crd"].backward()
    assert crd.heads["embed_s0"].weight.grad.abs().sum() > 0 and crd.heads["memory0"].step == 1
    with pytest.raises(ValueError, match="indices"):
        crd(x, data.train_y[:8])
    with pytest.raises(ValueError, match="momentum must be < 1"):
        METHODS["crd"].resolve_params({"momentum": 1.0})
    with pytest.raises(ValueError, match="whole number"):
        METHODS["crd"].resolve_params({"negatives": 10.5})
