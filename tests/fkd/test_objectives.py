"""The baseline objectives against values worked out by hand, plus their invariants and the registry."""

import math

import pytest
import torch

from fkd import dkd_loss, kd_loss, pkt_loss, rkd_loss, sp_loss

I2 = torch.eye(2, dtype=torch.float64)
SAME = torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)


def test_kd_hand_value_and_temperature_squared():
    s = torch.zeros(2, 2, dtype=torch.float64)
    t = torch.tensor([[math.log(3), 0.0], [0.0, math.log(3)]], dtype=torch.float64)
    # p_t = (3/4, 1/4), p_s = (1/2, 1/2): KL = 3/4 ln(3/2) + 1/4 ln(1/2) per sample, averaged over the batch
    kl = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    assert kd_loss(s, t, temperature=1.0).item() == pytest.approx(kl)
    assert kd_loss(s, 2 * t, temperature=2.0).item() == pytest.approx(4 * kl)


def test_kd_is_batch_mean_not_element_mean():
    # float64: the batch and the per-sample calls sum in other orders (rounding ~1e-16, far below rel = 1e-9)
    s = torch.zeros(3, 10, dtype=torch.float64)
    t = torch.randn(3, 10, dtype=torch.float64)
    per_sample = [kd_loss(s[i : i + 1].repeat(2, 1), t[i : i + 1].repeat(2, 1)) for i in range(3)]
    assert kd_loss(s, t).item() == pytest.approx(sum(per_sample).item() / 3, rel=1e-9)


def test_kd_ensemble_is_mean_logits_and_zero_on_self():
    s, t1, t2 = torch.randn(3, 4, 5, dtype=torch.float64).unbind(0)  # the mean of a stack against (t1 + t2) / 2
    assert torch.allclose(kd_loss(s, [t1, t2]), kd_loss(s, (t1 + t2) / 2), rtol=1e-12, atol=0)
    assert kd_loss(t1, t1).abs().item() < 1e-6


def test_sp_hand_value():
    # G_s = I; G_t = all ones, rows normalised to 1/sqrt(2): sum sq = 2(1 - 1/sqrt2)^2 + 2 * 1/2 = 4 - 2 sqrt2
    assert sp_loss(I2, SAME).item() == pytest.approx((4 - 2 * math.sqrt(2)) / 4)


def test_pkt_hand_value():
    # student cos = I -> (I + 1)/2 rows normalised: (2/3, 1/3); teacher cos = 1 -> (1/2, 1/2);
    # mean over 4 entries of p_t log(p_t / p_s) = 1/4 [ln(3/4) + ln(3/2)] = ln(9/8) / 4
    assert pkt_loss(I2, SAME).item() == pytest.approx(math.log(9 / 8) / 4, abs=1e-6)


def test_rkd_hand_value():
    s = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    t = torch.tensor([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]], dtype=torch.float64)
    # distances over their mean: student (1, 1, sqrt2) / ((2 + sqrt2) / 3), teacher (1, 2, 1) / (4 / 3)
    a, b = 3 - 1.5 * math.sqrt(2), 3 * math.sqrt(2) - 3
    huber = [0.5 * x * x for x in (a - 0.75, a - 1.5, b - 0.75)]
    loss_d = 2 * sum(huber) / 9
    # angles: anchors 0, 1, 2 give cos 0 vs 1, 1/sqrt2 vs -1, 1/sqrt2 vs 1 (two entries each of 27);
    # Huber of those differences: 0.5, 1/sqrt2 + 1/2, 3/4 - sqrt2/2, summing to 1.75
    loss_a = 2 * 1.75 / 27
    assert rkd_loss(s, t).item() == pytest.approx(25 * loss_d + 50 * loss_a, rel=1e-9)
    assert rkd_loss(s, t, w_d=1, w_a=0).item() == pytest.approx(loss_d, rel=1e-9)


@pytest.mark.parametrize("fn", [sp_loss, pkt_loss, rkd_loss])
def test_relational_losses_vanish_on_identical_features_and_batch(fn):
    f = torch.randn(4, 6, 5, dtype=torch.float64)
    assert fn(f, f).abs().max().item() < 1e-7
    t = torch.randn(4, 6, 3, dtype=torch.float64)
    batched = fn(f, t)
    assert batched.shape == (4,)
    assert torch.allclose(batched[1], fn(f[1], t[1]))


