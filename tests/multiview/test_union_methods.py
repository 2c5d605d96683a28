"""The union objectives (issue 41's moonshot): each loss written out per student from fkd's functions, and each
trains in a sweep."""

import pytest
import torch
from tiny_sim import SMOKE

from fkd import fkd_loss, kd_loss, max_kernel, normalized_kernel, one_sided_kernel_distance
from multiview.config import Config
from multiview.experiment import distill_experiment
from multiview.methods import Batch, FKDClass, FKDKDMax, KDMax, Targets, parse_method
from multiview.methods.union import class_kernels


def _setup():
    g = torch.Generator().manual_seed(0)
    e_max, n, k, m = 3, 12, 4, 2
    targets = Targets(torch.rand(e_max, n, k * m, generator=g), torch.randn(e_max, n, k, generator=g))
    h, f = torch.rand(3, n, k * m, generator=g), torch.randn(3, n, k, generator=g)
    index = torch.arange(n)
    batch = Batch(h, f, index, h, index, torch.randint(0, k, (n,), generator=g))
    return targets, h, f, batch, k, [0, 1, 3], torch.tensor([0.0, 2.0, 5.0])


def test_kd_max_distils_toward_the_largest_teacher_logit_per_class():
    targets, h, f, batch, k, counts, w = _setup()
    got = KDMax().loss(batch, KDMax().prepare(targets, counts), w, counts)
    for i, e in enumerate(counts):
        want = w[i] * kd_loss(f[i], targets.logits[:e].amax(0)) if e else 0.0
        assert float(got[i]) == pytest.approx(float(want), rel=1e-5, abs=1e-7)


def test_fkd_class_is_the_one_sided_distance_of_per_class_kernels_to_the_teachers_max():
    targets, h, f, batch, k, counts, w = _setup()
    method = FKDClass(eps=0.5)
    got = method.loss(batch, method.prepare(targets, counts), w, counts)
    for i, e in enumerate(counts):
        if not e:
            assert float(got[i]) == 0.0
            continue
        per_class = []
        for j in range(k):
            cols = slice(j * 2, (j + 1) * 2)  # class j's m = 2 neurons
            target = max_kernel(torch.stack([normalized_kernel(t[:, cols], 0.5) for t in targets.h[:e]]))
            per_class.append(one_sided_kernel_distance(normalized_kernel(h[i][:, cols], 0.5), target))
        assert float(got[i]) == pytest.approx(float(w[i] * torch.stack(per_class).mean()), rel=1e-5)
    assert class_kernels(h, k, 0.5).shape == (3, k, 12, 12)


def test_fkd_kdmax_is_fkd_plus_kd_max():
    targets, h, f, batch, k, counts, w = _setup()
    method = FKDKDMax(kd_weight=0.5)
    got = method.loss(batch, method.prepare(targets, counts), w, counts)
    for i, e in enumerate(counts):
        want = (w[i] * fkd_loss(h[i], list(targets.h[:e]), eps=1.0)
                + 0.5 * kd_loss(f[i], targets.logits[:e].amax(0))) if e else 0.0
        assert float(got[i]) == pytest.approx(float(want), rel=1e-4, abs=1e-6)


def test_the_union_objectives_train_in_a_sweep(tmp_path):
    cfg = Config(**{**SMOKE, "max_steps": 60, "student_steps": 30, "patience": 5})
    specs = ["kd-max", "fkd-class", "fkd-kdmax"]
    r = distill_experiment(cfg, [0], [0, 2], specs, torch.device("cpu"), tmp_path)
    assert {s.method for s in r.students} == set(specs) and all(0 <= s.single_view_failure <= 1 for s in r.students)
    assert parse_method("fkd-class:lambda=3").params["lambda"] == 3.0
