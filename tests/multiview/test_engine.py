"""The exact engine: a network's records depend only on what defines it (config, seed, method spec, E, role), never
on what shares the run. Bit for bit, since each network is computed alone by the same operations on one thread
(torchrun's processes: tests/test_multiview.py). The batched (CUDA) path runs here too, agreeing to a tolerance."""

import numpy as np
import pytest
import torch
from tiny_sim import LOTTERY

from multiview.config import Config
from multiview.engine import Engine
from multiview.experiment import distill_experiment

# tiny and fast; kernel_batch draws from each student's generator, so the generators are covered too
CFG = Config(**LOTTERY, kernel_batch=64)
CPU = torch.device("cpu")


def run(seeds, counts, methods, **kw):
    return distill_experiment(CFG, seeds, counts, methods, CPU, None, **kw)


def pick(results, seed=None, methods=None, counts=None):
    """The student records of ``results`` for some seeds, methods and teacher counts, in order."""
    return [s for s in results.students if (seed is None or s.seed == seed) and (methods is None or s.method in methods)
            and (counts is None or s.teachers in counts)]


@pytest.fixture(scope="module")
def base():
    """fkd at E = 0..2 on seeds 0 and 1, two workers."""
    return run([0, 1], [0, 1, 2], ["fkd"], engine=Engine(workers=2))


def test_other_methods_do_not_change_a_method_s_records(base):
    mixed = run([0, 1], [0, 1, 2], ["fkd", "kd", "sp", "ce"], engine=Engine(workers=2))
    assert pick(mixed, methods={"fkd"}) == pick(base) and mixed.teachers == base.teachers
    assert len(pick(mixed, methods={"kd"})) == 6 and base.students[0].diagnostics["probe_steps"]


def test_other_seeds_do_not_change_a_seed_s_records(base):
    alone = run([1], [0, 1, 2], ["fkd"], engine=Engine(workers=2))
    assert alone.students == pick(base, seed=1) and alone.teachers == [t for t in base.teachers if t.seed == 1]


def test_workers_do_not_change_any_record(base):
    one = run([0, 1], [0, 1, 2], ["fkd"], engine=Engine(workers=1))
    assert one.students == base.students and one.teachers == base.teachers and one.ensembles == base.ensembles


def test_teacher_counts_and_the_pool_do_not_change_a_student(base, tmp_path):
    # a pool trained for E <= 3 first; the E = 2 run takes its first two teachers, a fresh run trains its own
    run([0], [0, 3], ["kd"], pool=tmp_path, engine=Engine(workers=2))
    pooled = run([0], [2], ["fkd"], pool=tmp_path)
    fresh = run([0], [2], ["fkd"])
    want = pick(base, seed=0, counts={2})
    assert pick(pooled, counts={2}) == want == pick(fresh, counts={2})
    assert pooled.teachers == fresh.teachers == [t for t in base.teachers if t.seed == 0]
    # a pool smaller than asked keeps its teachers and trains the missing ones only
    grown = run([0], [0, 4], ["ce"], pool=tmp_path)
    assert grown.teachers[:3] == run([0], [3], ["ce"], pool=tmp_path).teachers
    assert torch.load(tmp_path / "seed0.pt", weights_only=True)["w"].shape[0] == 4


def test_a_stopped_network_costs_nothing(base):
    for s in base.students:  # probed only while it trained: no probe at or after its last step
        assert all(t < s.steps for t in s.diagnostics["probe_steps"])
        assert s.steps >= CFG.student_steps and (s.fit_step < 0 or s.steps <= max(CFG.student_steps,
                                                                                  s.fit_step + CFG.patience))


def test_the_batched_path_agrees_within_a_few_steps():
    """The CUDA path (one population, stopped networks masked) on the CPU: early on, before the lottery can amplify
    rounding, its students' weights agree with the exact ones to float32 tolerance."""
    from multiview.data import make_data
    from multiview.distill import students_for
    from multiview.experiment import seed_teachers, train_students
    from multiview.methods import parse_methods

    cfg = CFG.with_(student_steps=5, max_steps=5)
    data = make_data(cfg, 0)
    students = students_for(parse_methods(["fkd", "kd"], cfg.method_params), [0, 1, 2])
    got = {}
    for engine in (Engine(), Engine(batched=True)):
        with engine.numerics():
            ts = seed_teachers(cfg, data, 0, 2, None, engine)
            got[engine.name] = train_students(cfg, data, 0, students, ts.targets, engine)
    (w_e, log_e), (w_b, log_b) = got["exact"], got["batched"]
    assert w_e.shape == w_b.shape == (len(students), cfg.k, cfg.m, cfg.d)
    assert torch.allclose(w_e, w_b, rtol=1e-4, atol=1e-6) and log_e.steps == log_b.steps
    assert np.allclose(log_e.grad_ratio, log_b.grad_ratio, rtol=1e-3, atol=1e-6)


def test_results_of_another_engine_are_not_resumed(tmp_path):
    distill_experiment(CFG, [0], [0, 1], ["fkd"], CPU, tmp_path, engine=Engine(batched=True))
    with pytest.raises(Exception, match=r"different experiment \(engine differ"):
        distill_experiment(CFG, [0, 1], [0, 1], ["fkd"], CPU, tmp_path)


def test_every_job_runs_on_one_thread_with_denormals_flushed():
    """What makes a network's numbers independent of the worker that trains it; restored after the block."""
    before = torch.get_num_threads()
    engine = Engine(workers=2)
    with engine.numerics():
        got = engine.map([lambda: (torch.get_num_threads(), float(torch.tensor([1e-39]) * 1.0))] * 4)
        assert (torch.get_num_threads(), float(torch.tensor([1e-39]) * 1.0)) == (1, 0.0)  # and on the main thread
    assert got == [(1, 0.0)] * 4 and torch.get_num_threads() == before