def test_rkd_scale_invariant():
    f, t = torch.randn(2, 7, 4, dtype=torch.float64).unbind(0)
    assert rkd_loss(3.5 * f, t).item() == pytest.approx(rkd_loss(f, t).item())


def test_kd_bad_inputs():
    with pytest.raises(ValueError, match="temperature"):
        kd_loss(torch.zeros(2, 3), torch.zeros(2, 3), temperature=0)
    with pytest.raises(ValueError, match="same classes"):
        kd_loss(torch.zeros(2, 3), torch.zeros(2, 4))


def test_dkd_against_its_definition():
    """DKD written out independently: binary KL of (target, rest) plus the KL over the non-target classes, computed
    by dropping the target column (the code masks it with -1000: the same to float precision)."""
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)
    y = torch.tensor([0, 3, 1, 1, 2])
    temp, alpha, beta = 2.0, 1.0, 8.0
    want = 0.0
    for i in range(5):
        ps, pt = torch.softmax(s[i] / temp, 0), torch.softmax(t[i] / temp, 0)
        bs, bt = torch.stack([ps[y[i]], 1 - ps[y[i]]]), torch.stack([pt[y[i]], 1 - pt[y[i]]])
        tckd = (bt * (bt / bs).log()).sum()
        keep = torch.arange(4) != y[i]
        qs, qt = torch.softmax(s[i][keep] / temp, 0), torch.softmax(t[i][keep] / temp, 0)
        nckd = (qt * (qt / qs).log()).sum()
        want += (alpha * tckd + beta * nckd) * temp**2 / 5
    assert float(dkd_loss(s, t, y, alpha, beta, temp)) == pytest.approx(float(want), rel=1e-5)
    assert float(dkd_loss(s, [t, t], y)) == pytest.approx(float(dkd_loss(s, t, y)), rel=1e-6)  # ensemble: mean logits
    assert float(dkd_loss(t, t, y)) == pytest.approx(0.0, abs=1e-5)
    pop = dkd_loss(torch.stack([s, t]), torch.stack([t, t]), y)
    assert pop.shape == (2,) and float(pop[0]) == pytest.approx(float(dkd_loss(s, t, y)), rel=1e-5)
    with pytest.raises(ValueError, match="labels"):
        dkd_loss(s, t, y[:3])


def _dkd_reference(ls, lt, y, alpha, beta, temp):
    """DKD as the reference code computes it (mdistiller's dkd_loss: F.kl_div, whose target side takes 0 log 0 = 0)."""
    gt = torch.nn.functional.one_hot(y, ls.shape[1]).bool()
    ps, pt = (ls / temp).softmax(1), (lt / temp).softmax(1)

    def binary(p):
        return torch.cat([(p * gt).sum(1, keepdim=True), (p * ~gt).sum(1, keepdim=True)], 1)

    tckd = torch.nn.functional.kl_div(binary(ps).log(), binary(pt), reduction="sum") * temp**2 / ls.shape[0]
    log_qs = (ls / temp - 1000.0 * gt).log_softmax(1)
    qt = (lt / temp - 1000.0 * gt).softmax(1)
    nckd = torch.nn.functional.kl_div(log_qs, qt, reduction="sum") * temp**2 / ls.shape[0]
    return alpha * tckd + beta * nckd


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("gap", [10.0, 104.0, 120.0, 300.0, 500.0])
def test_dkd_takes_0_log_0_as_0_where_the_teachers_probability_underflows(dtype, gap):
    """A teacher sure of its class (or of another) far beyond float range: the binary target-vs-rest probability
    underflows to 0 and the term b_t log b_t must count as 0, as in the reference (was NaN in float32)."""
    g = torch.Generator().manual_seed(0)
    temp = 4.0
    s = torch.randn(6, 5, generator=g, dtype=dtype)
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    t = torch.randn(6, 5, generator=g, dtype=dtype)
    t[torch.arange(6), y] += gap * temp  # sure of the label
    t[5, 1] += 2 * gap * temp  # sure of another class
    got = dkd_loss(s, t, y, 1.0, 8.0, temp)
    want = _dkd_reference(s, t, y, 1.0, 8.0, temp)
    assert torch.isfinite(got) and float(got) == pytest.approx(float(want), rel=1e-6)
