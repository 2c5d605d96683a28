"""realdata.data: loading the official file formats (from tiny generated archives), errors, augmentation, batching."""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from realdata.data import (
    DATASETS,
    DataError,
    ImageData,
    adapt,
    augment,
    balanced_subset,
    batches,
    eval_batches,
    load_dataset,
    normalize,
    pad_to,
    resize_channels,
    split_pool,
    train_val_split,
)
from realdata.data import formats as D

# ------------------------------------------------------------------------------------------- file builders


def write_cifar_batch(path: Path, n: int, label_key: str, num_classes: int, seed: int) -> tuple[np.ndarray, list]:
    """A batch pickle as in the official archives: bytes keys, uint8 (n, 3072) rows, labels as a list."""
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = [int(v) for v in rng.integers(0, num_classes, size=n)]
    obj = {b"batch_label": b"batch", label_key.encode(): labels, b"data": data, b"filenames": [b"f.png"] * n}
    if label_key == "fine_labels":
        obj[b"coarse_labels"] = [(v + 1) % 20 for v in labels]  # must not be the ones loaded
    path.write_bytes(pickle.dumps(obj, protocol=2))
    return data, labels


def make_cifar_folder(root: Path, key: str) -> dict[str, tuple[np.ndarray, list]]:
    folder = root / D.ARCHIVES[key]["folder"]
    folder.mkdir(parents=True)
    out = {}
    if key == "cifar10":
        for i in range(1, 6):
            out[f"data_batch_{i}"] = write_cifar_batch(folder / f"data_batch_{i}", 2, "labels", 10, seed=i)
        out["test_batch"] = write_cifar_batch(folder / "test_batch", 3, "labels", 10, seed=9)
        (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"c%d" % i for i in range(10)]}, 2))
    else:
        out["train"] = write_cifar_batch(folder / "train", 5, "fine_labels", 100, seed=1)
        out["test"] = write_cifar_batch(folder / "test", 3, "fine_labels", 100, seed=2)
        (folder / "meta").write_bytes(pickle.dumps({b"fine_label_names": [b"c%d" % i for i in range(100)]}, 2))
    return out


def make_cifar_archive(root: Path, key: str) -> tuple[Path, str, dict]:
    """``root/<official archive name>`` holding the official folder; returns (path, md5, contents)."""
    stage = root / "stage"
    contents = make_cifar_folder(stage, key)
    archive = root / D.ARCHIVES[key]["filename"]
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(stage / D.ARCHIVES[key]["folder"], arcname=D.ARCHIVES[key]["folder"])
    return archive, hashlib.md5(archive.read_bytes()).hexdigest(), contents


def idx_bytes(arr: np.ndarray, magic: int | None = None) -> bytes:
    magic = 0x0800 | arr.ndim if magic is None else magic
    head = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return head + arr.astype(np.uint8).tobytes()


def make_fmnist(folder: Path, n_train: int = 6, n_test: int = 4, gz: bool = True) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)).astype(np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)).astype(np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test).astype(np.uint8),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for stem, arr in arrays.items():
        raw = idx_bytes(arr)
        if gz:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(raw))
        else:
            (folder / stem).write_bytes(raw)
    return arrays


@pytest.fixture
def no_system_fmnist(monkeypatch, tmp_path):
    monkeypatch.setattr(D, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "no-system-dir")


# ----------------------------------------------------------------------------------------------------- CIFAR


