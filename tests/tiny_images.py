"""Tiny learnable image data sets for the realdata trainer tests, in memory, in the official file formats, or as
a user's class folders of PNG and JPEG files (:func:`make_folders`).

Class k is a bright band at rows 2k and 2k+1 (3x32x32 CIFAR-like or 1x28x28 Fashion-MNIST-like images) over
dark noise, so a few SGD steps of the smallest model already lower the loss.
"""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import torch

from realdata.data import ImageData


def images(n: int, channels: int, size: int, num_classes: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (n, channels, size, size) images and int64 labels of the banded classes."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, num_classes, n)
    x = rng.integers(0, 60, (n, channels, size, size)).astype(np.uint8)
    for i, k in enumerate(y):
        x[i, :, 2 * k : 2 * k + 2, :] = 230
    return x, y.astype(np.int64)


def image_data(n_train: int = 32, n_test: int = 16, channels: int = 3, size: int = 32, seed: int = 0,
               name: str = "cifar10") -> ImageData:
    """An in-memory :class:`ImageData` of banded classes."""
    tx, ty = images(n_train, channels, size, seed=seed)
    vx, vy = images(n_test, channels, size, seed=seed + 1)
    return ImageData(name, torch.from_numpy(tx), torch.from_numpy(ty), torch.from_numpy(vx), torch.from_numpy(vy),
                     num_classes=10, mean=(0.3,) * channels, std=(0.3,) * channels)


def write_cifar10(root: Path, per_batch: int = 8, n_test: int = 16, seed: int = 0) -> Path:
    """``root/cifar-10-batches-py`` in the official pickle format (5 training batches and a test batch)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for i, name in enumerate(names):
        x, y = images(n_test if name == "test_batch" else per_batch, 3, 32, seed=seed + i)
        obj = {b"batch_label": name.encode(), b"labels": y.tolist(), b"data": x.reshape(len(y), 3072),
               b"filenames": [b"x.png"] * len(y)}
        (folder / name).write_bytes(pickle.dumps(obj, protocol=2))
    return root


def write_cifar100(root: Path, n_train: int = 64, n_test: int = 16, seed: int = 0) -> Path:
    """``root/cifar-100-python`` in the official pickle format (``train`` and ``test``, 100 fine classes, of which
    the banded images use the first 10)."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    for i, (name, n) in enumerate((("train", n_train), ("test", n_test))):
        x, y = images(n, 3, 32, seed=seed + i)
        obj = {b"filenames": [b"x.png"] * n, b"batch_label": name.encode(), b"fine_labels": y.tolist(),
               b"coarse_labels": (y // 5).tolist(), b"data": x.reshape(n, 3072)}
        (folder / name).write_bytes(pickle.dumps(obj, protocol=2))
    return root


def write_fashion_mnist(root: Path, n_train: int = 32, n_test: int = 16, seed: int = 0) -> Path:
    """``root/fashion-mnist`` with the four gzipped IDX files."""
    folder = root / "fashion-mnist"
    folder.mkdir(parents=True, exist_ok=True)
    tx, ty = images(n_train, 1, 28, seed=seed)
    vx, vy = images(n_test, 1, 28, seed=seed + 1)
    arrays = {"train-images-idx3-ubyte": tx[:, 0], "train-labels-idx1-ubyte": ty,
              "t10k-images-idx3-ubyte": vx[:, 0], "t10k-labels-idx1-ubyte": vy}
    for stem, arr in arrays.items():
        head = (0x0800 | arr.ndim).to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
        (folder / f"{stem}.gz").write_bytes(gzip.compress(head + arr.astype(np.uint8).tobytes()))
    return root


def write_tiny_data(root: Path) -> Path:
    """Both tiny data sets under ``root``: CIFAR-10 (40 training, 16 test images) and Fashion-MNIST (32, 16)."""
    write_cifar10(root, per_batch=8)
    write_fashion_mnist(root, n_train=32)
    return root


CLASSES = ("cat", "dog", "emu")


def make_folders(root, n_train=8, n_val=4, size=16, modes=("RGB",)):
    """ROOT/train/<class>/*.png|jpg and ROOT/val/<class>/*: each class a colour plus noise (learnable)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("val", n_val)):
        for c, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                base = np.zeros((size, size, 3), np.uint8)
                base[..., c] = 200
                img = np.clip(base + rng.integers(0, 40, base.shape), 0, 255).astype(np.uint8)
                mode = modes[i % len(modes)]
                pil = Image.fromarray(img).convert(mode)
                pil.save(folder / f"{i}.{'jpg' if i % 2 and mode in ('RGB', 'L') else 'png'}")
    return root
