"""Fashion-MNIST through a user's class folders against the built-in loader, in one process on one machine.

Exports the built-in loader's class-balanced ``--train-size`` training images (the same ones ``--train-size`` picks)
and the whole test set as PNG files in ``ROOT/train/<class>/`` and ``ROOT/val/<class>/``, then trains the same
model with the same seed and recipe from each (``--dataset fashion_mnist --train-size N`` and ``--dataset
folder:ROOT``) and reports both test accuracies per seed, their difference, the seconds to load each (the folder:
PNG decoding with Pillow) and their ratio. The folder path differs in the order of its images (sorted by class and
file) and in its per-channel statistics (computed from its training images), so the two runs are not bit-identical:
the question is whether they agree within run-to-run noise. The same folders are also read streamed (``--stream
--image-size 28``: decoded per batch by a DataLoader worker, as RGB, cropped and flipped per image with Pillow).
Results go to ``benchmarks/results/folders_cpu.json``.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_folders.py   # needs dataset-fashion-mnist; ~5 min, 2 cores
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fkdapp.runtime import device_name, write_json  # noqa: E402
from realdata.config import TrainConfig  # noqa: E402
from realdata.data import load_dataset  # noqa: E402
from realdata.data.subsets import balanced_indices  # noqa: E402
from realdata.engine import run_training  # noqa: E402


def export(root: Path, train_size: int, test_size: int | None = None, mode: str = "L") -> None:
    """The built-in training subset (the one ``--train-size`` picks) and the test set (whole, or a class-balanced
    ``test_size`` of it) as PNG class folders, in Pillow ``mode`` ("L": as stored; "RGB": grey as three channels)."""
    from PIL import Image

    data = load_dataset("fashion_mnist", "data")
    idx = balanced_indices(data.train_y, data.num_classes, train_size, 0, "train_size", data.name)
    tidx = slice(None) if test_size is None else \
        balanced_indices(data.test_y, data.num_classes, test_size, 0, "test_size", data.name)
    for split, xs, ys in (("train", data.train_x[idx], data.train_y[idx]), ("val", data.test_x[tidx],
                                                                          data.test_y[tidx])):
        for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
            folder = root / split / f"class{int(y):02d}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(x[0].numpy()).convert(mode).save(folder / f"{i:05d}.png")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train-size", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--model", default="resnet8")
    ap.add_argument("--output", type=Path, default=Path("benchmarks/results/folders_cpu.json"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    seeds = [int(s) for s in a.seeds.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "fmnist_folders"
        start = time.perf_counter()
        export(root, a.train_size)
        export_s = time.perf_counter() - start
        load = {}
        for name, dataset in (("builtin", "fashion_mnist"), ("folder", f"folder:{root}")):
            start = time.perf_counter()
            load_dataset(dataset, "data")
            load[name] = time.perf_counter() - start
        (root / ".fkd_stats.json").unlink(missing_ok=True)
        runs = []
        for seed in seeds:
            row = {"seed": seed}
            for name, fields in (("builtin", {"dataset": "fashion_mnist", "train_size": a.train_size}),
                                 ("folder", {"dataset": f"folder:{root}"}),
                                 ("streamed", {"dataset": f"folder:{root}", "stream": True, "image_size": 28,
                                               "data_workers": 1})):
                config = TrainConfig(model=a.model, epochs=a.epochs, seed=seed, device="cpu", batch_size=64,
                                     data_dir="data", **fields)
                start = time.perf_counter()
                summary = run_training(config, Path(tmp) / f"{name}-s{seed}")
                row[name] = summary["last_acc"]
                row[f"{name}_seconds"] = time.perf_counter() - start
            row["difference"] = row["folder"] - row["builtin"]
            row["streamed_difference"] = row["streamed"] - row["builtin"]
            runs.append(row)
            print(json.dumps(row), flush=True)
    spread = [abs(runs[i]["builtin"] - runs[j]["builtin"]) for i in range(len(runs)) for j in range(i + 1, len(runs))]
    result = {
        "device": device_name(torch.device("cpu")), "torch": torch.__version__, "model": a.model, "epochs": a.epochs,
        "train_size": a.train_size, "test_images": 10000, "runs": runs,
        "mean_difference": statistics.fmean(r["difference"] for r in runs),
        "mean_streamed_difference": statistics.fmean(r["streamed_difference"] for r in runs),
        "builtin_seed_to_seed": max(spread) if spread else None,
        "export_seconds": export_s, "load_seconds": load,
        "load_ratio_folder_over_builtin": load["folder"] / load["builtin"],
        "command": "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_folders.py",
    }
    write_json(a.output, result)
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=1))


if __name__ == "__main__":
    main()