def test_cifar10_folder_shapes_labels_pixel_order(tmp_path):
    contents = make_cifar_folder(tmp_path, "cifar10")
    d = load_dataset("cifar10", tmp_path)
    assert isinstance(d, ImageData) and d.name == "cifar10" and d.num_classes == 10
    assert d.train_x.shape == (10, 3, 32, 32) and d.test_x.shape == (3, 3, 32, 32)
    assert d.train_x.dtype == torch.uint8 and d.train_y.dtype == torch.int64 and d.train_y.shape == (10,)
    assert (d.in_channels, d.image_size) == (3, 32)
    assert d.mean == (0.4914, 0.4822, 0.4465) and d.std == (0.2470, 0.2435, 0.2616)
    rows = np.concatenate([contents[f"data_batch_{i}"][0] for i in range(1, 6)])
    labels = sum((contents[f"data_batch_{i}"][1] for i in range(1, 6)), [])
    assert d.train_y.tolist() == labels and d.test_y.tolist() == contents["test_batch"][1]
    # row layout: 1024 red, 1024 green, 1024 blue; each plane 32x32 row-major
    r, c = 5, 7
    assert d.train_x[3, 0, r, c] == rows[3, r * 32 + c]
    assert d.train_x[3, 1, r, c] == rows[3, 1024 + r * 32 + c]
    assert d.train_x[3, 2, r, c] == rows[3, 2048 + r * 32 + c]
    assert torch.equal(d.train_x.reshape(10, -1), torch.from_numpy(rows))


def test_cifar10_planted_pixel(tmp_path):
    make_cifar_folder(tmp_path, "cifar10")
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    obj = pickle.loads(path.read_bytes(), encoding="bytes")
    obj[b"data"][1] = 0
    obj[b"data"][1, 1024 + 31 * 32 + 2] = 77  # green, row 31, column 2
    path.write_bytes(pickle.dumps(obj, protocol=2))
    x = load_dataset("cifar10", tmp_path).test_x[1]
    assert x[1, 31, 2] == 77 and x.sum() == 77


def test_cifar100_from_local_archive_uses_fine_labels(tmp_path, monkeypatch):
    src, data_dir = tmp_path / "src", tmp_path / "data"
    src.mkdir()
    data_dir.mkdir()
    built, md5, contents = make_cifar_archive(src, "cifar100")
    archive = data_dir / built.name
    archive.write_bytes(built.read_bytes())
    monkeypatch.setitem(D.ARCHIVES, "cifar100", {**D.ARCHIVES["cifar100"], "md5": md5})
    d = load_dataset("cifar100", data_dir)  # archive present: extracted without --download
    assert d.num_classes == 100 and d.train_x.shape == (5, 3, 32, 32) and d.test_x.shape == (3, 3, 32, 32)
    assert d.train_y.tolist() == contents["train"][1] and d.test_y.tolist() == contents["test"][1]
    assert d.mean == (0.5071, 0.4867, 0.4408) and d.std == (0.2675, 0.2565, 0.2761)
    assert (data_dir / "cifar-100-python" / "train").is_file() and archive.is_file()
    assert not [p for p in data_dir.iterdir() if p.name.startswith(".")]  # no temporary folders left


def test_download_file_url_md5_ok(tmp_path, monkeypatch):
    src = tmp_path / "server"
    src.mkdir()
    archive, md5, contents = make_cifar_archive(src, "cifar10")
    monkeypatch.setitem(D.ARCHIVES, "cifar10", {**D.ARCHIVES["cifar10"], "url": archive.as_uri(), "md5": md5})
    data_dir = tmp_path / "data"
    with pytest.raises(DataError, match="--download"):
        load_dataset("cifar10", data_dir)
    d = load_dataset("cifar10", data_dir, download=True)
    assert d.train_x.shape == (10, 3, 32, 32)
    assert (data_dir / "cifar-10-python.tar.gz").read_bytes() == archive.read_bytes()
    assert sorted(p.name for p in data_dir.iterdir()) == ["cifar-10-batches-py", "cifar-10-python.tar.gz"]
    again = load_dataset("cifar10", data_dir, download=True)  # already there: no second fetch needed
    assert torch.equal(again.train_x, d.train_x)


