"""Process ranks under torchrun (one process outside it, rank 0)."""

from __future__ import annotations

import os


def rank() -> int:
    """This process's rank: the process group's once joined, else torchrun's ``RANK`` (0 outside torchrun)."""
    import torch.distributed as dist  # here: a command's --help must not import torch

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    """The number of processes: the process group's once joined, else torchrun's ``WORLD_SIZE`` (1 outside)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main() -> bool:
    """True on rank 0, the one process that writes files and prints (always, outside torchrun)."""
    return rank() == 0
