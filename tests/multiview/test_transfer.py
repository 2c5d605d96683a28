"""multiview: the transfer set (unlabelled single- and multi-view samples for the distillation terms), the objectives
that only add, the oracle union target, and the decomposition of a sweep."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from tiny_sim import LOTTERY

from fkd import kernel_distance, max_kernel, normalized_kernel, one_sided_kernel_distance
from multiview.config import Config
from multiview.data import make_data
from multiview.decompose import RULE_V1, decompose, decomposition_markdown, nobody_had, verdict_v1
from multiview.experiment import distill_experiment
from multiview.population import features, union_network
from multiview.records import DistillResults, StudentRecord
from multiview.train import cross_entropy

TINY = Config(**{**LOTTERY, "n_train": 120, "n_test": 300, "student_steps": 60, "max_steps": 200})
CPU = torch.device("cpu")


def test_the_transfer_set_is_its_own_draw_fixed_by_seed_and_disjoint():
    plain = make_data(TINY, 3)
    cfg = TINY.with_(transfer_single=40, transfer_multi=25)
    data, again, other = make_data(cfg, 3), make_data(cfg, 3), make_data(cfg, 4)
    assert plain.transfer is None and torch.equal(plain.distill_x, plain.train.x)
    for name in ("train", "test_multi", "test_single"):  # training and test data unchanged by the transfer set
        assert torch.equal(getattr(plain, name).x, getattr(data, name).x)
    t = data.transfer
    assert len(t) == 65 and bool(t.single[:40].all()) and not bool(t.single[40:].any())
    assert torch.equal(t.x, again.transfer.x) and not torch.equal(t.x, other.transfer.x)
    rows = t.x.flatten(1)
    for s in (data.train, data.test_multi, data.test_single):
        assert torch.cdist(rows, s.x.flatten(1)).min() > 1e-3  # no transfer sample is a training or test sample
    assert data.distill_x.shape[0] == 120 + 65
    assert torch.equal(data.distill_y[120:], torch.full((65,), -1)) and torch.equal(data.distill_y[:120], data.train.y)


def test_cross_entropy_leaves_out_the_unlabelled_samples():
    g = torch.Generator().manual_seed(0)
    f = torch.randn(3, 10, 4, generator=g)
    y = torch.randint(4, (10,), generator=g)
    masked = torch.cat([y[:6], torch.full((4,), -1)])
    idx = torch.arange(10)
    full = cross_entropy(y[:6])(None, f[:, :6], torch.arange(6))
    assert torch.allclose(cross_entropy(masked)(None, f, idx), full, atol=1e-6)


def test_transfer_set_leaves_the_teachers_and_changes_the_students():
    run = lambda cfg: distill_experiment(cfg, [0], [0, 1, 2], ["fkd", "kd"], CPU, None)  # noqa: E731
    plain, transfer = run(TINY), run(TINY.with_(transfer_single=60))
    assert plain.teachers == transfer.teachers and plain.ensembles == transfer.ensembles
    assert transfer.config["transfer_single"] == 60
    students = lambda r: {(s.method, s.teachers): s.views_learned for s in r.students}  # noqa: E731
    assert students(plain)[("fkd", 0)] == students(transfer)[("fkd", 0)]  # CE ignores the unlabelled samples
    assert any(s.train_accuracy == 1.0 for s in transfer.students)


@pytest.mark.parametrize("method", ["fkd-add", "fkd-add:target=max", "fkd-oracle", "dkd", "sp"])
def test_every_method_trains_with_a_transfer_set(method):
    r = distill_experiment(TINY.with_(transfer_single=30, transfer_multi=20), [0], [0, 2], [method], CPU, None)
    assert {s.teachers for s in r.students} == {0, 2}
    assert all(np.isfinite(s.single_view_failure) for s in r.students)


@given(st.integers(2, 9), st.integers(1, 5), st.integers(0, 2**31 - 1))
def test_one_sided_distance_counts_only_the_shortfall(b, d, seed):
    g = torch.Generator().manual_seed(seed)
    k_s = normalized_kernel(torch.randn(b, d, generator=g, dtype=torch.float64))
    k_t = normalized_kernel(torch.randn(b, d, generator=g, dtype=torch.float64))
    one = one_sided_kernel_distance(k_s, k_t)
    assert 0 <= one <= kernel_distance(k_s, k_t) + 1e-12
    assert one_sided_kernel_distance(torch.maximum(k_s, k_t), k_t) == 0  # above the target everywhere: no loss
    both = one_sided_kernel_distance(k_s, k_t) + one_sided_kernel_distance(k_t, k_s)
    assert torch.allclose(both, kernel_distance(k_s, k_t))


def test_one_sided_distance_on_fixed_numbers():
    k_s = torch.tensor([[1.0, 0.2, 0.9], [0.2, 1.0, 0.1], [0.9, 0.1, 1.0]])
    k_t = torch.tensor([[1.0, 0.5, 0.3], [0.5, 1.0, 0.4], [0.3, 0.4, 1.0]])
    # shortfalls off the diagonal: 0.3 and 0.3 (pair 0-1), 0.3 and 0.3 (pair 1-2); pair 0-2 is above the target
    assert one_sided_kernel_distance(k_s, k_t).item() == pytest.approx(4 * 0.09 / 6)
    stack = torch.stack([k_s, k_t])
    assert torch.equal(max_kernel(stack), torch.maximum(k_s, k_t))
    with pytest.raises(ValueError, match="kernels must be a tensor of shape"):
        max_kernel(k_s)


def test_union_network_takes_each_view_from_a_teacher_that_holds_it():
    k, m, d = 3, 2, 8
    w = torch.randn(3, k, m, d, generator=torch.Generator().manual_seed(1))
    learned = torch.tensor([[[True, False], [False, False], [True, True]],
                            [[False, True], [False, True], [True, False]],
                            [[True, False], [False, False], [False, False]]])
    u = union_network(w, learned).view(k, 2, m, d)
    assert torch.equal(u[0, 0], w[0, 0]) and torch.equal(u[0, 1], w[1, 0])  # class 0: view 1 from 0, view 2 from 1
    assert torch.equal(u[1, 0], torch.zeros(m, d)) and torch.equal(u[1, 1], w[1, 1])  # nobody holds view 1
    assert torch.equal(u[2, 0], w[0, 2]) and torch.equal(u[2, 1], torch.zeros(m, d))  # one teacher holds both: once
    cfg = Config(k=k, d=d, P=8, m=2 * m)
    x = torch.randn(4, 8, d)
    assert features(union_network(w, learned), x, cfg).shape == (1, 4, k * 2 * m)


def _student(seed, e, failure, learned, own, union, kept, new, method="fkd"):
    return StudentRecord(multi_view_error=0.0, single_view_failure=failure, failure_view_learned=None,
                         failure_view_not_learned=None, uncovered_fraction=failure, seed=seed, method=method,
                         teachers=e, trained_as="", weight=1.0, params={}, train_accuracy=1.0,
                         ideal_uncovered=failure / 2 if e else failure, own_views_kept=kept,
                         teacher_new_views_covered=new, mechanism_exact=False, theory_failure=2.0 ** -(e + 1),
                         views_learned=learned, teacher_views_union=union, own_views=own)


def test_decomposition_on_hand_made_records():
    own, union = [[True, False], [False, True]], [[False, True], [False, True]]
    learned = [[True, True], [True, True]]  # takes the teacher's view of class 0, invents view 1 of class 1
    students = [_student(s, 0, 0.5, own, own, [[False] * 2] * 2, 1.0, None) for s in (0, 1)]
    students += [_student(s, e, f, learned, own, union, 1.0, 1.0) for s in (0, 1) for e, f in
                 ((1, 0.25), (2, 0.125), (3, 0.0625), (4, 0.03125))]
    r = DistillResults(config={}, teacher_counts=[0, 1, 2, 3, 4], methods=["fkd"], view_threshold="", environment={},
                       seeds_done=[0, 1], students=students)
    assert nobody_had(students[2]) == 0.25
    rows = {x.teachers: x for x in decompose(r)}
    assert rows[2].over_law == pytest.approx(1.0) and rows[2].over_own_law == pytest.approx(0.125 / (0.5 * 0.25))
    assert rows[1].p == (1.0, 0.0) and rows[1].q[0] == 0.25 and rows[1].uncovered_over_ideal == pytest.approx(2.0)
    assert verdict_v1(list(rows.values()), "fkd") == {"law_holds": True, "by_mechanism": False}  # q 0.25 > 0.05
    assert RULE_V1["ratio"] == 1.25
    assert "| fkd | 2 | 2 | 0.125 ± 0.000 | 1.00 | 1.00 | 1.00 |" in decomposition_markdown(r)


def test_decomposition_report_command(tmp_path):
    from click.testing import CliRunner

    from multiview.cli import main

    out = tmp_path / "r"
    distill_experiment(TINY.with_(transfer_single=20), [0], [0, 1], ["fkd"], CPU, out)
    res = CliRunner().invoke(main, ["report", str(out / "results.json"), "--decompose"])
    assert res.exit_code == 0, res.output
    assert "p: teachers' views taken" in res.output and "| fkd | 1 |" in res.output