def test_download_wrong_md5_is_an_error_and_deletes_nothing_else(tmp_path, monkeypatch):
    src = tmp_path / "server"
    src.mkdir()
    archive, md5, _ = make_cifar_archive(src, "cifar100")
    bad = "0" * 32
    monkeypatch.setitem(D.ARCHIVES, "cifar100", {**D.ARCHIVES["cifar100"], "url": archive.as_uri(), "md5": bad})
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="MD5") as e:
        load_dataset("cifar100", data_dir, download=True)
    msg = str(e.value)
    assert "cifar-100-python.tar.gz" in msg and bad in msg and md5 in msg and "\n" not in msg
    assert [p.name for p in data_dir.iterdir()] == ["keep.txt"]


def test_existing_archive_with_wrong_md5_is_kept(tmp_path):
    data_dir = tmp_path
    archive = data_dir / "cifar-10-python.tar.gz"
    archive.write_bytes(b"not the archive")
    with pytest.raises(DataError, match="MD5 mismatch") as e:
        load_dataset("cifar10", data_dir, download=True)
    assert str(archive) in str(e.value) and D.ARCHIVES["cifar10"]["md5"] in str(e.value)
    assert archive.read_bytes() == b"not the archive"


def test_download_failure_is_one_line(tmp_path, monkeypatch):
    url = (tmp_path / "nowhere.tar.gz").as_uri()
    monkeypatch.setitem(D.ARCHIVES, "cifar10", {**D.ARCHIVES["cifar10"], "url": url})
    with pytest.raises(DataError, match="download of .* failed"):
        load_dataset("cifar10", tmp_path / "data", download=True)
    assert not list((tmp_path / "data").iterdir())


def test_missing_cifar_names_where_and_how(tmp_path):
    with pytest.raises(DataError) as e:
        load_dataset("cifar100", tmp_path)
    msg = str(e.value)
    assert str(tmp_path) in msg and "--download" in msg and D.ARCHIVES["cifar100"]["url"] in msg and "\n" not in msg
    assert len(msg) < 150 + len(str(tmp_path)) and "--data-dir" in msg  # the folder named once


@pytest.mark.parametrize(
    "payload, expect",
    [
        (b"\x00garbage that is no pickle", "corrupt file"),
        ("truncate", "corrupt file"),
        (pickle.dumps({b"data": np.zeros((2, 3000), np.uint8), b"labels": [0, 1]}, 2), "3072"),
        (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1, 2]}, 2), "corrupt file"),
        (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, 2), "labels outside"),
        (pickle.dumps([1, 2, 3], 2), "corrupt file"),
    ],
)
def test_corrupt_cifar_pickle(tmp_path, payload, expect):
    make_cifar_folder(tmp_path, "cifar10")
    path = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    if payload == "truncate":
        payload = path.read_bytes()[:5000]
    path.write_bytes(payload)
    with pytest.raises(DataError, match=expect) as e:
        load_dataset("cifar10", tmp_path)
    assert str(path) in str(e.value) and "--download" in str(e.value)
    assert e.value.__cause__ is None and (e.value.__context__ is None or e.value.__suppress_context__)


def test_pickle_with_foreign_global_is_refused_not_run(tmp_path):
    make_cifar_folder(tmp_path, "cifar10")
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps({b"data": Evil()}, 2))
    with pytest.raises(DataError, match="corrupt file"):
        load_dataset("cifar10", tmp_path)
    assert not marker.exists()


def test_corrupt_archive(tmp_path, monkeypatch):
    archive = tmp_path / "cifar-100-python.tar.gz"
    archive.write_bytes(gzip.compress(b"no tar here" * 100))
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    monkeypatch.setitem(D.ARCHIVES, "cifar100", {**D.ARCHIVES["cifar100"], "md5": md5})
    with pytest.raises(DataError, match="corrupt file .*cifar-100-python.tar.gz"):
        load_dataset("cifar100", tmp_path)


def test_unknown_name_lists_known_ones(tmp_path):
    with pytest.raises(DataError) as e:
        load_dataset("imagenet", tmp_path)
    assert all(n in str(e.value) for n in DATASETS)
    assert DATASETS == ("cifar100", "cifar10", "fashion_mnist")
    assert issubclass(DataError, ValueError)


