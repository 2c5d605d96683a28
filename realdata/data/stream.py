"""The streaming path: a user's class folders read image by image, for data that does not fit in memory (ImageNet).

``--stream`` (with ``--dataset folder:ROOT``) keeps the images as files: :class:`ImageFiles` stands in for the uint8
``(N, C, S, S)`` tensor of the device-resident path (indexing gives a subset, so class-balanced subsets and
validation splits work unchanged), and a ``torch.utils.data.DataLoader`` with worker processes and pinned memory
decodes and augments each batch. Augmentation is per image, on the CPU, as the reference loaders do it:
RandomResizedCrop (scale 0.08-1, ratio 3/4-4/3) and a flip for images larger than :data:`SMALL` pixels (evaluation:
the shorter side resized to S x 256/224, then the centre S x S), a random crop after zero padding by 4 and a flip
for small ones (evaluation: resized to S x S).

Every image's augmentation is drawn from its own generator, seeded by the epoch's seed and the image's index, so a
batch is a function of the run's seed, the epoch and the batch order only: the same whatever the number of workers,
and a resumed run (whose epoch seed and order are in last.pt) sees the batches of a run never stopped. Under
torchrun each rank decodes only its shard of every global batch. Images are RGB (grey and RGBA converted). A file
that cannot be decoded mid-run stops the run with one line naming it (last.pt is whole; move the file out and
resume); ``--skip-bad-images`` checks every file's header when the folder is listed and leaves out the bad ones.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from realdata.data.core import DataError
from realdata.data.folders import open_image, unreadable

#: Images of at most this many pixels a side are "small" (CIFAR-like: crop after padding); larger ones are
#: ImageNet-like (RandomResizedCrop).
SMALL = 64
EVAL_RATIO = 256 / 224
SCALE, RATIO = (0.08, 1.0), (3 / 4, 4 / 3)


class ImageFiles:
    """Image files standing in for a uint8 ``(N, C, S, S)`` tensor: ``files[idx]`` is the subset (an index tensor,
    array or slice), ``shape`` its would-be shape; nothing is decoded until a loader or :meth:`load` asks."""

    def __init__(self, paths: Sequence[str], size: int, index: np.ndarray | None = None, workers: int = 0) -> None:
        self.paths, self.size, self.workers = tuple(paths), size, workers
        self.index = np.arange(len(self.paths)) if index is None else np.asarray(index, dtype=np.int64)

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self.index), 3, self.size, self.size))

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, key: object) -> ImageFiles:
        if isinstance(key, torch.Tensor):
            key = key.cpu().numpy()
        return ImageFiles(self.paths, self.size, self.index[key], self.workers)

    def to(self, *args: object, **kwargs: object) -> ImageFiles:
        """The files stay files (a loader moves each batch to the device)."""
        return self

    def path(self, i: int) -> str:
        return self.paths[int(self.index[i])]

    def load(self) -> torch.Tensor:
        """All of them decoded at evaluation size: uint8 ``(N, 3, S, S)`` (for a few images: heads, checks)."""
        return torch.stack([eval_view(self.path(i), self.size) for i in range(len(self))]) if len(self) else \
            torch.zeros(0, 3, self.size, self.size, dtype=torch.uint8)


def materialize(x: torch.Tensor | ImageFiles) -> torch.Tensor:
    """A uint8 image tensor: ``x`` itself, or image files decoded at evaluation size."""
    return x.load() if isinstance(x, ImageFiles) else x


def _open(path: str):
    return open_image(path, "move it out and resume", "RGB")


def _tensor(img) -> torch.Tensor:
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)


def eval_view(path: str, size: int) -> torch.Tensor:
    """The evaluation view of an image: uint8 ``(3, S, S)``."""
    from PIL import Image

    img = _open(path)
    if size <= SMALL:
        return _tensor(img.resize((size, size), Image.Resampling.BILINEAR))
    w, h = img.size
    short = round(size * EVAL_RATIO)
    scale = short / min(w, h)
    img = img.resize((max(short, round(w * scale)), max(short, round(h * scale))), Image.Resampling.BILINEAR)
    w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    return _tensor(img.crop((left, top, left + size, top + size)))


def _resized_crop_box(w: int, h: int, rng: random.Random) -> tuple[int, int, int, int]:
    """RandomResizedCrop's box (left, top, width, height): 10 tries at a random area and aspect ratio, else the
    centre crop at the nearest allowed ratio."""
    area = w * h
    for _ in range(10):
        target = area * rng.uniform(*SCALE)
        ratio = math.exp(rng.uniform(math.log(RATIO[0]), math.log(RATIO[1])))
        cw, ch = round(math.sqrt(target * ratio)), round(math.sqrt(target / ratio))
        if 0 < cw <= w and 0 < ch <= h:
            return rng.randint(0, w - cw), rng.randint(0, h - ch), cw, ch
    ratio = w / h
    if ratio < RATIO[0]:
        cw, ch = w, round(w / RATIO[0])
    elif ratio > RATIO[1]:
        cw, ch = round(h * RATIO[1]), h
    else:
        cw, ch = w, h
    return (w - cw) // 2, (h - ch) // 2, cw, ch


def train_view(path: str, size: int, rng: random.Random) -> torch.Tensor:
    """A training view of an image, drawn from ``rng``: uint8 ``(3, S, S)``."""
    from PIL import Image, ImageOps

    img = _open(path)
    if size > SMALL:
        left, top, cw, ch = _resized_crop_box(*img.size, rng)
        img = img.resize((size, size), Image.Resampling.BILINEAR, box=(left, top, left + cw, top + ch))
    else:
        if img.size != (size, size):
            img = img.resize((size, size), Image.Resampling.BILINEAR)
        padded = Image.new("RGB", (size + 8, size + 8))
        padded.paste(img, (4, 4))
        dx, dy = rng.randint(0, 8), rng.randint(0, 8)
        img = padded.crop((dx, dy, dx + size, dy + size))
    if rng.random() < 0.5:
        img = ImageOps.mirror(img)
    return _tensor(img)


def sample_seed(epoch_seed: int, index: int) -> str:
    """The seed of one image's augmentation in one epoch (a string: Python's Random hashes it the same everywhere)."""
    return f"{epoch_seed}:{index}"


class _TrainBatches(Dataset):
    """Item = a batch's list of (file index, seed): its training views, uint8 ``(B, V, 3, S, S)``, or the message of
    the first file that could not be decoded (raised in the main process as one line)."""

    def __init__(self, paths: tuple[str, ...], size: int, views: int) -> None:
        self.paths, self.size, self.views = paths, size, views

    def __getitem__(self, batch: list[tuple[int, str]]) -> torch.Tensor | str:
        try:
            out = []
            for i, seed in batch:
                rng = random.Random(seed)
                out.append(torch.stack([train_view(self.paths[i], self.size, rng) for _ in range(self.views)]))
            return torch.stack(out)
        except DataError as e:
            return str(e)


class _EvalBatches(Dataset):
    def __init__(self, paths: tuple[str, ...], size: int) -> None:
        self.paths, self.size = paths, size

    def __getitem__(self, batch: list[int]) -> torch.Tensor | str:
        try:
            return torch.stack([eval_view(self.paths[i], self.size) for i in batch])
        except DataError as e:
            return str(e)


def _loader(dataset: Dataset, keys: list, workers: int, pin: bool) -> Iterator[torch.Tensor]:
    workers = min(workers, os.cpu_count() or 1)  # no more processes than cores (they change no number)
    loader = DataLoader(dataset, batch_size=None, sampler=keys, num_workers=workers, pin_memory=pin,
                        prefetch_factor=2 if workers else None, persistent_workers=False)
    batches = iter(loader)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except RuntimeError as e:  # a worker that died (killed for memory, a crash in a decoder): one line, not a trace
            if "DataLoader worker" not in str(e):
                raise
            reason = str(e).strip().splitlines()[0][:120]
            raise DataError(f"a data loader worker died ({reason}); give fewer --data-workers or a smaller "
                            "--batch-size, then realdata resume the run") from None
        if isinstance(batch, str):
            raise DataError(batch)
        yield batch


def train_batches(files: ImageFiles, order: torch.Tensor, epoch_seed: int, batch_size: int, first_step: int,
                  views: int = 1, shard: tuple[int, int] = (0, 1), pin: bool = False) -> Iterator[torch.Tensor]:
    """The training views of steps ``first_step``.. of an epoch: for each step, this rank's shard (``shard`` = (rank,
    world)) of the global batch ``order[(step - 1) B : step B]`` (positions in ``files``), uint8 ``(B / W, V, 3, S,
    S)``, decoded by ``files.workers`` worker processes."""
    rank, world = shard
    n, steps = batch_size // world, len(order) // batch_size
    keys = []
    for step in range(first_step, steps + 1):
        part = order[(step - 1) * batch_size: step * batch_size][rank * n: (rank + 1) * n].tolist()
        keys.append([(int(files.index[p]), sample_seed(epoch_seed, int(files.index[p]))) for p in part])
    return _loader(_TrainBatches(files.paths, files.size, views), keys, files.workers, pin)


def eval_batches(files: ImageFiles, batch_size: int, positions: torch.Tensor | None = None,
                 pin: bool = False) -> Iterator[torch.Tensor]:
    """Evaluation views of ``files`` (or of the ``positions`` among them), in batches: uint8 ``(B, 3, S, S)``."""
    pos = np.arange(len(files)) if positions is None else positions.cpu().numpy()
    keys = [[int(files.index[p]) for p in pos[i: i + batch_size]] for i in range(0, len(pos), batch_size)]
    return _loader(_EvalBatches(files.paths, files.size), keys, files.workers, pin)


def check_headers(files: list[tuple[Path, int]]) -> tuple[list[tuple[Path, int]], list[str]]:
    """(the files whose header Pillow reads, the paths of those it cannot): ``--skip-bad-images`` on a streamed
    folder, where decoding every image up front is what streaming avoids."""
    from PIL import Image

    good, bad = [], []
    for path, label in files:
        try:
            with Image.open(path) as img:
                img.verify()
            good.append((path, label))
        except (*unreadable(), SyntaxError):  # verify() reports a damaged PNG as a SyntaxError
            bad.append(str(path))
    return good, bad


__all__ = ["SMALL", "ImageFiles", "eval_batches", "eval_view", "materialize", "train_batches", "train_view"]
