"""Sweeps split across processes (torchrun): each rank runs its seeds into its own folder; rank 0 merges."""

from __future__ import annotations

from pathlib import Path

import torch.distributed as dist

from multiview.records import DistillResults, read_distill, write_results


def merge_files(paths: list[Path]) -> DistillResults:
    """One results object from shard files of the same experiment, seeds in order."""
    parts = [read_distill(p) for p in paths]
    merged = parts[0]
    for part in parts[1:]:
        merged.add(part)
    merged.sort_by_seed()
    return merged


def merge_shards(out: Path, world: int, rank: int) -> DistillResults:
    """Wait for every rank (gloo barrier), then rank 0 writes OUT/results.json from the shard files."""
    if not dist.is_initialized():
        dist.init_process_group("gloo")
    dist.barrier()
    paths = [out / "shards" / f"rank{r}" / "results.json" for r in range(world)]
    merged = merge_files([p for p in paths if p.exists()])
    if rank == 0:
        write_results(out / "results.json", merged)
    dist.barrier()
    dist.destroy_process_group()
    return merged