# --------------------------------------------------------------------------------------------- Fashion-MNIST


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_idx(tmp_path, no_system_fmnist, gz):
    arrays = make_fmnist(tmp_path, gz=gz)
    d = load_dataset("fashion-mnist", tmp_path)
    assert d.name == "fashion_mnist" and d.num_classes == 10 and d.mean == (0.2860,) and d.std == (0.3530,)
    assert d.train_x.shape == (6, 1, 28, 28) and d.test_x.shape == (4, 1, 28, 28)
    assert d.train_x.dtype == torch.uint8 and d.test_y.dtype == torch.int64
    assert (d.in_channels, d.image_size) == (1, 28)
    assert np.array_equal(d.train_x[:, 0].numpy(), arrays["train-images-idx3-ubyte"])
    assert np.array_equal(d.test_y.numpy(), arrays["t10k-labels-idx1-ubyte"])


def test_fashion_mnist_in_subfolder(tmp_path, no_system_fmnist):
    make_fmnist(tmp_path / "fashion-mnist")
    assert load_dataset("fashion_mnist", tmp_path).train_x.shape == (6, 1, 28, 28)


def test_fashion_mnist_missing(tmp_path, no_system_fmnist):
    with pytest.raises(DataError) as e:
        load_dataset("fashion_mnist", tmp_path)
    msg = str(e.value)
    assert str(tmp_path) in msg and "apt-get install dataset-fashion-mnist" in msg and "\n" not in msg


def test_fashion_mnist_download(tmp_path, monkeypatch, no_system_fmnist):
    src = tmp_path / "server"
    make_fmnist(src)
    table = {
        stem: {"url": (src / f"{stem}.gz").as_uri(), "md5": hashlib.md5((src / f"{stem}.gz").read_bytes()).hexdigest()}
        for stem in D.FASHION_MNIST_FILES
    }
    monkeypatch.setattr(D, "FASHION_MNIST_FILES", table)
    d = load_dataset("fashion_mnist", tmp_path / "data", download=True)
    assert d.train_x.shape == (6, 1, 28, 28)
    assert (tmp_path / "data" / "fashion-mnist" / "train-images-idx3-ubyte.gz").is_file()


def _corrupt_truncated_gzip(folder):
    p = folder / "train-images-idx3-ubyte.gz"
    p.write_bytes(p.read_bytes()[:-40])
    return p, "gzip"


def _corrupt_magic(folder):
    p = folder / "t10k-labels-idx1-ubyte.gz"
    p.write_bytes(gzip.compress(idx_bytes(np.zeros(4, np.uint8), magic=0x0803)))
    return p, "magic"


def _corrupt_size(folder):
    p = folder / "t10k-images-idx3-ubyte.gz"
    p.write_bytes(gzip.compress(idx_bytes(np.zeros((4, 28, 28), np.uint8))[:-1]))
    return p, "header says"


def _corrupt_not_gzip(folder):
    p = folder / "train-labels-idx1-ubyte.gz"
    p.write_bytes(b"plain text")
    return p, "gzip"


@pytest.mark.parametrize("corrupt", [_corrupt_truncated_gzip, _corrupt_magic, _corrupt_size, _corrupt_not_gzip])
def test_corrupt_fashion_mnist(tmp_path, no_system_fmnist, corrupt):
    make_fmnist(tmp_path)
    path, expect = corrupt(tmp_path)
    with pytest.raises(DataError, match=expect) as e:
        load_dataset("fashion_mnist", tmp_path)
    assert f"corrupt file {path}" in str(e.value) and "\n" not in str(e.value)
    assert e.value.__cause__ is None and (e.value.__context__ is None or e.value.__suppress_context__)


