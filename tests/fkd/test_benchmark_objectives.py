"""CC, VID, NST, FT, AB and FSP against numbers worked out by hand (in the comments), and their invariants."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fkd import ab_loss, cc_loss, fsp_loss, fsp_matrices, ft_factor, ft_loss, nst_loss, vid_loss

D = torch.float64


def t(values, *shape) -> torch.Tensor:
    return torch.tensor(values, dtype=D).view(*shape)


def test_cc_against_a_hand_computed_value():
    # d = |e_s - 0| = rows (1, 0), (0, 1), (1, 1): <d0, d1> = 0, <d1, d2> = 1 -> mean 0.5
    assert cc_loss(t([1, 0, 0, 1, 1, 1], 3, 2), torch.zeros(3, 2, dtype=D)).item() == 0.5
    with pytest.raises(ValueError, match="B >= 2"):
        cc_loss(torch.zeros(1, 2), torch.zeros(1, 2))


def test_vid_against_hand_computed_values():
    # mu = t: 0.5 log(var), var = softplus(0) + 1e-5 = log 2 + 1e-5
    zero = torch.zeros(2, 3, 2, 2, dtype=D)
    assert vid_loss(zero, zero, torch.zeros(3, dtype=D)).item() == pytest.approx(0.5 * math.log(math.log(2) + 1e-5))
    # one channel, var = softplus(log(e - 1)) + 0 = 1: 0.5 (mu - t)^2 -> mean of 0.5 * (1, 4) = 1.25
    got = vid_loss(t([1, 2], 2, 1), torch.zeros(2, 1, dtype=D), t([math.log(math.e - 1)], 1), eps=0)
    assert got.item() == pytest.approx(1.25)
    with pytest.raises(ValueError, match="log scales"):
        vid_loss(zero, zero, torch.zeros(2, dtype=D))


def test_nst_against_a_hand_computed_value():
    # student channels (1, 0), (0, 1); teacher channels (1, 0), (1, 0) (already unit over the 2 positions):
    # mean k(t, t) = 1, mean k(s, s) = mean(1, 0, 0, 1) = 0.5, mean k(s, t) = mean(1, 1, 0, 0) = 0.5 -> 0.5
    s, tt = t([1, 0, 0, 1], 1, 2, 1, 2), t([1, 0, 1, 0], 1, 2, 1, 2)
    assert nst_loss(s, tt).item() == pytest.approx(0.5)
    assert nst_loss(tt, tt).item() == pytest.approx(0.0, abs=1e-12)
    big = tt.repeat_interleave(2, -1).repeat_interleave(2, -2)  # 2x4: pooled back to 1x2 before comparing
    assert nst_loss(s, big).item() == pytest.approx(0.5)


def test_ft_against_a_hand_computed_value():
    # student channels (1, 2), (3, 0): squares (1, 4), (9, 0), channel mean (5, 2), normalised (5, 2) / sqrt(29);
    # teacher (0, 0), (0, 1): mean of squares (0, 0.5), normalised (0, 1); mean |diff| = (5 + sqrt(29) - 2) / 2 sqrt 29
    s, tt = t([1, 2, 3, 0], 1, 2, 1, 2), t([0, 0, 0, 1], 1, 2, 1, 2)
    assert torch.allclose(ft_factor(s), t([5, 2], 1, 2) / math.sqrt(29))
    assert ft_loss(s, tt).item() == pytest.approx((3 + math.sqrt(29)) / (2 * math.sqrt(29)))
    assert ft_loss(s, s, p2=2).item() == 0


def test_ab_against_a_hand_computed_value():
    # one stage (weight 1), B = 1, margin 1: s 0.5 with t <= 0 -> (1.5)^2 = 2.25; s 0.2 with t > 0 -> (0.8)^2 = 0.64;
    # s -2 with t <= 0 and s 3 with t > 0 are past the margin -> 0; (2.25 + 0.64) x 3 / 1000
    s, tt = t([0.5, -2, 0.2, 3], 1, 1, 2, 2), t([-1, -1, 1, 1], 1, 1, 2, 2)
    assert ab_loss([s], [tt]).tolist() == pytest.approx([2.89 * 3 / 1000])
    # two stages: weights 1/2 and 1
    assert ab_loss([s, s], [tt, tt]).tolist() == pytest.approx([2.89 * 3 / 2000, 2.89 * 3 / 1000])
    with pytest.raises(ValueError, match="connect the student's map"):
        ab_loss([s], [tt.repeat(1, 2, 1, 1)])


def test_fsp_against_a_hand_computed_value():
    # student bottom (1, 2, 3, 4), top all 1: mean of products 2.5; teacher bottom all 1, top all 2: 2 -> (0.5)^2
    s = [t([1, 2, 3, 4], 1, 1, 2, 2), torch.ones(1, 1, 2, 2, dtype=D)]
    tt = [torch.ones(1, 1, 2, 2, dtype=D), 2 * torch.ones(1, 1, 2, 2, dtype=D)]
    assert fsp_matrices(s)[0].item() == 2.5 and fsp_loss(s, tt).tolist() == [0.25]
    bigger = [s[0].repeat_interleave(2, -1).repeat_interleave(2, -2), s[1]]  # 4x4 bottom pooled to 2x2
    assert fsp_matrices(bigger)[0].item() == 2.5
    with pytest.raises(ValueError, match="same channels"):
        fsp_loss([s[0], s[1].repeat(1, 2, 1, 1)], tt)


maps = st.integers(0, 10_000).map(lambda seed: torch.randn(3, 4, 4, 4, dtype=D,
                                                            generator=torch.Generator().manual_seed(seed)))


@settings(max_examples=25)
@given(maps, maps)
def test_zero_at_the_teacher_and_shapes(a, b):
    assert nst_loss(a, a).item() == pytest.approx(0, abs=1e-12) and nst_loss(a, b).item() >= -1e-12
    assert ft_loss(a, a).item() == 0 and fsp_loss([a, b], [a, b]).tolist() == [0]
    assert cc_loss(a.flatten(1), a.flatten(1)).item() == 0
    assert ab_loss([a, b], [a, b]).shape == (2,) and (ab_loss([a, b], [a, b]) >= 0).all()
    assert torch.allclose(nst_loss(a, b), nst_loss(b, a))  # symmetric
    assert torch.allclose(nst_loss(3 * a, b), nst_loss(a, b))  # each channel normalised: scale-free
