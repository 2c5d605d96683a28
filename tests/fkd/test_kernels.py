"""Property tests pinning down the kernel maths of fkd.kernels / fkd_loss."""

import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from fkd import (
    factored_kernel_distance,
    feature_kernel,
    feature_regularizer,
    fkd_loss,
    kernel_distance,
    normalized_kernel,
    teacher_factor,
    teacher_kernel,
)

finite = st.floats(-10, 10, allow_nan=False, width=64)


@st.composite
def features(draw, min_b=2, max_b=7, max_d=6, d=None):
    b = draw(st.integers(min_b, max_b))
    d = d or draw(st.integers(1, max_d))
    x = draw(arrays(np.float64, (b, d), elements=finite))
    return torch.from_numpy(x)


def well_conditioned(h: torch.Tensor) -> bool:
    return bool((h.norm(dim=-1) > 1e-2).all())


def orthogonal(d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))


@given(features())
def test_rho_symmetric_unit_diagonal_bounded(h):
    rho = normalized_kernel(h)
    assert torch.allclose(rho, rho.T, atol=1e-12)
    assert torch.equal(torch.diagonal(rho), torch.ones(h.shape[0], dtype=h.dtype))
    assert rho.abs().max() <= 1 + 1e-12


@given(features(), st.lists(st.floats(1e-2, 1e2), min_size=7, max_size=7))
def test_rho_invariant_to_per_sample_scaling(h, scales):
    c = torch.tensor(scales[: h.shape[0]], dtype=h.dtype)[:, None]
    assume(well_conditioned(h) and well_conditioned(h * c))  # eps = 1e-6 is negligible against norms >= 1e-2
    assert torch.allclose(normalized_kernel(h * c), normalized_kernel(h), atol=1e-6)


@given(features(), st.integers(0, 2**31 - 1))
def test_rho_invariant_to_rotation(h, seed):
    q = orthogonal(h.shape[1], seed)
    assert torch.allclose(normalized_kernel(h @ q), normalized_kernel(h), atol=1e-9)


def test_rho_is_the_cosine():
    h = torch.tensor([[3.0, 4.0], [1.0, 0.0], [0.0, -2.0]], dtype=torch.float64)
    rho = normalized_kernel(h)
    assert rho[0, 1].item() == pytest.approx(0.6)
    assert rho[0, 2].item() == pytest.approx(-0.8)
    assert rho[1, 2].item() == pytest.approx(0.0)


@given(features(d=3), features(d=4))
def test_distance_nonnegative_and_symmetric(a, b):
    n = min(a.shape[0], b.shape[0])
    ka, kb = normalized_kernel(a[:n]), normalized_kernel(b[:n])
    d = kernel_distance(ka, kb)
    assert d >= 0
    assert torch.allclose(d, kernel_distance(kb, ka), atol=0, rtol=0)


@given(features(), st.randoms(use_true_random=False))
def test_distance_zero_iff_off_diagonal_agrees(h, rnd):
    k = feature_kernel(h)
    k2 = k.clone()
    k2.diagonal().add_(torch.rand(k.shape[0], dtype=k.dtype) + 1)  # the diagonal is ignored
    assert kernel_distance(k, k2).item() == 0.0
    i, j = rnd.sample(range(k.shape[0]), 2)
    k2[i, j] += 0.5
    assert kernel_distance(k, k2).item() == pytest.approx(0.25 / (k.shape[0] * (k.shape[0] - 1)))


@given(features(d=3), features(d=5), st.randoms(use_true_random=False))
def test_distance_permutation_invariant(a, b, rnd):
    n = min(a.shape[0], b.shape[0])
    a, b = a[:n], b[:n]
    perm = torch.tensor(rnd.sample(range(n), n))
    assert torch.allclose(fkd_loss(a, b), fkd_loss(a[perm], b[perm]), atol=1e-12)


def test_population_call_equals_separate_calls():
    # a batched product and a single one may sum in another order: compared in float64, where that rounding (about
    # 1e-16 relative on values of order 1) is far below the tolerance on any CPU
    g = torch.Generator().manual_seed(0)
    hs = torch.randn(5, 9, 7, generator=g, dtype=torch.float64)
    ht = torch.randn(5, 9, 3, generator=g, dtype=torch.float64)
    batched = fkd_loss(hs, ht)
    assert batched.shape == (5,)
    for m in range(5):
        assert torch.allclose(batched[m], fkd_loss(hs[m], ht[m]), rtol=0, atol=1e-12)
    # one shared teacher broadcasts against a population
    shared = fkd_loss(hs, ht[0])
    assert torch.allclose(shared[2], fkd_loss(hs[2], ht[0]), rtol=0, atol=1e-12)
    assert torch.allclose(feature_regularizer(hs)[3], feature_regularizer(hs[3]), rtol=1e-12)


@given(features(d=4), features(d=4))
def test_float32_agrees_with_float64(a, b):
    n = min(a.shape[0], b.shape[0])
    a, b = a[:n], b[:n]
    assume(well_conditioned(a) and well_conditioned(b))
    l64 = fkd_loss(a, b)
    l32 = fkd_loss(a.float(), b.float())
    assert l32.dtype == torch.float32
    assert abs(l32.item() - l64.item()) < 1e-5


