"""Several processes training one student (torchrun + DistributedDataParallel), and the global batch of the
relational losses.

``torchrun --nproc-per-node N -m realdata distill ...`` starts N processes; :func:`setup` joins them from torchrun's
environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``PORT``): NCCL with device
``cuda:LOCAL_RANK`` on GPUs, gloo on the CPU. Outside torchrun (or with one process) there is no process group, the
world size is 1 and every function here is the identity, so single-process training is the same code path.

The global batch. ``--batch-size`` is the global batch; each rank trains on its shard (B_local = B / world). The
per-sample terms (cross-entropy, KD, FKD's feature regulariser) are means over the local shard; DDP averages the
gradients over ranks, so the result is the gradient of the mean over the global batch, as usual. The relational
terms (FKD's kernel distance, SP, PKT, RKD) compare every pair of samples, so they are computed on the features of
the whole global batch, gathered from every rank with :func:`global_batch`: their value is the single-process value
on the concatenated batch, and it is the same on every rank.

The gradient of a relational term. Let L(z_1, ..., z_W) be the loss of the gathered features, z_r rank r's slice.
Rank r's gather keeps the autograd graph of its own slice only (the others arrive as constants), so its backward
pass yields dL/dz_r dz_r/dtheta, rank r's share of the full gradient dL/dtheta = sum_r dL/dz_r dz_r/dtheta (every
rank computes the same L, so dL/dz_r is exact, with no communication in the backward pass). DDP then averages the
ranks' gradients, which would give (1/W) dL/dtheta: so :func:`global_batch` multiplies the gradient flowing into the
local slice by W (the loss value is unchanged), and after DDP's averaging every rank holds exactly dL/dtheta, the
single-process gradient of the global-batch loss. This holds for any function of the gathered batch that every
rank computes identically (``tests/test_distributed.py`` checks it against single-process gradients).
"""

from __future__ import annotations

import atexit
import os

import torch
import torch.distributed as dist
from torch import Tensor

from fkdapp.runtime import DeviceError, is_main, rank, resolve_device, world_size

__all__ = ["all_reduce_sum", "average_grads", "barrier", "env_world_size", "global_batch", "is_distributed",
           "is_main", "rank", "setup", "world_size"]


def env_world_size() -> int:
    """The number of processes torchrun started (1 outside torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_distributed() -> bool:
    """True in a process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def setup(device: str = "auto") -> torch.device:
    """This process's device; under torchrun with several processes, also join (once) the process group.

    ``device`` is ``auto``, ``cpu``, ``cuda`` or ``cuda:N``; under torchrun a CUDA device is always
    ``cuda:LOCAL_RANK`` (one GPU per process, the index given is ignored) with NCCL, the CPU uses gloo.
    """
    dev = resolve_device(device)
    if env_world_size() <= 1:
        return dev
    if dev.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if local >= torch.cuda.device_count():
            raise DeviceError(f"LOCAL_RANK {local} but this machine has {torch.cuda.device_count()} CUDA devices; "
                              f"start at most that many processes per node")
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        # Workers that torchrun restarts (--max-restarts) may meet the store of the killed ones, whose addresses it
        # still holds (gloo then waits for a peer that is gone); keys under the restart count cannot be stale.
        store, rank_, world = next(dist.rendezvous("env://"))
        restart = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", store=dist.PrefixStore(f"restart{restart}",
                                                                                               store),
                                rank=rank_, world_size=world)
        atexit.register(shutdown)
    elif (dist.get_backend() == "nccl") != (dev.type == "cuda"):
        raise DeviceError(f"the process group uses {dist.get_backend()}, which does not fit device {dev}")
    return dev


def shutdown(wait: bool = False) -> None:
    """Leave the process group (registered to run at exit by :func:`setup`). With ``wait`` (a run that finished on
    every rank), first wait until every rank is done with it: a rank tearing down its gloo threads while another
    still uses the connection can abort at exit."""
    if dist.is_available() and dist.is_initialized():
        if wait:
            barrier()
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every rank (nothing to wait for in one process)."""
    if not is_distributed():
        return
    if dist.get_backend() == "nccl":
        dist.barrier(device_ids=[torch.cuda.current_device()])
    else:
        dist.barrier()


def all_reduce_sum(x: Tensor) -> Tensor:
    """The sum of ``x`` over ranks (``x`` itself in one process); ``x`` is not modified."""
    if not is_distributed():
        return x
    x = x.clone()
    dist.all_reduce(x)
    return x


def average_grads(params: list[Tensor]) -> None:
    """Replace each parameter's gradient by its mean over ranks, in one all-reduce of the gradients laid end to end
    (for modules trained outside DDP). Every rank must pass the same parameters and run the same graph, so that the
    same ones have no gradient (they are left out). Nothing to do in one process."""
    grads = [p.grad for p in params if p.grad is not None]
    if not is_distributed() or not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    for g, mean in zip(grads, flat.split([g.numel() for g in grads]), strict=True):
        g.copy_(mean.view_as(g))


class _ScaleGrad(torch.autograd.Function):
    """The identity, with the gradient multiplied by ``scale`` on the way back."""

    @staticmethod
    def forward(ctx, x: Tensor, scale: float) -> Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        return grad * ctx.scale, None


def gather_with_grad(x: Tensor, grad_scale: float = 1.0) -> Tensor:
    """All-gather ``x`` (B_local, ...) from every rank into (world * B_local, ...), ordered by rank.

    This rank's slice is ``x`` itself, keeping its autograd graph (its gradient multiplied by ``grad_scale``); the
    other ranks' slices are constants. Every rank must call it with the same shape. In one process: ``x``.
    """
    if not is_distributed():
        return x
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.detach().contiguous())
    if x.requires_grad:
        parts[dist.get_rank()] = _ScaleGrad.apply(x, grad_scale) if grad_scale != 1.0 else x
    else:
        parts[dist.get_rank()] = x
    return torch.cat(parts)


def global_batch(x: Tensor) -> Tensor:
    """The global batch of ``x`` for a loss that every rank computes identically on it, under DDP.

    :func:`gather_with_grad` with the local slice's gradient multiplied by the world size, so that after DDP's
    averaging over ranks the gradient is the single-process gradient of the global-batch loss (see the module
    docstring). In one process: ``x``.
    """
    return gather_with_grad(x, grad_scale=float(world_size()))
