"""Where a student's training step goes on the exact engine (one network, one thread): a profile of its parts.

On the default config (k = 10, N = 1000, full batch), an FKD student of 2 teachers. Times, as medians over
``--rounds`` of ``--steps`` repeats each, in one process: the features' forward (the fused smoothed-ReLU GEMMs),
the objective (CE + the kernel distance), the backward (``torch.autograd.grad``), the fit check and the update; a
whole ``train`` step (its difference from the parts is Python overhead); a probe step's extra cost (two gradients
and the view correlations, at 12 of ~600+ steps); and the measurement of a trained network (test and training
logits, views). Also the forward and backward at other chunk sizes (samples per chunk). Results go to
``benchmarks/results/multiview_step_profile_cpu.json``.

    .venv/bin/python benchmarks/profile_multiview_step.py          # about a minute on a 2-core CPU
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import multiview.population as population  # noqa: E402
from fkdapp.runtime import device_name, write_json  # noqa: E402
from multiview.config import Config  # noqa: E402
from multiview.data import make_data  # noqa: E402
from multiview.distill import Student, student_objective  # noqa: E402
from multiview.engine import Engine  # noqa: E402
from multiview.experiment import measure_population, network_seeds, train_networks  # noqa: E402
from multiview.methods import FKD, Targets  # noqa: E402
from multiview.population import evaluate, features, init_weights, logits, view_correlations  # noqa: E402
from multiview.train import _fits, train  # noqa: E402


def median_time(fn: Callable[[], object], steps: int, rounds: int) -> float:
    """Median over rounds of the mean time of one call (s)."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(steps):
            fn()
        times.append((time.perf_counter() - start) / steps)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "multiview_step_profile_cpu.json")
    a = ap.parse_args()
    torch.set_flush_denormal(True)
    torch.set_num_threads(1)
    cfg = Config()
    data = make_data(cfg, 0)
    x, y = data.train.x, data.train.y
    w_t, _ = train_networks(cfg.with_(max_steps=200), data, network_seeds(0, 2), Engine())
    targets = Targets(*evaluate(w_t, x, cfg))
    objective = student_objective([Student(FKD(), 2)], targets, y, cfg)
    # a student some way into training (features grown), so every part does its real work
    w = train(init_weights(cfg, [7]), x, y, objective, cfg.with_(max_steps=150), min_steps=150)[0]
    w = w.requires_grad_(True)
    index = torch.arange(x.shape[0])
    t = {}
    t["forward"] = median_time(lambda: features(w, x, cfg), a.steps, a.rounds)
    h = features(w, x, cfg)
    f = logits(h, cfg)
    t["objective"] = median_time(lambda: objective(h, f, index), a.steps, a.rounds)

    def backward() -> None:
        hh = features(w, x, cfg)
        torch.autograd.grad(objective(hh, logits(hh, cfg), index).sum(), w)

    t["backward"] = median_time(backward, a.steps, a.rounds) - t["forward"] - t["objective"]
    t["fit_check"] = median_time(lambda: _fits(w, x, y, f.detach(), True, cfg), a.steps, a.rounds)
    g = torch.zeros_like(w)
    t["update"] = median_time(lambda: w.detach().sub_(0.0 * g), a.steps, a.rounds)
    step_cfg = cfg.with_(max_steps=a.steps, student_steps=a.steps)
    whole = median_time(lambda: train(w, x, y, objective, step_cfg, min_steps=a.steps), 1, a.rounds) / a.steps
    t["python_and_rest"] = whole - sum(t.values())
    probed = median_time(lambda: train(w, x, y, objective, step_cfg, min_steps=a.steps, probe_steps=range(a.steps),
                                       views=data.features), 1, a.rounds) / a.steps
    measure = median_time(lambda: measure_population(cfg, data, w.detach()), 1, a.rounds)
    chunks = {}
    for chunk in (16, 32, 64, 128, 256):
        population.CPU_CHUNK = chunk
        chunks[chunk] = median_time(backward, a.steps, a.rounds)
    population.CPU_CHUNK = 64
    report = {
        "device": "cpu", "device_name": device_name(torch.device("cpu")), "torch": torch.__version__, "threads": 1,
        "config": "defaults (k = 10, N = 1000, d = 256, P = 16, m = 8), fkd student of 2 teachers, full batch",
        "step_s": whole, "parts_s": t, "parts_fraction": {k: v / whole for k, v in t.items()},
        "probe_step_s": probed, "probe_over_step": probed / whole, "measure_network_s": measure,
        "measure_in_steps": measure / whole, "forward_backward_s_by_chunk": chunks,
        "view_correlations_s": median_time(lambda: view_correlations(w.detach(), data.features, cfg), a.steps,
                                           a.rounds),
    }
    write_json(a.out, report)
    print({k: round(v, 3) for k, v in report["parts_fraction"].items()}, f"step {whole * 1000:.1f} ms",
          f"probe {probed / whole:.2f}x", f"measure {measure / whole:.1f} steps",
          {c: round(s * 1000, 1) for c, s in chunks.items()})


if __name__ == "__main__":
    main()
