"""A user's own images as class folders (the ImageNet layout): ``ROOT/train/<class>/*`` and ``ROOT/val/<class>/*``,
PNG, JPEG, BMP, GIF or WebP, decoded with Pillow into the device-resident uint8 path (:class:`ImageData`) at one
square size. ``--dataset folder:ROOT`` (or ``--dataset ROOT``, a folder); with ``--stream`` the images stay files,
read per batch (:mod:`realdata.data.stream`).

Classes are the ``train`` subfolders in sorted order (the label of a class is its index); ``val`` must hold the same
ones. Grey, palette and RGBA images mixed with RGB are converted to RGB (all grey: one channel). The per-channel
mean and std are computed once from the training images and cached in ``ROOT/.fkd_stats.json`` (keyed by the file
list and size; not written where the folder is read-only). Every bad input is one line naming the file: a corrupt or
truncated image (or, with ``skip_bad``, it is counted and left out), a file that is not an image, an empty class, or
train and val folders with different classes. The files are data: nothing in them is executed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from fkdapp.runtime import WriteError, atomic_write_text
from realdata.data.core import DataError, ImageData, channel_stats

PREFIX = "folder:"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
SPLITS = ("train", "val")


def is_folder_dataset(name: str) -> bool:
    return name.startswith(PREFIX)


def classes_of(root: Path) -> list[str]:
    """The class names (the train split's subfolders, sorted), checked against the val split's."""
    found = {}
    for split in SPLITS:
        folder = root / split
        if not folder.is_dir():
            raise DataError(f"{root} has no {split}/ folder: give a folder holding train/<class>/ and val/<class>/")
        found[split] = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not found[split]:
            raise DataError(f"{folder} has no class folders: put each class's images in {folder}/<class>/")
    if found["train"] != found["val"]:
        only = sorted(set(found["train"]) ^ set(found["val"]))
        raise DataError(f"{root}: train/ and val/ hold different classes ({', '.join(only[:3])} in one only); give "
                        "both the same class folders")
    return found["train"]


def _files(root: Path, split: str, classes: list[str]) -> list[tuple[Path, int]]:
    out = []
    for label, name in enumerate(classes):
        files = sorted(p for p in (root / split / name).iterdir() if p.is_file() and not p.name.startswith("."))
        if not files:
            raise DataError(f"{root / split / name} is an empty class: put its images there, or remove the folder")
        bad = next((p for p in files if p.suffix.lower() not in IMAGE_SUFFIXES), None)
        if bad is not None:
            raise DataError(f"{bad} is not an image ({', '.join(IMAGE_SUFFIXES)}); move it out of the class folder")
        out += [(p, label) for p in files]
    return out


def unreadable() -> tuple[type[Exception], ...]:
    """What Pillow raises for a file that is not a readable image (a corrupt, truncated or oversized one)."""
    from PIL import Image, UnidentifiedImageError

    return UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError


def open_image(path: Path | str, fix: str, mode: str | None = None):
    """The image at ``path``, decoded and converted to ``mode`` (None: "L" for grey images, else "RGB"); a file that
    cannot be decoded is one DataError line naming it, then ``fix``."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.load()
            return img.convert(mode or ("L" if img.mode in ("L", "I;16", "1") else "RGB"))
    except unreadable() as e:
        raise DataError(f"{path} is not a readable image ({type(e).__name__}: {str(e)[:60]}); {fix}, or give "
                        "--skip-bad-images") from None


def _decode(path: Path, size: int | None) -> np.ndarray:
    """(H, W, 3) uint8 RGB (or (H, W, 1) grey with ``size`` given as-is), resized to ``size`` x ``size``."""
    from PIL import Image

    img = open_image(path, "replace or remove it")
    if size is not None and img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BILINEAR)
    arr = np.asarray(img, dtype=np.uint8)
    return arr[..., None] if arr.ndim == 2 else arr


def check_fits(n: int, shape: tuple[int, ...], where: object) -> None:
    """A one-line DataError, before any image is decoded, where ``n`` images of ``shape`` (H, W, C) held as uint8
    (and decoded once more on the way) cannot fit in this machine's free memory."""
    from fkdapp.runtime import available_memory

    need, have = 2 * n * int(np.prod(shape)), available_memory()
    if have is not None and need > have:
        raise DataError(f"{where}: {n} images of {shape[0]}x{shape[1]} need about {need / 2**30:.1f} GiB and this "
                        f"machine has {have / 2**30:.1f} GiB free; stream them (--stream) or give a smaller "
                        "--image-size")


