"""The relational family (realdata/methods/relational.py): FKD's recipe choices (the regulariser's form, a head on
unit features)."""

from __future__ import annotations

import pytest
import torch
from tiny_images import image_data
from tiny_models import make, net

from realdata.methods import METHODS


def test_fkd_recipe_choices_regulariser_form_and_a_head_on_unit_features():
    data = image_data(n_train=8)
    x, y = data.train_x.float() / 255, data.train_y
    plain, variant = make("fkd"), make("fkd", reg_power=1, norm_head=1, feature_reg=0.5)
    assert not plain.student.unit_features and variant.student.unit_features
    logits, pooled, _ = variant.student.forward_features(x)
    assert torch.allclose(logits, variant.student.classify(pooled / pooled.norm(dim=1, keepdim=True)), atol=1e-5)
    _, losses = variant(x, y)
    assert torch.allclose(losses["reg"], 0.5 * pooled.norm(dim=1).mean(), rtol=1e-5)  # the norm, not its square
    _, pooled_plain, _ = plain.student.forward_features(x)
    assert torch.allclose(plain(x, y)[1]["reg"], 1e-4 * (pooled_plain ** 2).sum(1).mean(), rtol=1e-5)
    for bad, says in (({"norm_head": 0.5}, "norm_head=0.5 must be true or false"), ({"norm_head": "yes"}, "true or"),
                      ({"reg_power": 3}, "must be one of")):
        with pytest.raises(ValueError, match=says):
            METHODS["fkd"].resolve_params(bad)
    # a switch is true or false; 1 and 0, as configs recorded it before it was typed, read as true and false
    assert METHODS["fkd"].resolve_params({"norm_head": 1})["norm_head"] is True
    assert METHODS["fkd"].resolve_params({"norm_head": False})["norm_head"] is False
    assert METHODS["fkd-add"].resolve_params({"target": 1.0})["target"] == "max"
    with pytest.raises(ValueError, match="norm_head=true needs a zoo model"):
        METHODS["fkd"](torch.nn.Linear(2, 2), [net()], norm_head=True)
