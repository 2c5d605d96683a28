"""The exact engine (each network alone, stopped networks cost nothing) against the engine before it, in one run.

The baseline is a commit before the change (default 7e2dd57: one population tensor per seed, stopped networks
masked) and the candidate a commit with the exact engine (default HEAD), each checked out as a git worktree and run
as ``python -m multiview sweep``, same arguments, same machine, alternating which goes first. Each engine runs as a
user would on this CPU: one process, the baseline at torch's default threads, the exact engine at its default
workers (one thread each).

Cases: the testbed's report settings for one seed (k = 10, E = 0..4, every method at its chosen weight) and one
k = 20 seed (configs/k20.json, fkd and KD at weight 1). Per engine and case: wall time, network-steps computed (a
population runs until its last network stops, so the baseline computes M x its longest run; the exact engine
computes each network's own steps), and whether it is exact: the same sweep with ``--methods fkd`` alone must give
fkd's records bit for bit (teachers from the same pool). Writes benchmarks/results/engine_<device>.json.

    .venv/bin/python benchmarks/bench_engine.py            # about 1 hour on a 2-core CPU
    .venv/bin/python benchmarks/bench_engine.py --smoke    # tiny sizes: checks the script (seconds)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fkdapp.runtime import device_name, write_json  # noqa: E402

TESTBED = "fkd,fkd-raw:lambda=0.003,kd:kd_weight=0.9,dkd,sp:weight=0.3,pkt:weight=3,rkd:weight=0.01,ce"
CASES = {
    "testbed_k10_seed4": ["--methods", TESTBED, "--seeds", "4-4", "--teachers", "0-4"],
    "k20_seed0": ["--methods", "fkd,kd:kd_weight=1", "--seeds", "0-0", "--teachers", "0-4", "--config",
                  str(ROOT / "configs" / "k20.json")],
}
SMOKE = ["--set", "k=4", "--set", "d=32", "--set", "P=8", "--set", "n_train=60", "--set", "n_test=60", "--set",
         "m=2", "--set", "max_steps=40", "--set", "student_steps=20"]


def sweep(tree: Path, args: list[str], out: Path, pool: Path) -> float:
    """One ``multiview sweep`` of the package in ``tree``; returns its wall time (s)."""
    cmd = [sys.executable, "-m", "multiview", "sweep", *args, "--device", "cpu", "--out", str(out),
           "--teacher-pool", str(pool)]
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=tree, env={**env, "PYTHONPATH": str(tree)}, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"Error: {' '.join(cmd)} failed in {tree}:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - start


def network_steps(out: Path, pool: Path) -> dict[str, int]:
    """Network-steps: those the networks needed (each its own steps) and those the baseline computes for them (each
    population as many steps as its longest-running member), students and teachers."""
    results = json.loads((out / "results.json").read_text())
    runs = {s["trained_as"]: s["steps"] for s in results["students"] if s["seed"] == results["seeds_done"][0]}
    teachers = torch.load(next(pool.glob("seed*.pt")), weights_only=True)["steps"]
    return {"needed": sum(runs.values()) + sum(teachers),
            "population": len(runs) * max(runs.values()) + len(teachers) * max(teachers)}


def fkd_records(out: Path) -> list[dict]:
    return [s for s in json.loads((out / "results.json").read_text())["students"] if s["method"] == "fkd"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", default="7e2dd57", help="commit of the engine before the change")
    ap.add_argument("--candidate", default="HEAD", help="commit of the exact engine")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes (checks the script, times nothing useful)")
    ap.add_argument("--output", type=Path, default=None, help="[benchmarks/results/engine_cpu.json]")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_engine_"))
    output = a.output or (work if a.smoke else ROOT / "benchmarks" / "results") / "engine_cpu.json"
    trees = {"baseline": work / "baseline", "exact": work / "exact"}
    commits = {"baseline": a.baseline, "exact": a.candidate}
    for name, tree in trees.items():
        commits[name] = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", commits[name]], check=True,
                                       capture_output=True, text=True).stdout.strip()
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), commits[name]], check=True,
                       capture_output=True)
    report: dict = {"device": "cpu", "device_name": device_name(torch.device("cpu")), "cpus": os.cpu_count(),
                    "torch": torch.__version__, "commits": commits, "smoke": a.smoke, "cases": {}}
    try:
        for i, (case, args) in enumerate(CASES.items()):
            args = args + (SMOKE if a.smoke else [])
            order = ["exact", "baseline"] if i % 2 == 0 else ["baseline", "exact"]
            row: dict = {"args": args, "order": order}
            for name in order:
                out, pool = work / case / name, work / case / f"{name}-teachers"
                wall = sweep(trees[name], args, out, pool)
                alone = work / case / f"{name}-fkd-alone"
                solo = [*args[:args.index("--methods")], "--methods", "fkd", *args[args.index("--methods") + 2:]]
                sweep(trees[name], solo, alone, pool)
                row[name] = {"wall_s": round(wall, 1), "network_steps": network_steps(out, pool),
                             "fkd_alone_equals_fkd_in_the_sweep": fkd_records(alone) == fkd_records(out)}
                print(case, name, row[name], flush=True)
            row["speedup"] = round(row["baseline"]["wall_s"] / row["exact"]["wall_s"], 2)
            row["network_steps_ratio"] = round(row["baseline"]["network_steps"]["population"]
                                               / row["exact"]["network_steps"]["needed"], 2)
            report["cases"][case] = row
            write_json(output, report)
    finally:
        for tree in trees.values():
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], capture_output=True)
    print(json.dumps({c: {k: r[k] for k in ("speedup", "network_steps_ratio")} for c, r in report["cases"].items()}))


if __name__ == "__main__":
    main()