def test_real_fashion_mnist(tmp_path):
    if not all((D.FASHION_MNIST_SYSTEM_DIR / f"{s}.gz").is_file() for s in D.FASHION_MNIST_FILES):
        pytest.skip(f"no Fashion-MNIST in {D.FASHION_MNIST_SYSTEM_DIR} (apt-get install dataset-fashion-mnist)")
    d = load_dataset("fashion_mnist", tmp_path)  # empty data_dir: falls back to the system copy
    assert d.train_x.shape == (60000, 1, 28, 28) and d.test_x.shape == (10000, 1, 28, 28)
    assert d.train_y.shape == (60000,) and d.test_y.shape == (10000,)
    assert sorted(d.train_y.unique().tolist()) == list(range(10)) and d.num_classes == 10
    assert abs(d.train_x.float().mean().item() / 255 - d.mean[0]) < 1e-3


# ------------------------------------------------------------------------------------------------ ImageData


def test_imagedata_to_and_frozen():
    x = torch.zeros(2, 3, 4, 4, dtype=torch.uint8)
    y = torch.zeros(2, dtype=torch.int64)
    d = ImageData("t", x, y, x, y, 2, (0.5,) * 3, (0.25,) * 3)
    e = d.to("cpu")
    assert isinstance(e, ImageData) and e.name == "t" and e.train_x.device.type == "cpu"
    with pytest.raises(AttributeError):
        d.name = "u"


# ------------------------------------------------------------------------------------------------- augment


def images(b=16, c=3, h=8, w=8, seed=0):
    return torch.randint(0, 256, (b, c, h, w), generator=torch.Generator().manual_seed(seed)).to(torch.uint8)


def gen(seed):
    return torch.Generator().manual_seed(seed)


def test_augment_shape_dtype_determinism():
    x = images()
    a = augment(x, gen(1))
    assert a.shape == x.shape and a.dtype == torch.uint8
    assert torch.equal(a, augment(x, gen(1)))
    assert not torch.equal(a, augment(x, gen(2)))


def test_augment_identity_without_pad_or_flip():
    x = images()
    assert torch.equal(augment(x, gen(3), pad=0, flip=False), x)


def test_augment_flip_is_exact_mirror():
    x = images(b=64)
    a = augment(x, gen(4), pad=0, flip=True)
    same = (a == x).flatten(1).all(1)
    mirrored = (a == x.flip(-1)).flatten(1).all(1)
    assert bool((same | mirrored).all()) and 0 < int(mirrored.sum()) < 64


def test_augment_matches_per_sample_reference():
    x, pad = images(b=32, c=2, h=6, w=5), 3
    a = augment(x, gen(5), pad=pad, flip=True)
    g = gen(5)  # same draws, same order: dy, dx, flip coin
    b = x.shape[0]
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=g)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=g)
    coin = torch.randint(0, 2, (b,), generator=g)
    for i in range(b):
        padded = torch.nn.functional.pad(x[i], (pad, pad, pad, pad))  # zeros
        window = padded[:, dy[i] : dy[i] + 6, dx[i] : dx[i] + 5]
        assert torch.equal(a[i], window.flip(-1) if coin[i] else window), i
    assert len(set(dy.tolist())) > 1 and len(set(dx.tolist())) > 1


def test_augment_crops_are_windows_of_padded_image():
    """Independent of the draw order: every output is some (shifted, maybe mirrored) window with zero fill."""
    x, pad = images(b=24, c=1, h=5, w=5, seed=7) | 1, 2  # no zero pixels inside, so the zero fill is visible
    a = augment(x, gen(8), pad=pad)
    shifts = set()
    for i in range(x.shape[0]):
        padded = torch.nn.functional.pad(x[i], (pad, pad, pad, pad))
        hits = [
            (dy, dx, f)
            for dy in range(2 * pad + 1)
            for dx in range(2 * pad + 1)
            for f in (False, True)
            if torch.equal(a[i], padded[:, dy : dy + 5, dx : dx + 5].flip(-1 if f else ()))
        ]
        assert len(hits) == 1, (i, hits)
        shifts.add(hits[0][:2])
    assert len(shifts) > 3


