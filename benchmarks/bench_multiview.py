"""Time the multiview training step: FLOP rate against a plain matmul, and the batched population against a loop.

On the default config (k = 10, N = 1000, d = 256, P = 16, m = 8, full batch), for M = 1, 4, 16 networks:

- FLOP rate of one training step (``multiview.train.train`` with the cross-entropy objective: features, logits,
  loss, ``torch.autograd.grad`` w.r.t. the weights, update), counted as 2 GEMMs of 2 N P d M k m FLOPs each
  (forward and weight gradient), as a fraction of a plain matmul x (N P, d) @ W (d, M k m) timed in the same run;
- the population (one ``train`` call on M networks) against a Python loop of ``train`` over the same M networks,
  same data and steps: speed-up = loop time / population time.

Rounds interleave matmul, population and loop (alternating which of the two goes first); medians are reported,
since timings on a shared machine drift. Results go to ``benchmarks/results/multiview_<device type>.json``.

    .venv/bin/python benchmarks/bench_multiview.py                  # about 1.5 minutes on a loaded 2-core CPU
    .venv/bin/python benchmarks/bench_multiview.py --device cuda --steps 50 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fkdapp.runtime import device_name, resolve_device  # noqa: E402
from multiview.config import Config  # noqa: E402
from multiview.data import derive_seed, draw_samples, make_features  # noqa: E402
from multiview.population import init_weights  # noqa: E402
from multiview.train import cross_entropy, train  # noqa: E402


def timer(device: torch.device) -> Callable[[Callable[[], object]], float]:
    def run(fn: Callable[[], object]) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", help="cpu, cuda or auto")
    ap.add_argument("--models", default="1,4,16", help="population sizes M, comma-separated")
    ap.add_argument("--steps", type=int, default=8, help="training steps per timed run")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved repeats (median reported)")
    ap.add_argument("--matmuls", type=int, default=10, help="matmuls per timed reference run")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--out", default=None, help="results JSON [default: benchmarks/results/multiview_<dev>.json]")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    sizes = [int(s) for s in args.models.split(",")]
    cfg = Config()
    N, P, d, km = cfg.n_train, cfg.P, cfg.d, cfg.k * cfg.m
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(
        f"device: {device_name(device)}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"k={cfg.k} N={N} P={P} d={d} m={cfg.m}, full batch; {args.steps} steps x {args.rounds} rounds; "
        f"load average {load}",
        flush=True,
    )

    g = torch.Generator().manual_seed(derive_seed(0, 0))
    train_set = draw_samples(cfg, make_features(cfg, g), N, cfg.mu, g).to(device)
    x, y = train_set.x, train_set.y
    objective = cross_entropy(y)
    x2 = x.reshape(N * P, d)
    timed = timer(device)

    def population(w: torch.Tensor, steps: int) -> None:  # exactly `steps` steps: max_steps = min_steps
        train(w, x, y, objective, cfg.with_(max_steps=steps), min_steps=steps)

    def loop(w: torch.Tensor, steps: int) -> None:
        for i in range(w.shape[0]):
            train(w[i : i + 1], x, y, objective, cfg.with_(max_steps=steps), min_steps=steps)

    results = {}
    for M in sizes:
        w = init_weights(cfg, list(range(M)), device)
        wt = torch.randn(d, M * km, device=device)
        flops_gemm = 2 * N * P * d * M * km
        population(w, 2)  # warm-up (allocator, kernels)
        loop(w, 2)
        (x2 @ wt).sum().item()
        t_mm, t_pop, t_loop = [], [], []
        for r in range(args.rounds):
            t_mm.append(timed(lambda wt=wt: [x2 @ wt for _ in range(args.matmuls)]) / args.matmuls)
            runs = [("pop", lambda w=w: population(w, args.steps)), ("loop", lambda w=w: loop(w, args.steps))]
            for name, fn in runs if r % 2 == 0 else runs[::-1]:
                (t_pop if name == "pop" else t_loop).append(timed(fn) / args.steps)
        mm, pop, lp = statistics.median(t_mm), statistics.median(t_pop), statistics.median(t_loop)
        res = {
            "M": M,
            "gemm_flops": flops_gemm,
            "step_flops": 2 * flops_gemm,
            "matmul_s": mm,
            "matmul_gflops": flops_gemm / mm / 1e9,
            "population_step_s": pop,
            "population_gflops": 2 * flops_gemm / pop / 1e9,
            "fraction_of_matmul": (2 * flops_gemm / pop) / (flops_gemm / mm),
            "loop_step_s": lp,
            "loop_over_population": lp / pop,
            "matmul_times_s": t_mm,
            "population_times_s": t_pop,
            "loop_times_s": t_loop,
        }
        results[str(M)] = res
        print(
            f"M={M:<3d} matmul {res['matmul_gflops']:7.1f} GFLOP/s | step {pop * 1e3:8.2f} ms "
            f"{res['population_gflops']:7.1f} GFLOP/s = {res['fraction_of_matmul']:.2f} of matmul | "
            f"loop {lp * 1e3:8.2f} ms, loop/population {res['loop_over_population']:.2f}",
            flush=True,
        )

    print(f"\n{'M':>3} {'matmul GF/s':>11} {'step ms':>8} {'step GF/s':>9} {'frac':>5} {'loop ms':>8} {'loop/pop':>8}")
    for r in results.values():
        print(
            f"{r['M']:>3} {r['matmul_gflops']:11.1f} {r['population_step_s'] * 1e3:8.2f} {r['population_gflops']:9.1f} "
            f"{r['fraction_of_matmul']:5.2f} {r['loop_step_s'] * 1e3:8.2f} {r['loop_over_population']:8.2f}"
        )
    report = {
        "device": str(device),
        "device_name": device_name(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "load_average_start": load,
        "load_average_end": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "steps": args.steps,
        "rounds": args.rounds,
        "matmuls": args.matmuls,
        "config": cfg.to_dict(),
        "flops_note": "step = 2 GEMMs (forward, weight gradient) of 2 N P d M k m FLOPs each; "
        "matmul = x (N P, d) @ W (d, M k m)",
        "results": results,
    }
    out = Path(args.out) if args.out else Path(__file__).resolve().parent / "results" / f"multiview_{device.type}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written: {out}")


if __name__ == "__main__":
    main()
