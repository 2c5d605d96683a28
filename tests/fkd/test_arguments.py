"""The public API checks its arguments where the user passes them: a TypeError or ValueError naming the argument
and what it must be (issue 36). Values inside tensors are not checked (a NaN propagates, as in torch's losses)."""

import math

import pytest
import torch
from torch import nn

from fkd import (
    FeatureTap,
    FKDLoss,
    dkd_loss,
    feature_kernel,
    fkd_loss,
    kd_loss,
    normalized_kernel,
    teacher_factor,
    unit_rows,
)

H = torch.randn(8, 5)


@pytest.mark.parametrize("call", [
    lambda: FKDLoss(weight=1.0)(torch.ones(8, 5, dtype=torch.long), H),
    lambda: FKDLoss(weight=1.0)(H, torch.ones(8, 5, dtype=torch.int32)),
    lambda: fkd_loss(torch.ones(8, 5, dtype=torch.long), H),
    lambda: feature_kernel(torch.ones(8, 5, dtype=torch.bool)),
    lambda: unit_rows(torch.ones(8, 5, dtype=torch.long)),
    lambda: kd_loss(torch.ones(8, 5, dtype=torch.long), H),
])
def test_non_floating_features_are_a_type_error_that_says_convert(call):
    with pytest.raises(TypeError, match=r"must be a floating-point tensor .*got dtype torch\.\w+; convert it with "
                                        r"\.float\(\)"):
        call()


@pytest.mark.parametrize("eps", [-1.0, math.nan, math.inf, -1e-9])
def test_eps_must_be_finite_and_non_negative(eps):
    for call in (lambda: fkd_loss(H, H, eps=eps), lambda: normalized_kernel(H, eps), lambda: unit_rows(H, eps),
                 lambda: teacher_factor(H, eps=eps), lambda: FKDLoss(eps=eps)):
        with pytest.raises(ValueError, match=r"eps must be a finite number >= 0"):
            call()
    with pytest.raises(TypeError, match="eps must be a number, got str"):
        fkd_loss(H, H, eps="0.1")


@pytest.mark.parametrize("name", ["weight", "feature_reg"])
@pytest.mark.parametrize("value", [-1.0, math.nan, math.inf])
def test_fkd_loss_module_weights(name, value):
    with pytest.raises(ValueError, match=rf"FKDLoss {name} must be a finite number >= 0, got {value!r}"):
        FKDLoss(**{name: value})


def test_temperatures_and_dkd_weights():
    s, t, y = torch.randn(8, 4), torch.randn(8, 4), torch.randint(4, (8,))
    for bad in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
            kd_loss(s, t, temperature=bad)
    with pytest.raises(ValueError, match="alpha must be a finite number >= 0"):
        dkd_loss(s, t, y, alpha=-1.0)
    with pytest.raises(ValueError, match="beta must be a finite number >= 0"):
        dkd_loss(s, t, y, beta=math.nan)
    with pytest.raises(TypeError, match="labels must be an integer tensor of class indices, got torch.float32"):
        dkd_loss(s, t, y.float())


def test_mismatched_batches_name_both_arguments():
    with pytest.raises(ValueError, match=r"h_student and h_teachers must have the same batch size B"):
        FKDLoss()(torch.randn(8, 5), torch.randn(7, 5))
    with pytest.raises(ValueError, match=r"h_student and h_teachers\[1\] must have the same batch size B"):
        FKDLoss()(torch.randn(8, 5), [torch.randn(8, 3), torch.randn(6, 3)])
    with pytest.raises(ValueError, match="same batch size"):
        fkd_loss(torch.randn(8, 5), torch.randn(9, 5))


def test_feature_tap_needs_a_module_and_a_layer_name():
    with pytest.raises(TypeError, match="FeatureTap model must be an nn.Module, got str"):
        FeatureTap("resnet", "0")
    with pytest.raises(TypeError, match="FeatureTap layer must be a layer name"):
        FeatureTap(nn.Sequential(nn.Linear(2, 2)), 0)


def test_non_finite_values_inside_tensors_propagate_as_in_torch():
    h = torch.randn(8, 5)
    h[0, 0] = math.nan
    assert math.isnan(float(fkd_loss(h, torch.randn(8, 5))))  # documented in docs/api.md: not checked
