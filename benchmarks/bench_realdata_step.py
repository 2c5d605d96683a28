"""Time one training step of each method: resnet32x4 teacher -> resnet8x4 student on CIFAR-shaped random data.

Every step is a real :meth:`realdata.engine.Trainer.train_step` (crop, flip, normalise, forward through the student
and the frozen teacher, the named losses, backward, SGD). Methods are interleaved within each repeat (in a rotated
order), so a machine getting slower or faster affects them alike; the median over repeats is reported, as seconds,
images/s and the ratio to ``ce`` (the student alone), plus the FKD / KD ratio (goal: <= 1.15). Results go to
``benchmarks/results/realdata_step_<device type>.json``.

    .venv/bin/python benchmarks/bench_realdata_step.py             # ~1-2 minutes on a 2-core CPU
    .venv/bin/python benchmarks/bench_realdata_step.py --repeats 50 --device cuda
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fkdapp.runtime import device_name, resolve_device  # noqa: E402
from realdata.config import TrainConfig  # noqa: E402
from realdata.data import ImageData  # noqa: E402
from realdata.engine import Trainer  # noqa: E402
from realdata.methods import METHODS  # noqa: E402
from realdata.models import build  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teacher", default="resnet32x4")
    ap.add_argument("--student", default="resnet8x4")
    ap.add_argument("--methods", default="fkd,kd,sp,ce", help="comma-separated; ce is always added")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--no-amp", action="store_true", help="fp32 instead of bf16 autocast (CUDA)")
    ap.add_argument("--no-channels-last", action="store_true", help="contiguous tensors (CUDA)")
    ap.add_argument("--out", default=None, help="results JSON [default: benchmarks/results/realdata_step_<dev>.json]")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    methods = list(dict.fromkeys([*args.methods.split(","), "ce"]))
    print(f"device: {device} ({device_name(device)}), torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"{args.teacher} -> {args.student}, batch {args.batch_size}", flush=True)

    g = torch.Generator().manual_seed(0)
    n = 8 * args.batch_size
    x = torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
    y = torch.randint(0, 100, (n,), generator=g)
    data = ImageData("cifar100", x, y, x[:8], y[:8], 100, (0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761))
    data = data.to(device)
    torch.manual_seed(1)
    teacher = build(args.teacher, num_classes=100)
    trainers = {}
    for m in methods:
        teachers = [teacher] if METHODS[m].NEEDS.teacher else []
        config = TrainConfig(model=args.student, dataset="cifar100", method=m, teachers=("bench",) * len(teachers),
                             teacher_archs=(args.teacher,) * len(teachers), batch_size=args.batch_size,
                             compile=args.compile, amp=not args.no_amp, channels_last=not args.no_channels_last,
                             device=str(device))
        torch.manual_seed(0)
        student = build(args.student, num_classes=100)
        trainers[m] = Trainer(config, METHODS[m](student, teachers, **config.params), data, device=device)

    def step(m: str, i: int) -> float:
        idx = torch.arange(i * args.batch_size, (i + 1) * args.batch_size, device=device) % n
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        row = trainers[m].train_step(data.train_x[idx], data.train_y[idx])
        row["total"].item()  # waits for the step to finish
        return time.perf_counter() - start

    times: dict[str, list[float]] = {m: [] for m in methods}
    for r in range(args.warmup + args.repeats):
        order = methods[r % len(methods):] + methods[: r % len(methods)]
        for m in order:
            t = step(m, r)
            if r >= args.warmup:
                times[m].append(t)
        if r >= args.warmup:
            print(f"repeat {r - args.warmup + 1}/{args.repeats}: " +
                  ", ".join(f"{m} {times[m][-1]:.3f}s" for m in methods), flush=True)

    med = {m: statistics.median(ts) for m, ts in times.items()}
    results = {
        m: {"median_s": med[m], "min_s": min(times[m]), "images_per_s": args.batch_size / med[m],
            "ratio_to_ce": med[m] / med["ce"], "times_s": times[m]}
        for m in methods
    }
    report = {"device": str(device), "device_name": device_name(device), "torch": torch.__version__,
              "threads": torch.get_num_threads(), "teacher": args.teacher, "student": args.student,
              "batch_size": args.batch_size, "repeats": args.repeats, "compile": args.compile,
              "amp": not args.no_amp, "channels_last": not args.no_channels_last, "results": results,
              "peak_memory_bytes": torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None}
    print(f"\n{'method':8s} {'median s':>9s} {'img/s':>8s} {'x ce':>6s}")
    for m in methods:
        r = results[m]
        print(f"{m:8s} {r['median_s']:9.4f} {r['images_per_s']:8.1f} {r['ratio_to_ce']:6.2f}")
    if "fkd" in med and "kd" in med:
        report["fkd_over_kd"] = med["fkd"] / med["kd"]
        print(f"fkd / kd: {report['fkd_over_kd']:.3f} (goal <= 1.15)")
    out = Path(args.out) if args.out else Path(__file__).resolve().parent / "results" / \
        f"realdata_step_{device.type}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written: {out}")


if __name__ == "__main__":
    main()
