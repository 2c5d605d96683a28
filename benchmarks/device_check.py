"""The GPU path, measured: CUDA tests, CPU-vs-CUDA agreement, multiview and realdata speed, as JSON in one folder.

Parts (each writes ``OUT/<part>.json``; the summary of all goes to ``OUT/device_check.json``):

- ``cuda_tests``: ``pytest -m cuda`` (passed / failed / skipped counts);
- ``agreement``: one multiview population trained the same steps on the CPU and on the device: views learned and
  failure rates compared;
- ``multiview_speed``: population vs a Python loop at M = 1, 4, 16, 64 (``bench_multiview.py``);
- ``k20_sweep``: wall time of ``multiview sweep`` at k = 20, E = 0..6, 16 seeds, fkd and ce (the device's default
  engine: batched on CUDA);
- ``engines``: the same k = 10 sweep (seed 0, E = 0..4, fkd and KD at weight 1) with ``--engine exact`` and
  ``--engine batched`` on the device: wall time of each and how many students' views differ between them;
- ``realdata_*``: images/s of resnet32x4 -> resnet8x4 for ce, kd, fkd, sp, pkt, rkd with bf16 autocast,
  channels_last and torch.compile on and off (``bench_realdata_step.py``), and the device-resident batcher against a
  ``torch.utils.data.DataLoader`` over CPU tensors and against a loop over batches already on the device;
- ``feeding_paths``: ``bench_feeding.py`` on the device with generated PNG class folders: the resident, the
  streamed (``--stream``) and a RepDistiller-style DataLoader loop, images/s of CE, KD and FKD and their ratios.

``--smoke`` runs every part at tiny size on the CPU (under 2 minutes), so the script cannot rot between GPU runs.

    benchmarks/device_check.sh [--smoke] [OUT_DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fkdapp.runtime import device_name, environment, write_json  # noqa: E402
from multiview.config import Config  # noqa: E402
from multiview.data import make_data  # noqa: E402
from multiview.experiment import measure_population  # noqa: E402
from multiview.population import init_weights  # noqa: E402
from multiview.train import cross_entropy, train  # noqa: E402

TINY_MULTIVIEW = ["k=4", "d=32", "P=8", "n_train=60", "n_test=60", "m=2", "max_steps=30", "student_steps=10"]


def run(cmd: list[str], out: Path | None = None) -> dict:
    """Run a command (the toolkit's own CLI or benchmark), time it; the JSON it wrote, if any, comes back."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    result = {"command": " ".join(cmd), "returncode": proc.returncode, "seconds": time.perf_counter() - start}
    if proc.returncode:
        result["stderr_tail"] = proc.stderr[-2000:]
    if out is not None and out.is_file():
        result["result"] = json.loads(out.read_text())
    return result


def engines(py: str, dev: str, out: Path, smoke: bool) -> dict:
    """One sweep under each engine on the device: their wall times, and the students whose views differ."""
    args = ["--teachers", "0-4", "--seeds", "1", "--methods", "fkd,kd:kd_weight=1", "--device", dev]
    args += sum((["--set", s] for s in TINY_MULTIVIEW), []) if smoke else []
    result, views = {}, {}
    for kind in ("batched", "exact"):
        folder = out / f"engine_{kind}"
        result[kind] = run([py, "-m", "multiview", "sweep", *args, "--engine", kind, "--out", str(folder)])
        if folder.joinpath("results.json").is_file():
            students = json.loads(folder.joinpath("results.json").read_text())["students"]
            views[kind] = [(s["trained_as"], s["views_learned"]) for s in students]
    if len(views) == 2:
        result["students"] = len(views["exact"])
        result["students_whose_views_differ"] = sum(a != b for a, b in zip(views["exact"], views["batched"],
                                                                            strict=True))
        result["exact_over_batched_time"] = result["exact"]["seconds"] / result["batched"]["seconds"]
    return result


def cuda_tests(out: Path) -> dict:
    xml = out / "cuda_tests.xml"
    r = run([sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider", f"--junitxml={xml}"])
    suite = ET.parse(xml).getroot().find("testsuite") if xml.is_file() else None
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")} if suite is not None else {}
    return {**r, **counts}


def agreement(device: torch.device, smoke: bool) -> dict:
    """The same population trained on the CPU and on ``device``: views learned and errors."""
    cfg = Config() if not smoke else Config().with_overrides(TINY_MULTIVIEW)
    out = {}
    for dev in (torch.device("cpu"), device):
        data = make_data(cfg, 0, dev)
        w, log = train(init_weights(cfg, list(range(4)), dev), data.train.x, data.train.y,
                       cross_entropy(data.train.y), cfg)
        m = measure_population(cfg, data, w)
        out[dev.type if dev.type not in out else f"{dev.type}2"] = {
            "views_learned": m["learned"].tolist(), "fit_step": log.fit_step,
            "single_view_failure": [r["single_view_failure"] for r in m["reports"]],
        }
    a, b = out.values()
    return {"devices": list(out), "same_views": a["views_learned"] == b["views_learned"],
            "max_failure_difference": max(abs(x - y) for x, y in zip(a["single_view_failure"],
                                                                      b["single_view_failure"], strict=True)),
            "same_fit_steps": a["fit_step"] == b["fit_step"], "runs": out}


def dataloader_vs_device(device: torch.device, smoke: bool) -> dict:
    """Images/s of the same ce step (crop, flip and normalise on the device included) fed three ways: a DataLoader
    over CPU tensors (RepDistiller-style), our device-resident batcher, and a loop over batches already on the
    device in order."""
    from realdata.config import TrainConfig
    from realdata.data import ImageData, batches
    from realdata.engine import Trainer
    from realdata.methods import METHODS
    from realdata.models import build

    bs, steps = (16, 3) if smoke else (128, 50)
    student = "resnet8" if smoke else "resnet8x4"
    n = bs * steps
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
    y = torch.randint(0, 100, (n,), generator=g)
    data = ImageData("cifar100", x, y, x[:8], y[:8], 100, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)).to(device)
    config = TrainConfig(model=student, dataset="cifar100", batch_size=bs, device=str(device))
    trainer = Trainer(config, METHODS["ce"](build(student, num_classes=100)), data, device=device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def timed(feed) -> float:
        trainer.train_step(*next(iter(feed())))  # warm-up
        sync()
        start = time.perf_counter()
        for xb, yb in feed():
            trainer.train_step(xb, yb)
        sync()
        return n / (time.perf_counter() - start)

    cpu_x, cpu_y = x, y

    def loader():
        ds = torch.utils.data.TensorDataset(cpu_x, cpu_y)
        for xb, yb in torch.utils.data.DataLoader(ds, batch_size=bs, shuffle=True, drop_last=True):
            yield xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)

    def batcher():
        for idx in batches(n, bs, trainer.generator):
            yield data.train_x[idx], data.train_y[idx]

    ready = [(data.train_x[i * bs:(i + 1) * bs], data.train_y[i * bs:(i + 1) * bs]) for i in range(steps)]
    rates = {"dataloader": timed(loader), "device_batcher": timed(batcher), "preloaded_loop": timed(lambda: ready)}
    return {"images_per_s": rates, "batcher_over_dataloader": rates["device_batcher"] / rates["dataloader"],
            "batcher_over_preloaded": rates["device_batcher"] / rates["preloaded_loop"], "batch_size": bs,
            "steps": steps, "student": student}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="every part at tiny size on the CPU")
    ap.add_argument("out", nargs="?", default=None, help="output folder [default: $OUT, else benchmarks/results]")
    args = ap.parse_args()
    out = Path(args.out or os.environ.get("OUT") or ROOT / "benchmarks" / "results")
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device("cpu") if args.smoke or not torch.cuda.is_available() else torch.device("cuda")
    py, dev = sys.executable, device.type
    summary: dict = {"smoke": args.smoke, "device": dev, "device_name": device_name(device),
                     "environment": environment(device), "parts": {}}

    def part(name: str, fn) -> None:
        start = time.perf_counter()
        try:
            result = fn()
        except Exception as e:  # one part failing must not lose the others
            result = {"error": f"{type(e).__name__}: {e}"}
        result["part_seconds"] = time.perf_counter() - start
        write_json(out / f"{name}.json", result)
        summary["parts"][name] = result
        print(f"[{name}] {time.perf_counter() - start:.1f}s", {k: v for k, v in result.items()
                                                               if not isinstance(v, (dict, list))}, flush=True)

    part("cuda_tests", lambda: cuda_tests(out))
    part("agreement", lambda: agreement(device, args.smoke))
    mv = out / "multiview_speed_raw.json"
    sizes = "1,2" if args.smoke else "1,4,16,64"
    steps = ["--steps", "2", "--rounds", "1", "--matmuls", "2"] if args.smoke else ["--steps", "20", "--rounds", "3"]
    part("multiview_speed", lambda: run([py, "benchmarks/bench_multiview.py", "--device", dev, "--models", sizes,
                                         *steps, "--out", str(mv)], mv))
    sweep = ["--teachers", "0-1", "--seeds", "1", *sum((["--set", s] for s in TINY_MULTIVIEW), [])] if args.smoke \
        else ["--teachers", "0-6", "--seeds", "16", "--config", "configs/k20.json"]
    part("k20_sweep", lambda: run([py, "-m", "multiview", "sweep", "--methods", "fkd,ce", "--device", dev,
                                   "--out", str(out / "k20_sweep_run"), *sweep]))
    part("engines", lambda: engines(py, dev, out, args.smoke))
    bench = ["--teacher", "resnet8", "--student", "resnet8", "--batch-size", "8", "--repeats", "1"] if args.smoke \
        else ["--repeats", "20", "--batch-size", "128"]
    variants = {"realdata_bf16_cl": [], "realdata_fp32": ["--no-amp", "--no-channels-last"],
                "realdata_bf16": ["--no-channels-last"], "realdata_bf16_cl_compile": ["--compile"]}
    if args.smoke:  # torch.compile on the CPU needs minutes of C++ compilation: left to the GPU run
        variants.pop("realdata_bf16_cl_compile")
    for name, flags in variants.items():
        raw = out / f"{name}_raw.json"
        part(name, lambda raw=raw, flags=flags: run([py, "benchmarks/bench_realdata_step.py", "--device", dev,
                                                     "--methods", "ce,kd,fkd,sp,pkt,rkd", *bench, *flags,
                                                     "--out", str(raw)], raw))
    part("realdata_feeding", lambda: dataloader_vs_device(device, args.smoke))
    feeding = out / "feeding_paths_raw.json"
    size = ["--train-size", "64", "--test-size", "32", "--epochs", "2", "--batch-size", "16", "--workers", "1"] \
        if args.smoke else ["--train-size", "20000", "--test-size", "5000", "--batch-size", "256", "--workers", "8"]
    part("feeding_paths", lambda: run([py, "benchmarks/bench_feeding.py", "--synthetic", "--device", dev, *size,
                                       "--output", str(feeding)], feeding))
    write_json(out / "device_check.json", summary)
    failed = [n for n, r in summary["parts"].items() if r.get("error") or r.get("returncode")
              or r.get("failures") or r.get("errors")]
    print(f"device check on {summary['device_name']}: {len(summary['parts'])} parts, failed: {failed or 'none'}; "
          f"results in {out}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