def load_image_folder(name: str, image_size: int | None = None, skip_bad: bool = False, stream: bool = False,
                      workers: int = 0) -> ImageData:
    """``folder:ROOT`` -> the train and val splits as uint8 ``(N, C, S, S)`` tensors; S is ``image_size`` or, where
    every image has one size, that size (else a one-line error asking for --image-size). With ``stream`` the images
    stay files (:mod:`realdata.data.stream`, decoded by ``workers`` processes) and ``image_size`` is needed."""
    root = Path(name[len(PREFIX):]).expanduser()
    if not root.is_dir():
        raise DataError(f"data folder {root} not found (--dataset folder:ROOT, ROOT holding train/ and val/)")
    classes = classes_of(root)
    splits = {s: _files(root, s, classes) for s in SPLITS}
    if stream:
        return _streamed(name, root, classes, splits, image_size, skip_bad, workers)
    check_fits(sum(map(len, splits.values())), _decode(splits["train"][0][0], image_size).shape, root)
    arrays: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    labels: dict[str, list[int]] = {s: [] for s in SPLITS}
    skipped: list[str] = []
    for split, files in splits.items():
        for path, label in files:
            try:
                arrays[split].append(_decode(path, image_size))
            except DataError:
                if not skip_bad:
                    raise
                skipped.append(str(path))
                continue
            labels[split].append(label)
    shapes = {a.shape[:2] for s in SPLITS for a in arrays[s]}
    if len(shapes) > 1:
        sizes = ", ".join(f"{h}x{w}" for h, w in sorted(shapes)[:3])
        raise DataError(f"{root}: the images have {len(shapes)} sizes ({sizes}...); give --image-size N to resize them "
                        "all to N x N")
    grey = all(a.shape[-1] == 1 for s in SPLITS for a in arrays[s])
    tensors = {s: torch.from_numpy(np.stack([a if grey else np.broadcast_to(a, (*a.shape[:2], 3)) for a in arrays[s]])
                                   ).permute(0, 3, 1, 2).contiguous() for s in SPLITS}
    mean, std = _stats(root, tensors["train"], splits["train"], image_size)
    return ImageData(name, tensors["train"], torch.tensor(labels["train"]), tensors["val"], torch.tensor(labels["val"]),
                     num_classes=len(classes), mean=mean, std=std, classes=tuple(classes), skipped=tuple(skipped),
                     source=str(root.resolve()))


def _streamed(name: str, root: Path, classes: list[str], splits: dict[str, list[tuple[Path, int]]],
              image_size: int | None, skip_bad: bool, workers: int) -> ImageData:
    """The folder as :class:`~realdata.data.stream.ImageFiles` (RGB at ``image_size``), its statistics from at most
    :data:`STATS_IMAGES` training images spread over the set (cached like the resident path's)."""
    from realdata.data.stream import ImageFiles

    if image_size is None:
        raise DataError(f"{root}: a streamed folder needs --image-size N (the side its images are cropped to, e.g. 224 "
                        "for ImageNet)")
    skipped: list[str] = []
    if skip_bad:
        from realdata.data.stream import check_headers

        for split in SPLITS:
            splits[split], bad = check_headers(splits[split])
            skipped += bad
    files = {s: ImageFiles([str(p) for p, _ in splits[s]], image_size, workers=workers) for s in SPLITS}
    labels = {s: torch.tensor([label for _, label in splits[s]]) for s in SPLITS}
    n = len(files["train"])
    sample = files["train"][np.unique(np.linspace(0, n - 1, min(n, STATS_IMAGES)).round().astype(np.int64))]
    mean, std = _stats(root, sample, splits["train"], f"stream:{image_size}")
    return ImageData(name, files["train"], labels["train"], files["val"], labels["val"], num_classes=len(classes),
                     mean=mean, std=std, classes=tuple(classes), skipped=tuple(skipped), source=str(root.resolve()))


#: A streamed folder's per-channel statistics come from this many training images at most.
STATS_IMAGES = 2000


def _stats(root: Path, train_x: object, files: list[tuple[Path, int]], size: int | str | None
           ) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of the training images in [0, 1] (``train_x``: a uint8 tensor, or image files
    decoded here), cached beside the data."""
    key = hashlib.sha256(json.dumps([str(size), *(f"{p.name}:{p.stat().st_size}" for p, _ in files)]).encode()
                         ).hexdigest()[:16]
    cache = root / ".fkd_stats.json"
    try:
        saved = json.loads(cache.read_text()) if cache.is_file() else {}
        if isinstance(saved, dict) and saved.get("key") == key:
            return tuple(saved["mean"]), tuple(saved["std"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    from realdata.data.stream import materialize

    mean, std = channel_stats(materialize(train_x))
    with contextlib.suppress(WriteError):  # a read-only data folder: computed again next time
        atomic_write_text(cache, json.dumps({"key": key, "mean": mean, "std": std}) + "\n")
    return mean, std


__all__ = ["PREFIX", "classes_of", "is_folder_dataset", "load_image_folder"]
