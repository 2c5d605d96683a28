"""The official files of CIFAR-10 / CIFAR-100 (python pickles) and Fashion-MNIST (IDX), read without torchvision.

- CIFAR-10 / CIFAR-100: the python-pickle archives ``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz``,
  extracted to ``cifar-10-batches-py/`` / ``cifar-100-python/`` under ``data_dir``;
- Fashion-MNIST: the four IDX files (``.gz`` or uncompressed), looked for in ``data_dir``,
  ``data_dir/fashion-mnist`` and the Debian package's ``/usr/share/datasets/fashion-mnist``
  (``apt-get install dataset-fashion-mnist``).

Every problem with the files is a one-line :class:`DataError` that says which file, where it was looked for and
what to do about it."""

from __future__ import annotations

import codecs
import gzip
import pickle
import zlib
from pathlib import Path

import numpy as np
import torch

from realdata.data.core import DataError, ImageData
from realdata.data.download import _check_md5, _download, _extract
from realdata.data.folders import is_folder_dataset, load_image_folder
from realdata.data.user import is_dataset_spec, load_user_dataset

DATASETS: tuple[str, ...] = ("cifar100", "cifar10", "fashion_mnist")

# Download table: module level so that tests (or a mirror) can point it elsewhere.
ARCHIVES: dict[str, dict[str, str]] = {
    "cifar10": {
        "url": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "md5": "c58f30108f718f92721af3b95e74349a",
        "filename": "cifar-10-python.tar.gz",
        "folder": "cifar-10-batches-py",
    },
    "cifar100": {
        "url": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        "md5": "eb9058c3a382ffc7106e4002c42a8d85",
        "filename": "cifar-100-python.tar.gz",
        "folder": "cifar-100-python",
    },
}

# Fashion-MNIST: file -> (url, md5 of the published .gz). The Debian package re-compresses the files, so the
# MD5 is only checked on download, never on files found on disk.
_FMNIST_BASE = "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"
FASHION_MNIST_FILES: dict[str, dict[str, str]] = {
    "train-images-idx3-ubyte": {
        "url": _FMNIST_BASE + "train-images-idx3-ubyte.gz",
        "md5": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    },
    "train-labels-idx1-ubyte": {
        "url": _FMNIST_BASE + "train-labels-idx1-ubyte.gz",
        "md5": "25c81989df183df01b3e8a0aad5dffbe",
    },
    "t10k-images-idx3-ubyte": {
        "url": _FMNIST_BASE + "t10k-images-idx3-ubyte.gz",
        "md5": "bef4ecab320f06d8554ea6380940ec79",
    },
    "t10k-labels-idx1-ubyte": {
        "url": _FMNIST_BASE + "t10k-labels-idx1-ubyte.gz",
        "md5": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}
FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
_FMNIST_SUBDIR = "fashion-mnist"

_STATS: dict[str, tuple[tuple[float, ...], tuple[float, ...], int]] = {
    "cifar100": ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761), 100),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), 10),
    "fashion_mnist": ((0.2860,), (0.3530,), 10),
}




# --------------------------------------------------------------------------------------------------- loading


def load_dataset(
    name: str, data_dir: str | Path, download: bool = False, device: torch.device | str = "cpu",
    image_size: int | None = None, skip_bad: bool = False, stream: bool = False, workers: int = 0,
) -> ImageData:
    """Load ``name`` (one of :data:`DATASETS`, or ``folder:ROOT``: a user's class folders, at ``image_size``) from
    ``data_dir``, fetching it first if ``download``; ``stream``: class folders kept as files, decoded per batch by
    ``workers`` processes (:mod:`realdata.data.stream`)."""
    if is_folder_dataset(name):
        return load_image_folder(name, image_size, skip_bad, stream, workers).to(device)
    if stream:
        raise DataError(f"--stream reads class folders (--dataset folder:ROOT); {name} is held in memory: drop "
                        "--stream")
    if is_dataset_spec(name):
        return load_user_dataset(name).to(device)
    key = name.strip().lower().replace("-", "_")
    if key not in DATASETS:
        raise DataError(f"unknown data set {name!r}; known: {', '.join(DATASETS)}")
    data_dir = Path(data_dir).expanduser()
    load = _load_fashion_mnist if key == "fashion_mnist" else lambda d, dl: _load_cifar(key, d, dl)
    *arrays, source = load(data_dir, download)
    mean, std, num_classes = _STATS[key]
    return ImageData(key, *arrays, num_classes=num_classes, mean=mean, std=std, source=source).to(device)