def test_normalize():
    x = images(b=2)
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.25, 2.0)
    z = normalize(x, mean, std)
    assert z.dtype == torch.float32 and z.shape == x.shape
    ref = (x.double() / 255 - torch.tensor(mean).view(3, 1, 1).double()) / torch.tensor(std).view(3, 1, 1).double()
    assert torch.allclose(z.double(), ref, atol=1e-5)
    assert normalize(x, mean, std, dtype=torch.float64).dtype == torch.float64
    with pytest.raises(ValueError):
        normalize(x, (0.5,), (0.5,))


# ------------------------------------------------------------------------------------------------- batches


def test_batches_permutation_per_epoch_and_deterministic():
    g = gen(0)
    epochs = [torch.cat(list(batches(10, 5, g))) for _ in range(3)]
    for e in epochs:
        assert e.dtype == torch.int64 and sorted(e.tolist()) == list(range(10))
    assert not all(torch.equal(epochs[0], e) for e in epochs[1:])
    g2 = gen(0)
    assert all(torch.equal(torch.cat(list(batches(10, 5, g2))), e) for e in epochs)


def test_batches_drop_last():
    assert [len(b) for b in batches(10, 4, gen(1))] == [4, 4]
    tail = list(batches(10, 4, gen(1), drop_last=False))
    assert [len(b) for b in tail] == [4, 4, 2] and sorted(torch.cat(tail).tolist()) == list(range(10))


def test_eval_batches_in_order():
    parts = list(eval_batches(10, 4))
    assert [p.tolist() for p in parts] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert list(eval_batches(0, 4)) == []


# ---------------------------------------------------------------------------------------- cross-data-set shape


def test_resize_channels_pad_to_adapt():
    x = images(b=2, c=1, h=28, w=28)
    r = resize_channels(x, 3)
    assert r.shape == (2, 3, 28, 28) and all(torch.equal(r[:, i], x[:, 0]) for i in range(3))
    assert resize_channels(r, 3) is r
    with pytest.raises(ValueError):
        resize_channels(images(c=2), 3)
    p = pad_to(x, 32)
    assert p.shape == (2, 1, 32, 32) and torch.equal(p[..., 2:30, 2:30], x) and p.sum() == x.sum()
    y = torch.zeros(2, dtype=torch.int64)
    d = adapt(ImageData("fashion_mnist", x, y, x, y, 10, (0.286,), (0.353,)), 3, 32)
    assert d.train_x.shape == (2, 3, 32, 32) and d.test_x.shape == (2, 3, 32, 32)
    assert d.mean == (0.286,) * 3 and d.std == (0.353,) * 3 and (d.in_channels, d.image_size) == (3, 32)


def labelled(labels: list[int], num_classes: int) -> ImageData:
    y = torch.tensor(labels)
    x = torch.arange(len(labels), dtype=torch.uint8).view(-1, 1, 1, 1).expand(-1, 1, 2, 2).contiguous()
    return ImageData("t", x, y, x[:2], y[:2], num_classes, (0.5,), (0.5,))


def test_balanced_subset_quota_order_and_seed():
    labels = [i % 3 for i in range(30)] + [0] * 6  # class 0: 16 images, classes 1, 2: 10 each
    data = labelled(labels, 3)
    sub = balanced_subset(data, 8)
    assert torch.bincount(sub.train_y, minlength=3).tolist() == [3, 3, 2]  # remainder to the first classes
    kept = sub.train_x[:, 0, 0, 0].long()  # each image's index in the full set
    assert kept.tolist() == sorted(kept.tolist())  # original order
    assert torch.equal(data.train_y[kept], sub.train_y)  # images keep their labels
    assert torch.equal(sub.test_x, data.test_x)  # test set untouched
    assert torch.equal(balanced_subset(data, 8).train_x, sub.train_x)  # a function of the seed
    others = {tuple(balanced_subset(data, 8, seed=s).train_x[:, 0, 0, 0].tolist()) for s in range(1, 6)}
    assert len(others) > 1
    nested = balanced_subset(data, 30).train_x[:, 0, 0, 0].long()  # every image of classes 1, 2 at size 30
    assert torch.bincount(data.train_y[nested], minlength=3).tolist() == [10, 10, 10]


