"""The methods after DKD against numbers from their reference implementations, run on fixed tensors (their own
functions, imported from the repositories' snapshots at the commits named; never copied here). Float32 unless the
reference was rounding-dominated, where both sides are compared in float64."""

import pytest
import torch

from fkd import (
    DOT,
    ctkd_reversal,
    ctkd_temperature,
    dist_loss,
    dkd_loss,
    hcl_loss,
    kd_loss,
    mlkd_terms,
    ofd_loss,
    ofd_margin,
    standardize_logits,
    wttm_loss,
)


@pytest.fixture
def logits():
    torch.manual_seed(0)
    return torch.randn(6, 5), torch.randn(6, 5)


# hunto/DIST_KD @ 2418f18b (classification submodule hunto/image_classification_sota @ d9662f7d),
# lib/models/losses/dist_kd.py: DIST(beta, gamma, tau)(z_s, z_t)
@pytest.mark.parametrize(("beta", "gamma", "tau", "want"), [(1, 1, 1, 1.7650033), (1, 1, 4, 28.142277),
                                                            (2, 0.5, 4, 33.660191)])
def test_dist(logits, beta, gamma, tau, want):
    assert float(dist_loss(*logits, beta, gamma, tau)) == pytest.approx(want, rel=1e-6)


# sunshangquan/logit-standardization-KD @ f6e5aa51, mdistiller/distillers/KD.py normalize and kd_loss(.., T,
# logit_stand), DKD.py dkd_loss(.., alpha, beta, T, logit_stand), targets [0, 1, 2, 3, 4, 0]
def test_logit_standardisation(logits):
    zs, zt = logits
    assert standardize_logits(zs)[0].tolist() == pytest.approx([-0.8600294, -0.89247125, 0.21066254, -0.013565453,
                                                                1.5554037], rel=1e-6)
    for t, want, plain in ((2, 0.63023847, 0.81716877), (4, 0.65064943, 0.8384096)):
        assert float(kd_loss(zs, zt, t, standardize=True)) == pytest.approx(want, rel=1e-6)
        assert float(kd_loss(zs, zt, t)) == pytest.approx(plain, rel=1e-6)
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    for alpha, beta, t, want in ((1, 8, 2, 5.6533909), (1, 8, 4, 5.7610579), (9, 72, 2, 50.88052),
                                 (9, 72, 4, 51.849525)):
        assert float(dkd_loss(zs, zt, y, alpha, beta, t, standardize=True)) == pytest.approx(want, rel=1e-6)


# zkxufo/TTM @ fe457b33, distiller_zoo/wttm.py WTTM(l)(z_s, z_t)
@pytest.mark.parametrize(("gamma", "want"), [(0.1, 1.1747944), (0.2, 1.0146834), (0.25, 0.95817035),
                                             (0.5, 0.80470157), (1.0, 0.70692259)])
def test_wttm(logits, gamma, want):
    assert float(wttm_loss(*logits, gamma)) == pytest.approx(want, rel=1e-6)


# zhengli97/CTKD @ 7d525224, models/temp_global.py (Global_T, the gradient reversal), helper/loops.py (T = 1 + 20
# sigmoid), distiller_zoo/KD.py DistillKL, train_student.py CosineDecay(0, -1, 10). In float32 the reference's loss
# at T = 15.6 (a KL of 0.003 per sample) is rounding-dominated (0.83359194 there, 0.83358431 here); in float64 both
# give 0.833582732820842 and dL/dT_raw = -0.0011400647834191866 (before the reversal).
def test_ctkd_temperature_and_curriculum(logits):
    zs, zt = (t.double() for t in logits)
    for lam in (0.0, -0.5, -1.0):
        raw = torch.ones((), dtype=torch.float64, requires_grad=True)
        temp = ctkd_temperature(raw, lam)
        loss = kd_loss(zs, zt, temp)
        loss.backward()
        assert float(temp.detach()) == pytest.approx(15.621172, rel=1e-7)
        assert float(loss.detach()) == pytest.approx(0.833582732820842, rel=1e-12)
        assert float(raw.grad) == pytest.approx(lam * -0.0011400647834191866, rel=1e-9, abs=1e-15)
    assert [ctkd_reversal(e) for e in range(1, 12)] == pytest.approx(
        [-0.024471742, -0.095491503, -0.20610737, -0.3454915, -0.5, -0.6545085, -0.79389263, -0.9045085,
         -0.97552826, -1.0, -1.0], rel=1e-7)
    assert ctkd_reversal(0) == 0.0


# megvii-research/mdistiller @ a08d46f1, mdistiller/distillers/ReviewKD.py hcl_loss
def test_reviewkd_hierarchical_context_loss():
    torch.manual_seed(0)
    fs = [torch.randn(2, 3, 8, 8), torch.randn(2, 3, 4, 4), torch.randn(2, 3, 1, 1)]
    ft = [torch.randn(2, 3, 8, 8), torch.randn(2, 3, 4, 4), torch.randn(2, 3, 1, 1)]
    assert float(hcl_loss(fs, ft)) == pytest.approx(4.6650815, rel=1e-6)
    with pytest.raises(ValueError, match="as many student as teacher maps"):
        hcl_loss(fs, ft[:2])


