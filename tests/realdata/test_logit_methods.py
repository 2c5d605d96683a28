"""The logit family (realdata/methods/logit.py): DKD's warm-up and its refusal of unlabelled images, MLKD's
logit standardisation."""

from __future__ import annotations

import pytest
import torch

from realdata.config import ConfigError, TrainConfig
from realdata.methods import METHODS
from realdata.methods.plan import resolve
from realdata.models import build


def test_dkd_warms_up_and_refuses_transfer_data(data_dir, teachers):
    torch.manual_seed(0)
    d = METHODS["dkd"](build("resnet8", num_classes=10), [build("resnet8", num_classes=10)])
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    early = float(d(x, y, epoch=5)[1]["dkd"].detach())  # the epoch is an argument of the step, not an attribute
    assert float(d(x, y, epoch=20)[1]["dkd"].detach()) == pytest.approx(4 * early, rel=1e-5)  # 5/20 at epoch 5
    with pytest.raises(ConfigError, match="transfer-data"):
        resolve(TrainConfig(model="resnet8", dataset="cifar10", method="dkd", teachers=(teachers[0],),
                            transfer_data="cifar100"))


def test_mlkd_logit_standardisation_reaches_its_instance_terms_only():
    """``logit_stand=1`` on MLKD z-scores the logits of its KD terms; the Gram terms and CE do not change."""
    torch.manual_seed(0)
    student, teacher = build("resnet8", num_classes=10), build("resnet8", num_classes=10)
    x, xs, y = torch.randn(4, 3, 32, 32), torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    plain, stand = (METHODS["mlkd"](student, [teacher], logit_stand=v) for v in (0.0, 1.0))
    with torch.no_grad():
        a, b = (d(x, y, epoch=1, strong_images=xs)[1] for d in (plain, stand))
    assert float(a["kd"]) != pytest.approx(float(b["kd"]), rel=1e-3)
    for key in ("cc", "bc", "ce", "ce_strong"):
        assert float(a[key]) == pytest.approx(float(b[key]), rel=1e-6), key
