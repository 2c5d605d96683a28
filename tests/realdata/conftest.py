"""Fixtures the image-method tests share: two teacher checkpoints of different architectures."""

import pytest
import torch

from fkdapp.runtime import atomic_save
from realdata.checkpoints import model_checkpoint
from realdata.models import build


@pytest.fixture(scope="module")
def teachers(tmp_path_factory):
    paths = []
    for seed, arch in ((1, "resnet8"), (2, "resnet14")):
        torch.manual_seed(seed)
        path = tmp_path_factory.mktemp("t") / f"{arch}.pt"
        atomic_save(model_checkpoint(build(arch, num_classes=10), arch, 10, 3, 32, "cifar10"), path)
        paths.append(str(path))
    return paths