# megvii-research/mdistiller @ a08d46f1, mdistiller/engine/dot.py DistillationOrientedTrainer(lr 0.1, momentum
# 0.825, momentum_kd 0.975, weight_decay 5e-4), three steps of step_kd() then step()
def test_dot_optimizer():
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0, 3.0]))
    opt = DOT([w], lr=0.1, momentum=0.9, delta=0.075, weight_decay=5e-4)
    want = [[0.93994999, -2.00990009, 3.00985003], [0.82286173, -2.02646708, 3.02482581],
            [0.65141028, -2.04707098, 3.04110456]]
    for expected in want:
        opt.zero_grad(set_to_none=True)
        w.grad = torch.tensor([0.5, -0.1, 0.2])
        opt.step_kd()
        opt.zero_grad(set_to_none=True)
        w.grad = torch.tensor([0.1, 0.2, -0.3])
        opt.step()
        assert w.tolist() == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="momentum \\+ delta < 1"):
        DOT([w], lr=0.1, momentum=0.95, delta=0.075)


# clovaai/overhaul-distillation @ 76344a84 (CIFAR-100/distiller.py: get_margin_from_BN, distillation_loss, the
# 2^(n-i-1) stage weights) and megvii-research/mdistiller @ a08d46f1 (distillers/OFD.py: feat_loss, which divides
# the sum by the batch size, as ofd_loss does): a BN with weight (0.5, 1, 2) and bias (-0.5, 0, 0.3); two stages of
# randn(4, 3, 2, 2) pairs (seeds 0 and 1), the connector the identity.
def test_ofd():
    margin = ofd_margin(torch.tensor([0.5, 1.0, 2.0]), torch.tensor([-0.5, 0.0, 0.3]))
    assert margin.tolist() == pytest.approx([-0.64379996, -0.79788458, -1.4915313], rel=1e-6)
    stages = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        stages.append((torch.randn(4, 3, 2, 2), torch.randn(4, 3, 2, 2)))
    first, second = (ofd_loss(s, t, margin) for s, t in stages)
    assert float(first) == pytest.approx(24.097336, rel=1e-6)  # clovaai's sum 96.389343 / batch 4
    assert float(second) == pytest.approx(20.073172, rel=1e-6)
    assert float(first / 2 + second) == pytest.approx(32.121841, rel=1e-6)  # mdistiller's ofd_loss
    assert float(ofd_loss(stages[0][1], stages[0][1], margin)) == 0.0
    low = torch.full((1, 3, 1, 1), -5.0)  # a student below a negative teacher response costs nothing
    assert float(ofd_loss(low, torch.full((1, 3, 1, 1), -0.1), margin)) == 0.0


@pytest.fixture
def mlkd_inputs():
    """The weak view's logits (seed 0), the strong view's (seed 1), student then teacher, and the targets."""
    torch.manual_seed(0)
    zs, zt = torch.randn(6, 5), torch.randn(6, 5)
    torch.manual_seed(1)
    ss, st = torch.randn(6, 5), torch.randn(6, 5)
    return zs, zt, ss, st, torch.tensor([0, 1, 2, 3, 4, 0])


# Jin-Ying/Multi-Level-Logit-Distillation @ 5ee473fc, mdistiller/distillers/KD_ours.py (KD_ours.forward_train with
# its kd_loss, cc_loss, bc_loss and confidence masks): the weak view's logits randn(6, 5) x 2 (seed 0), the strong
# view's (seed 1), targets [0, 1, 2, 3, 4, 0]; its CIFAR settings (T 4, CE 0.1, KD 0.9) and its ImageNet ones (T 1,
# CE 0.5, KD 0.5). The sample mask keeps 3 of 6 (0.5), the class mask 3 of 5 (0.6).
@pytest.mark.parametrize(("temperature", "ce_weight", "kd_weight", "want"),
                         [(4.0, 0.1, 0.9, (0.43503705, 5.3830433, 0.02293068, 0.0051978389, 5.846209)),
                          (1.0, 0.5, 0.5, (2.1751852, 2.9484453, 0.049240142, 0.026015365, 5.1988859))])
def test_mlkd(mlkd_inputs, temperature, ce_weight, kd_weight, want):
    zs, zt, ss, st, y = mlkd_inputs
    terms = mlkd_terms(zs, zt, ss, st, temperature, kd_weight)
    ce = ce_weight * (torch.nn.functional.cross_entropy(zs, y) + torch.nn.functional.cross_entropy(ss, y))
    got = (float(ce), float(terms["kd"]), float(terms["cc"]), float(terms["bc"]), float(ce + sum(terms.values())))
    assert got == pytest.approx(want, rel=1e-6)


# sunshangquan/logit-standardization-KD @ f6e5aa51, mdistiller/distillers/MLKD.py (MLKD.forward_train with
# EXPERIMENT.LOGIT_STAND on): the tensors of test_mlkd, CE weight 0.1; the LS paper's setting (base temperature 2,
# KD weight 9) and the CIFAR one (T 4, KD 0.9). Only the instance-level terms see z-scored logits.
@pytest.mark.parametrize(("temperature", "kd_weight", "want"),
                         [(2.0, 9.0, (53.699425, 0.33593622, 0.089005604, 54.559402)),
                          (4.0, 0.9, (5.401103, 0.02293068, 0.0051978389, 5.8642688))])
def test_mlkd_logit_standardisation(mlkd_inputs, temperature, kd_weight, want):
    zs, zt, ss, st, y = mlkd_inputs
    terms = mlkd_terms(zs, zt, ss, st, temperature, kd_weight, standardize=True)
    ce = 0.1 * (torch.nn.functional.cross_entropy(zs, y) + torch.nn.functional.cross_entropy(ss, y))
    got = (float(terms["kd"]), float(terms["cc"]), float(terms["bc"]), float(ce + sum(terms.values())))
    assert got == pytest.approx(want, rel=1e-6)
