"""Three ways to feed the same images to the same model and loss, side by side in one process on one machine.

Fashion-MNIST's class-balanced ``--train-size`` training images and ``--test-size`` test images are exported as RGB
PNG class folders; then, on the same folder, the same model (resnet8, 3 channels, 28 x 28) and the same batch size:

(a) **resident**: ``realdata`` with ``--dataset folder:ROOT`` (decoded once, held as a uint8 tensor, cropped and
    flipped in batches on the device);
(b) **streamed**: ``realdata`` with ``--stream`` (decoded and augmented per image by ``--workers`` DataLoader
    worker processes, every batch);
(c) **RepDistiller-style**: the loop a user would otherwise write, as RepDistiller's and mdistiller's CIFAR loaders
    do it: a map-style Dataset of (file, label) whose ``__getitem__`` decodes one PNG, pads and crops it, flips it
    and normalises it, a DataLoader with the same workers, and the same SGD step with the same loss.

Each trains a teacher (CE) and a student by KD and by FKD (from the same teacher) for ``--epochs`` epochs, the first
taken as warm-up; reported: training images/s of the later epochs, and evaluation images/s over the test folder.
Ratios are measured in this run; absolute numbers drift on a shared machine. Results go to
``benchmarks/results/feeding_cpu.json``. ``--synthetic`` uses generated images instead of Fashion-MNIST (for a
machine without it: the device check runs it on the GPU, ``--device cuda``).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_feeding.py   # needs dataset-fashion-mnist; ~6 min, 2 cores
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_folders import export  # noqa: E402  (its folder is on the path when run as a script)

from fkd import fkd_loss, kd_loss  # noqa: E402
from fkdapp.runtime import device_name, write_json  # noqa: E402
from realdata.checkpoints import load_model  # noqa: E402
from realdata.config import TrainConfig  # noqa: E402
from realdata.data import load_dataset  # noqa: E402
from realdata.engine import run_training  # noqa: E402
from realdata.models import build  # noqa: E402


def export_synthetic(root: Path, train_size: int, test_size: int, classes: int = 10, size: int = 28) -> None:
    """Generated RGB PNG class folders (class k a bright band at rows 2k, 2k+1 over noise), for a machine without
    Fashion-MNIST."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", train_size), ("val", test_size)):
        for i in range(n):
            k = i % classes
            x = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
            x[2 * k: 2 * k + 2] = 230
            folder = root / split / f"class{k:02d}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(x).save(folder / f"{i:05d}.png")


class RepDistillerFolder(Dataset):
    """The baseline's Dataset: one PNG decoded, padded by 4 and cropped, flipped and normalised per ``__getitem__``
    (RepDistiller's ``transforms.Compose([RandomCrop(32, padding=4), RandomHorizontalFlip(), ToTensor(),
    Normalize(...)])``, written with Pillow and numpy)."""

    def __init__(self, root: Path, split: str, mean, std, train: bool) -> None:
        classes = sorted(p.name for p in (root / split).iterdir())
        self.files = [(p, c) for c, name in enumerate(classes) for p in sorted((root / split / name).iterdir())]
        self.mean, self.std, self.train = np.array(mean, np.float32), np.array(std, np.float32), train

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        from PIL import Image

        path, label = self.files[i]
        x = np.asarray(Image.open(path).convert("RGB"), np.float32) / 255.0  # (H, W, 3)
        if self.train:
            h, w = x.shape[:2]
            padded = np.zeros((h + 8, w + 8, 3), np.float32)
            padded[4:4 + h, 4:4 + w] = x
            dy, dx = np.random.randint(0, 9, 2)
            x = padded[dy:dy + h, dx:dx + w]
            if np.random.rand() < 0.5:
                x = x[:, ::-1]
        x = (x - self.mean) / self.std
        return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1))), label


