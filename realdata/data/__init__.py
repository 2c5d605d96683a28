"""Image data sets from their official files, and device-side batching and augmentation.

- :mod:`realdata.data.formats`: CIFAR-10/100 and Fashion-MNIST files -> uint8 ``(N, C, H, W)`` tensors
  (:func:`load_dataset`); :mod:`realdata.data.download`: downloads with checksums;
- :mod:`realdata.data.subsets`: class-balanced subsets, channels and sizes of two data sets brought together;
- :mod:`realdata.data.augment`: :func:`augment`, :func:`normalize`, :func:`batches` and :func:`eval_batches`, on
  whole batches on the tensors' device; :mod:`realdata.data.randaugment`: :func:`rand_augment`, the strong view
  (RandAugment and Cutout) of two-view methods.
"""

from realdata.data.augment import augment, batches, eval_batches, normalize
from realdata.data.core import DataError, ImageData
from realdata.data.formats import (
    ARCHIVES,
    DATASETS,
    FASHION_MNIST_FILES,
    FASHION_MNIST_SYSTEM_DIR,
    cifar_status,
    load_dataset,
)
from realdata.data.randaugment import rand_augment
from realdata.data.subsets import adapt, balanced_subset, pad_to, resize_channels, split_pool, train_val_split

__all__ = [
    "ARCHIVES",
    "DATASETS",
    "FASHION_MNIST_FILES",
    "FASHION_MNIST_SYSTEM_DIR",
    "DataError",
    "ImageData",
    "adapt",
    "augment",
    "balanced_subset",
    "batches",
    "eval_batches",
    "cifar_status",
    "load_dataset",
    "normalize",
    "pad_to",
    "rand_augment",
    "resize_channels",
    "split_pool",
    "train_val_split",
]