def cifar_status(key: str, data_dir: str | Path) -> tuple[bool, str]:
    """(usable, what is there) for CIFAR data set ``key`` in ``data_dir``, without loading it: the extracted files, or
    the archive with its MD5 checked (a plan's dry run says this before any run starts)."""
    spec, data_dir = ARCHIVES[key], Path(data_dir).expanduser()
    train_names, test_name, _ = _cifar_members(key)
    needed = [*train_names, test_name]
    for folder in (data_dir / spec["folder"], data_dir):
        if all((folder / f).is_file() for f in needed):
            return True, f"{key}: extracted files in {folder}"
    archive = data_dir / spec["filename"]
    if archive.is_file():
        try:
            _check_md5(archive, spec["md5"], hint=_redownload_hint(key))
        except DataError as e:
            return False, str(e)
        return True, f"{key}: archive {archive} (MD5 checked), extracted on first use"
    return False, f"{key} not found in {data_dir}: give --data-dir where it is, or --download ({spec['url']})"


def _redownload_hint(key: str) -> str:
    if key == "fashion_mnist":
        return "delete it and run again with --download (or reinstall dataset-fashion-mnist)"
    return "delete it and run again with --download"


# CIFAR ------------------------------------------------------------------------------------------------------


def _cifar_members(key: str) -> tuple[list[str], str, str]:
    """(train file names, test file name, label key) inside the extracted folder."""
    if key == "cifar10":
        return [f"data_batch_{i}" for i in range(1, 6)], "test_batch", "labels"
    return ["train"], "test", "fine_labels"


def _load_cifar(key: str, data_dir: Path, download: bool) -> tuple[torch.Tensor, ...]:
    spec = ARCHIVES[key]
    train_names, test_name, label_key = _cifar_members(key)
    needed = [*train_names, test_name]
    folder = data_dir / spec["folder"]
    if not all((folder / f).is_file() for f in needed):
        if all((data_dir / f).is_file() for f in needed):  # data_dir is the extracted folder itself
            folder = data_dir
        else:
            _fetch_cifar(key, data_dir, download)
    num_classes = _STATS[key][2]
    train = [_read_cifar_pickle(folder / f, label_key, num_classes, key) for f in train_names]
    test_x, test_y = _read_cifar_pickle(folder / test_name, label_key, num_classes, key)
    train_x = torch.cat([x for x, _ in train]) if len(train) > 1 else train[0][0]
    train_y = torch.cat([y for _, y in train]) if len(train) > 1 else train[0][1]
    return train_x, train_y, test_x, test_y, str(folder.resolve())


def _fetch_cifar(key: str, data_dir: Path, download: bool) -> None:
    """Make ``data_dir/<folder>`` complete: from the archive in ``data_dir`` if there, else by downloading it."""
    spec = ARCHIVES[key]
    archive = data_dir / spec["filename"]
    if not archive.is_file():
        if not download:
            raise DataError(f"{key} not found in {data_dir}; give --data-dir where it is, run with --download, or put "
                            f"{spec['url']} there")
        _download(spec["url"], archive, spec["md5"])
    else:
        _check_md5(archive, spec["md5"], hint=_redownload_hint(key))
    _extract(archive, data_dir, spec["folder"])


