"""Sweeps split across processes (torchrun): each rank runs its seeds into its own folder; rank 0 merges."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch.distributed as dist

from multiview.experiment import read_results, write_json

MERGED = ("seeds_done", "teachers", "ensembles", "students")


def merge_files(paths: list[Path]) -> dict[str, Any]:
    """One results dict from shard files of the same experiment, seeds in order."""
    parts = [read_results(p) for p in paths]
    merged = {k: v for k, v in parts[0].items() if k not in MERGED}
    for key in MERGED:
        merged[key] = [x for p in parts for x in p[key]]
    order = {s: i for i, s in enumerate(sorted(merged["seeds_done"]))}
    merged["seeds_done"].sort()
    for key in ("teachers", "ensembles", "students"):
        merged[key].sort(key=lambda x: order[x.get("experiment_seed", x.get("seed"))])
    return merged


def merge_shards(out: Path, world: int, rank: int) -> dict[str, Any]:
    """Wait for every rank (gloo barrier), then rank 0 writes OUT/results.json from the shard files."""
    if not dist.is_initialized():
        dist.init_process_group("gloo")
    dist.barrier()
    paths = [out / "shards" / f"rank{r}" / "results.json" for r in range(world)]
    merged = merge_files([p for p in paths if p.exists()])
    if rank == 0:
        write_json(out / "results.json", merged)
    dist.barrier()
    dist.destroy_process_group()
    return merged