def test_balanced_subset_errors():
    data = labelled([0] * 5 + [1] * 2, 2)
    with pytest.raises(DataError, match="needs 3 images of class 1 but t has 2"):
        balanced_subset(data, 6)
    for size in (0, 8):
        with pytest.raises(DataError, match="train_size must be in 1..7"):
            balanced_subset(data, size)


def test_validation_split_is_balanced_disjoint_and_the_same_for_every_seed():
    labels = [i % 3 for i in range(60)]  # 20 images per class
    data = labelled(labels, 3)
    split = train_val_split(data, train_size=12, val_size=9)
    train, val = split.train_x[:, 0, 0, 0].long(), split.val_x[:, 0, 0, 0].long()
    assert torch.equal(train, balanced_subset(data, 12).train_x[:, 0, 0, 0].long())  # the subset is unchanged
    assert not set(train.tolist()) & set(val.tolist())  # disjoint
    assert torch.bincount(split.val_y, minlength=3).tolist() == [3, 3, 3] and torch.equal(split.val_y,
                                                                                          data.train_y[val])
    assert torch.equal(train_val_split(data, 12, 9).val_x, split.val_x)  # fixed: no run seed enters
    assert torch.equal(split.test_x, data.test_x) and split.split("val")[0] is split.val_x
    whole = train_val_split(data, None, 6)  # no subset: the validation images come out of the training set
    assert len(whole.train_y) == 54 and not set(whole.train_x[:, 0, 0, 0].tolist()) & set(
        whole.val_x[:, 0, 0, 0].tolist())
    uneven = labelled([0] * 10 + [1] * 10 + [2] * 4, 3)  # after a subset of 6, class 2 has 2 images left
    with pytest.raises(DataError, match="val_size 9 needs 3 images of class 2 but t outside the training subset "
                                        "has 2; pick a smaller val_size"):
        train_val_split(uneven, 6, 9)
    with pytest.raises(DataError, match="no val split here; give --val-size"):
        data.split("val")


def test_split_pool_parts_and_unlabelled_images_are_disjoint_balanced_and_fixed():
    data = labelled([i % 3 for i in range(60)], 3)  # 20 images per class
    ids = lambda d: d.train_x[:, 0, 0, 0].long().tolist()  # noqa: E731 - each image's index in the full set
    parts = [split_pool(data, val_size=6, train_part=(i, 4))[0] for i in range(1, 5)]
    val = set(parts[0].val_x[:, 0, 0, 0].long().tolist())
    seen = [set(ids(p)) for p in parts]
    assert sum(map(len, seen)) == 54 and set().union(*seen) == set(range(60)) - val  # a partition of the rest
    for p in parts:
        assert set(torch.bincount(p.train_y, minlength=3).tolist()) <= {4, 5}  # 18 per class in 4 parts
        assert set(p.val_x[:, 0, 0, 0].long().tolist()) == val  # the same split for every part
    assert ids(split_pool(data, val_size=6, train_part=(2, 4))[0]) == ids(parts[1])  # fixed
    labelled_, unlabelled = split_pool(data, train_size=12, val_size=9, transfer_size=15)
    assert ids(labelled_) == ids(train_val_split(data, 12, 9))  # the labelled subset and split are unchanged
    u = set(ids(unlabelled))
    assert len(u) == 15 and not u & set(ids(labelled_)) and not u & set(labelled_.val_x[:, 0, 0, 0].tolist())
    assert torch.bincount(unlabelled.train_y, minlength=3).tolist() == [5, 5, 5]
    with pytest.raises(DataError, match="transfer_size must be in 1..39 for t outside the training and validation"):
        split_pool(data, train_size=12, val_size=9, transfer_size=40)