class _NumpyUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only: the CIFAR files need nothing else, and refusing every
    other global keeps a tampered file from running code."""

    _ALLOWED = {
        "_reconstruct": np.array(0).__reduce__()[0],
        "_frombuffer": np.arange(2).__reduce_ex__(5)[0],
        "scalar": np.float64(0).__reduce__()[0],
        "ndarray": np.ndarray,
        "dtype": np.dtype,
    }

    def find_class(self, module: str, name: str):
        if (module == "numpy" or module.startswith("numpy.")) and name in self._ALLOWED:
            return self._ALLOWED[name]
        if module in ("_codecs", "codecs") and name == "encode":  # python-3 pickles of bytes at protocol 2
            return codecs.encode
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")


def _read_cifar_pickle(path: Path, label_key: str, num_classes: int, key: str) -> tuple[torch.Tensor, torch.Tensor]:
    hint = _redownload_hint(key)
    try:
        with open(path, "rb") as f:
            obj = _NumpyUnpickler(f, encoding="bytes").load()
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from None
    except Exception as e:  # any unpickling failure: truncated, garbage, disallowed global
        raise DataError(f"corrupt file {path} ({type(e).__name__}: not a CIFAR pickle); {hint}") from None
    if not isinstance(obj, dict):
        raise DataError(f"corrupt file {path} (not a CIFAR batch dictionary); {hint}")
    obj = {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}
    if "data" not in obj or label_key not in obj:
        raise DataError(f"corrupt file {path} (no 'data'/'{label_key}' entries); {hint}")
    try:
        data = np.asarray(obj["data"])
        labels = np.asarray(obj[label_key], dtype=np.int64)
    except (TypeError, ValueError):
        raise DataError(f"corrupt file {path} (unreadable 'data'/'{label_key}' arrays); {hint}") from None
    n = labels.shape[0] if labels.ndim == 1 else -1
    if data.dtype != np.uint8 or data.shape != (n, 3072) or n <= 0:
        raise DataError(
            f"corrupt file {path} (data {data.dtype} {tuple(data.shape)} with {labels.shape} labels, "
            f"expected uint8 (N, 3072) with N labels); {hint}"
        )
    if labels.min() < 0 or labels.max() >= num_classes:
        raise DataError(f"corrupt file {path} (labels outside 0..{num_classes - 1}); {hint}")
    # each row: 1024 red, then 1024 green, then 1024 blue values, each plane 32x32 in row-major order
    x = torch.from_numpy(np.ascontiguousarray(data).reshape(n, 3, 32, 32).copy())
    return x, torch.from_numpy(labels.copy())


# Fashion-MNIST ----------------------------------------------------------------------------------------------


def _fmnist_dirs(data_dir: Path) -> list[Path]:
    dirs = [data_dir, data_dir / _FMNIST_SUBDIR, FASHION_MNIST_SYSTEM_DIR]
    return list(dict.fromkeys(dirs))


def _find_idx(directory: Path, stem: str) -> Path | None:
    for candidate in (directory / f"{stem}.gz", directory / stem):
        if candidate.is_file():
            return candidate
    return None


def _load_fashion_mnist(data_dir: Path, download: bool) -> tuple[torch.Tensor, ...]:
    stems = list(FASHION_MNIST_FILES)
    dirs = _fmnist_dirs(data_dir)
    found: dict[str, Path] | None = None
    for d in dirs:  # the first directory that holds all four files
        paths = {s: _find_idx(d, s) for s in stems}
        if all(paths.values()):
            found = paths  # type: ignore[assignment]
            break
    if found is None:
        if not download:
            raise DataError(f"fashion_mnist not found in {data_dir} (nor {FASHION_MNIST_SYSTEM_DIR}); give --data-dir "
                            "where it is, run with --download, or apt-get install dataset-fashion-mnist")
        target = data_dir / _FMNIST_SUBDIR
        found = {}
        for s in stems:
            path = target / f"{s}.gz"
            if not path.is_file():
                _download(FASHION_MNIST_FILES[s]["url"], path, FASHION_MNIST_FILES[s]["md5"])
            found[s] = path
    train_x = _read_idx(found["train-images-idx3-ubyte"], ndim=3)
    train_y = _read_idx(found["train-labels-idx1-ubyte"], ndim=1)
    test_x = _read_idx(found["t10k-images-idx3-ubyte"], ndim=3)
    test_y = _read_idx(found["t10k-labels-idx1-ubyte"], ndim=1)
    for images, labels, split in ((train_x, train_y, "train"), (test_x, test_y, "t10k")):
        if images.shape[0] != labels.shape[0]:
            raise DataError(
                f"fashion_mnist: {split} images ({images.shape[0]}) and labels ({labels.shape[0]}) disagree in count "
                f"in {found[split + '-images-idx3-ubyte'].parent}; delete the files and get them again"
            )
        if labels.numel() and int(labels.max()) >= 10:
            path = found[split + "-labels-idx1-ubyte"]
            raise DataError(f"corrupt file {path} (labels outside 0..9); {_redownload_hint('fashion_mnist')}")
    source = str(found["train-images-idx3-ubyte"].parent.resolve())
    return train_x.unsqueeze(1), train_y.long(), test_x.unsqueeze(1), test_y.long(), source


def _read_idx(path: Path, ndim: int) -> torch.Tensor:
    """An IDX file of unsigned bytes with ``ndim`` dimensions, as a uint8 tensor."""
    hint = _redownload_hint("fashion_mnist")
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise DataError(f"corrupt file {path} (bad or truncated gzip: {e}); {hint}") from None
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from None
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"corrupt file {path} (shorter than an IDX header); {hint}")
    magic = int.from_bytes(raw[:4], "big")
    expected_magic = 0x0800 | ndim  # two zero bytes, type 0x08 (unsigned byte), number of dimensions
    if magic != expected_magic:
        raise DataError(f"corrupt file {path} (IDX magic {magic:#010x}, expected {expected_magic:#010x}); {hint}")
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    if ndim == 3 and dims[1:] != [28, 28]:
        raise DataError(f"corrupt file {path} (images of {dims[1]}x{dims[2]}, expected 28x28); {hint}")
    size = int(np.prod(dims))
    if len(raw) - header != size:
        raise DataError(
            f"corrupt file {path} ({len(raw) - header} data bytes, header says {'x'.join(map(str, dims))} = {size}); "
            f"{hint}"
        )
    arr = np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)
    return torch.from_numpy(arr.copy())
