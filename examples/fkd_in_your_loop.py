"""FKD in a plain PyTorch training loop: a small CNN of your own distilled from a teacher with fkd.FKDLoss, the
features read by layer name with fkd.FeatureTap. Nothing here is specific to the toolkit but those two names (and
the Fashion-MNIST loader: any (N, C, H, W) image tensors and labels will do).

    python examples/fkd_in_your_loop.py --data-dir /usr/share/datasets/fashion-mnist

It trains a teacher CNN with cross-entropy, then two students from the same initialisation, one with cross-entropy
alone and one with cross-entropy + FKD, and prints their test accuracy (a few minutes on a CPU at the defaults).
"""

from __future__ import annotations

import argparse
import time
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from fkd import FeatureTap, FKDLoss
from realdata.data import load_dataset


def cnn(width: int, num_classes: int = 10) -> nn.Module:
    """A small CNN of (B, 1, 28, 28) images; its layer "flatten" gives the pooled (B, 2 * width) features."""
    return nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(1, width, 3, padding=1)), ("bn1", nn.BatchNorm2d(width)), ("relu1", nn.ReLU()),
        ("down", nn.MaxPool2d(2)),
        ("conv2", nn.Conv2d(width, 2 * width, 3, padding=1)), ("bn2", nn.BatchNorm2d(2 * width)), ("relu2", nn.ReLU()),
        ("pool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten()),
        ("fc", nn.Linear(2 * width, num_classes)),
    ]))


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        correct = sum((model(xb).argmax(1) == yb).sum().item() for xb, yb in zip(x.split(500), y.split(500),
                                                                                  strict=True))
    model.train()
    return 100.0 * correct / len(y)


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, batch: int, seed: int,
          teacher: nn.Module | None = None, weight: float = 100.0) -> nn.Module:
    """SGD on cross-entropy, plus FKD against ``teacher``'s features when one is given."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    fkd = FKDLoss(weight=weight, feature_reg=1e-4)
    student_tap = FeatureTap(model, "flatten")  # the pooled features, by layer name
    teacher_tap = None if teacher is None else FeatureTap(teacher, "flatten")
    for _ in range(steps):
        idx = torch.randint(len(y), (batch,), generator=g)
        logits, h_s = student_tap(x[idx])
        loss = F.cross_entropy(logits, y[idx])
        if teacher_tap is not None:
            with torch.no_grad():
                _, h_t = teacher_tap(x[idx])
            loss = loss + fkd(h_s, h_t).total
        opt.zero_grad()
        loss.backward()
        opt.step()
    student_tap.remove()
    if teacher_tap is not None:
        teacher_tap.remove()
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default="data")
    ap.add_argument("--train-size", type=int, default=2000, help="the students' images (the teacher sees all)")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    start = time.time()
    data = load_dataset("fashion_mnist", a.data_dir)
    mean, std = data.train_x.float().mean(), data.train_x.float().std()
    x, xt = (data.train_x.float() - mean) / std, (data.test_x.float() - mean) / std
    y, yt = data.train_y, data.test_y
    torch.manual_seed(a.seed)
    teacher = train(cnn(32), x, y, a.steps, a.batch, a.seed).eval()
    print(f"teacher: {accuracy(teacher, xt, yt):.2f}% test accuracy")
    small_x, small_y = x[: a.train_size], y[: a.train_size]
    for name, t in (("student alone", None), ("student with FKD", teacher)):
        torch.manual_seed(a.seed + 1)  # the same initialisation for both students
        student = train(cnn(8), small_x, small_y, a.steps, a.batch, a.seed + 1, teacher=t)
        print(f"{name}: {accuracy(student, xt, yt):.2f}% test accuracy")
    print(f"({time.time() - start:.0f} s)")


if __name__ == "__main__":
    main()