def test_ensemble_of_one_and_of_identical_teachers():
    g = torch.Generator().manual_seed(1)
    hs, ht = torch.randn(8, 5, generator=g), torch.randn(8, 6, generator=g)
    assert torch.equal(fkd_loss(hs, [ht]), fkd_loss(hs, ht))  # one code path: a tensor is an ensemble of one
    # three copies go through another sum than one: float64, so the rounding (~1e-16) is far below the tolerance
    ht = ht.double()
    for mode in ("mean", "concat"):
        assert torch.allclose(teacher_kernel([ht, ht, ht], ensemble=mode), normalized_kernel(ht), atol=1e-12)


def test_ensemble_widths_may_differ_and_mean_kernel():
    g = torch.Generator().manual_seed(2)  # float64: the loss and the written-out mean kernel sum in other orders
    t1, t2, s = (torch.randn(6, d, generator=g, dtype=torch.float64) for d in (3, 11, 4))
    target = (normalized_kernel(t1) + normalized_kernel(t2)) / 2
    assert torch.allclose(fkd_loss(s, [t1, t2]), kernel_distance(normalized_kernel(s), target))


@pytest.mark.parametrize("scale", [0.0, 1e-8, 1e-4, 1.0, 1e4, 1e8])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gradients_finite_for_zero_rows_and_extreme_scales(scale, dtype):
    g = torch.Generator().manual_seed(3)
    h = (torch.randn(6, 5, generator=g) * scale).to(dtype)
    h[0] = 0  # a zero row
    h.requires_grad_(True)
    t = torch.randn(6, 4, generator=g).to(dtype)
    loss = fkd_loss(h, t) + feature_regularizer(h) * 0 + fkd_loss(t.unsqueeze(0), h.unsqueeze(0)).sum()
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(h.grad).all()


def test_zero_row_gives_zero_off_diagonal_and_unit_diagonal():
    h = torch.tensor([[0.0, 0.0], [1.0, 2.0], [-1.0, 0.5]])
    rho = normalized_kernel(h)
    assert torch.equal(rho[0, 1:], torch.zeros(2)) and rho[0, 0] == 1


def test_raw_kernel_variant_includes_diagonal():
    hs = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    ht = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    # raw kernels I and diag(4, 1): only the diagonal differs, (4 - 1)^2 / 4 entries
    assert fkd_loss(hs, ht, normalize=False).item() == pytest.approx(9 / 4)
    assert fkd_loss(hs, ht).item() == pytest.approx(0.0, abs=1e-12)


def test_fkd_hand_values():
    ident = torch.eye(2, dtype=torch.float64)
    same = torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    diag = torch.tensor([[1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    assert fkd_loss(same, ident).item() == pytest.approx(1.0, abs=1e-9)
    assert fkd_loss(diag, ident).item() == pytest.approx(0.5, abs=1e-9)  # cos = 1/sqrt(2), squared
    assert feature_regularizer(diag).item() == pytest.approx(1.5)
    assert math.isclose(feature_kernel(diag)[1, 1].item(), 2.0)


@pytest.mark.parametrize(
    "hs, ht, match",
    [
        (torch.zeros(4), torch.zeros(4, 2), "at least 2 dims"),
        (torch.zeros(1, 3), torch.zeros(1, 3), "B >= 2"),
        (torch.zeros(4, 3), torch.zeros(5, 3), r"same batch size.*\(4, 3\).*\(5, 3\)"),
    ],
)
def test_bad_shapes_raise_value_error_naming_shapes(hs, ht, match):
    with pytest.raises(ValueError, match=match):
        fkd_loss(hs, ht)


def test_kernel_distance_shape_errors():
    with pytest.raises(ValueError, match=r"\(3, 4\)"):
        kernel_distance(torch.zeros(3, 4), torch.zeros(3, 3))
    with pytest.raises(ValueError, match="same batch size"):
        kernel_distance(torch.zeros(3, 3), torch.zeros(4, 4))


@settings(max_examples=30)
@given(st.integers(2, 6), st.integers(1, 4), st.integers(1, 3))
def test_any_leading_dims(b, d, m):
    """The kernels take any leading dims; the loss M students at once, (M, B, D), each against its own teacher's
    features or one teacher's (B, D) shared; more leading dims are refused (a map, not features)."""
    h = torch.randn(m, 2, b, d)
    assert normalized_kernel(h).shape == (m, 2, b, b)
    assert fkd_loss(h[:, 0], torch.randn(m, b, d + 1)).shape == (m,)
    assert fkd_loss(h[:, 0], torch.randn(b, d + 1)).shape == (m,)
    with pytest.raises(ValueError, match="must be features of shape"):
        fkd_loss(h, torch.randn(m, 2, b, d + 1))


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("ensemble", ["mean", "concat"])
def test_feature_space_path_equals_kernel_path(normalize, ensemble):
    g = torch.Generator().manual_seed(4)
    hs = torch.randn(2, 40, 5, generator=g, dtype=torch.float64)  # B = 40 > D_s + D_t: feature-space path
    ht = [
        torch.randn(2, 40, 3, generator=g, dtype=torch.float64),
        torch.randn(2, 40, 6, generator=g, dtype=torch.float64),
    ]
    direct = kernel_distance(
        normalized_kernel(hs) if normalize else feature_kernel(hs),
        teacher_kernel(ht, normalize, ensemble),
        include_diagonal=not normalize,
    )
    assert torch.allclose(fkd_loss(hs, ht, normalize, ensemble), direct, rtol=1e-9)
    f_t = teacher_factor(ht, normalize, ensemble)
    assert torch.allclose(
        factored_kernel_distance(hs, f_t, True), kernel_distance(feature_kernel(hs), feature_kernel(f_t), True)
    )