def baseline(root: Path, method: str, teacher: Path | None, epochs: int, batch: int, workers: int, mean, std,
             device: torch.device, lr: float = 0.05) -> dict:
    """The RepDistiller-style loop: images/s of the epochs after the first, and of one evaluation pass."""
    torch.manual_seed(0)
    student = build("resnet8", num_classes=10, in_channels=3).to(device)
    t = None if teacher is None else load_model(teacher).model.to(device).eval()
    pin = device.type == "cuda"
    opt = torch.optim.SGD(student.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    train = DataLoader(RepDistillerFolder(root, "train", mean, std, True), batch_size=batch, shuffle=True,
                       num_workers=workers, drop_last=True, persistent_workers=workers > 0, pin_memory=pin)
    rates = []
    for _ in range(epochs):
        student.train()
        start, n = time.perf_counter(), 0
        for x, y in train:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            logits, pooled, _ = student.forward_features(x)
            loss = F.cross_entropy(logits, y)
            if t is not None:
                with torch.no_grad():
                    t_logits, t_pooled, _ = t.forward_features(x)
                loss = loss * (0.1 if method == "kd" else 1.0) + (
                    0.9 * kd_loss(logits, t_logits, 4.0) if method == "kd" else 100.0 * fkd_loss(pooled, t_pooled))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            n += x.shape[0]
        sync(device)
        rates.append(n / (time.perf_counter() - start))
    test = DataLoader(RepDistillerFolder(root, "val", mean, std, False), batch_size=1000, num_workers=workers,
                      pin_memory=pin)
    student.eval()
    start, n = time.perf_counter(), 0
    with torch.no_grad():
        for x, _ in test:
            student(x.to(device, non_blocking=True))
            n += x.shape[0]
    sync(device)
    return {"train_images_per_s": float(np.mean(rates[1:])), "eval_images_per_s": n / (time.perf_counter() - start)}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def ours(root: Path, out: Path, method: str, teacher: Path | None, epochs: int, batch: int, workers: int,
         stream: bool, device: torch.device) -> dict:
    """A ``realdata`` run (resident or streamed): images/s of the epochs after the first, and of its last
    evaluation (the whole test folder)."""
    fields = {"method": method, "teachers": (str(teacher),)} if teacher is not None else {}
    config = TrainConfig(model="resnet8", dataset=f"folder:{root}", epochs=epochs, batch_size=batch, device=str(device),
                         stream=stream, image_size=28, data_workers=workers, data_dir=str(root), **fields)
    run_training(config, out)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    n_test = sum(1 for _ in (root / "val").rglob("*.png"))
    return {"train_images_per_s": float(np.mean([r["images_per_s"] for r in rows[1:]])),
            "eval_images_per_s": n_test / rows[-1]["eval_seconds"]}


def measure(root: Path, tmp: Path, epochs: int, batch: int, workers: int, device: torch.device) -> dict:
    """The three paths' rows (CE teacher, then KD and FKD from it) on the class folders ``root``, with ratios."""
    stats = load_dataset(f"folder:{root}", "x")
    teacher, rows = tmp / "teacher", {}
    for method in ("ce", "kd", "fkd"):
        t = None if method == "ce" else teacher / "last.pt"
        row = {
            "resident": ours(root, teacher if method == "ce" else tmp / f"r-{method}", method, t, epochs, batch,
                             workers, False, device),
            "streamed": ours(root, tmp / f"s-{method}", method, t, epochs, batch, workers, True, device),
            "repdistiller_style": baseline(root, method, t, epochs, batch, workers, stats.mean, stats.std, device),
        }
        for path in ("resident", "streamed"):
            for what in ("train", "eval"):
                row[f"{path}_over_baseline_{what}"] = row[path][f"{what}_images_per_s"] / \
                    row["repdistiller_style"][f"{what}_images_per_s"]
        rows[method] = row
        print(method, json.dumps(row), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train-size", type=int, default=2000)
    ap.add_argument("--test-size", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--workers", type=int, default=1, help="DataLoader workers of (b) and (c) [default: 1, of 2 cores]")
    ap.add_argument("--synthetic", action="store_true", help="generated images instead of Fashion-MNIST")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--output", type=Path, default=Path("benchmarks/results/feeding_cpu.json"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    device = torch.device(a.device)
    result: dict = {"device": device_name(device), "torch": torch.__version__, "model": "resnet8",
                    "images": ("generated" if a.synthetic else "Fashion-MNIST") + " as RGB PNG class folders, 28 x 28",
                    "train_size": a.train_size, "test_size": a.test_size, "epochs": a.epochs,
                    "batch_size": a.batch_size, "workers": a.workers,
                    "command": "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_feeding.py"}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "images"
        if a.synthetic:
            export_synthetic(root, a.train_size, a.test_size)
        else:
            export(root, a.train_size, a.test_size, "RGB")
        result["rows"] = measure(root, Path(tmp), a.epochs, a.batch_size, a.workers, device)
    write_json(a.output, result)


if __name__ == "__main__":
    main()
