"""A small sweep of FKD's weights (lambda on the kernel distance, beta on the feature regulariser) on Fashion-MNIST.

A resnet20 teacher is trained with cross-entropy, then resnet8 students are distilled from it with FKD for each
(lambda, beta), next to a student alone (ce) and a KD student, all with the standard recipe (batch 64, lr 0.05) for
``--epochs`` epochs. Run folders go under ``--root`` (a finished run is reused, so the sweep can be stopped and
started again); the table of test accuracies is printed and written to benchmarks/results/fkd_sweep.json.

    .venv/bin/python benchmarks/sweep_fkd_weights.py            # about 40 minutes on a 2-core CPU
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fkdapp.runtime import device_name, resolve_device  # noqa: E402
from realdata.config import TrainConfig  # noqa: E402
from realdata.engine import run_training  # noqa: E402
from realdata.runs import RunDir

LAMBDAS = (1.0, 10.0, 100.0, 1000.0)
BETAS = (1e-4, 1e-3, 1e-2)


def run(root: Path, name: str, **kw) -> dict:
    out = root / name
    config = TrainConfig(dataset="fashion_mnist", **kw)
    t0 = time.perf_counter()
    summary = run_training(config, out, resume=RunDir(out).is_run())
    rows = RunDir(out).read_metrics()
    result = {"run": name, "method": config.method, "params": config.params, "seed": config.seed,
              "epochs": config.epochs, "test_acc": summary["last_acc"], "losses": rows[-1]["losses"],
              "train_acc": rows[-1]["train_acc"], "images_per_s": rows[-1]["images_per_s"],
              "seconds": round(time.perf_counter() - t0, 1)}
    print(json.dumps(result), flush=True)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="runs/fkd_sweep")
    ap.add_argument("--epochs", type=int, default=2,
                    help="student epochs (2: lr 0.05, then 0.005 by the scaled milestone, for a stable final accuracy)")
    ap.add_argument("--teacher-epochs", type=int, default=2)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "fkd_sweep.json"))
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    root = Path(args.root)
    common = {"device": args.device, "epochs": args.epochs}
    teacher = run(root, "teacher_resnet20", model="resnet20", method="ce", epochs=args.teacher_epochs,
                  device=args.device)
    teacher_ckpt = str(root / "teacher_resnet20" / "last.pt")
    results = [teacher]
    for seed in args.seeds:
        student = {"model": "resnet8", "seed": seed, **common}
        distil = {**student, "teachers": (teacher_ckpt,)}
        tag = f"e{args.epochs}_s{seed}"
        results.append(run(root, f"ce_{tag}", method="ce", **student))
        results.append(run(root, f"kd_{tag}", method="kd", **distil))
        accs = {}
        for lam in LAMBDAS:
            r = run(root, f"fkd_l{lam:g}_b0_{tag}", method="fkd", params={"lambda": lam, "feature_reg": 0.0}, **distil)
            results.append(r)
            accs[lam] = r["test_acc"]
        best = max(accs, key=accs.get)
        for beta in BETAS:
            results.append(run(root, f"fkd_l{best:g}_b{beta:g}_{tag}", method="fkd",
                               params={"lambda": best, "feature_reg": beta}, **distil))
    device = resolve_device(args.device)
    report = {"device": device_name(device), "torch_threads": torch.get_num_threads(), "dataset": "fashion_mnist",
              "teacher": "resnet20", "student": "resnet8", "results": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n{'run':28s} {'test acc':>8s}")
    for r in results:
        print(f"{r['run']:28s} {r['test_acc']:8.2f}")


if __name__ == "__main__":
    main()
