"""Sweeps split across processes (torchrun): each rank runs its seeds into its own folder; rank 0 merges."""

from __future__ import annotations

import json
from pathlib import Path

import torch.distributed as dist

from multiview.records import DistillResults, ResultsError, read_distill, write_results


def merge_files(paths: list[Path]) -> DistillResults:
    """One results object from files of the same experiment (config, teacher counts, methods, engine; a one-line
    error otherwise), seeds in order; a seed in two files is an error. The environment is the first file's."""
    from multiview.config import Config

    def identity(r: DistillResults) -> dict:
        return {"config": Config.from_dict(r.config).to_dict(), "teacher counts": r.teacher_counts,
                "methods": r.methods, "engine": r.environment.get("engine", "batched")}

    parts = [read_distill(p) for p in paths]
    merged = parts[0]
    for path, part in zip(paths[1:], parts[1:], strict=True):
        a, b = identity(merged), identity(part)
        differ = [k for k in a if json.dumps(a[k], sort_keys=True) != json.dumps(b[k], sort_keys=True)]
        if differ:
            raise ResultsError(f"{path} is another experiment than {paths[0]} ({', '.join(differ)} differ); merge "
                               "the files of one sweep")
        twice = sorted(set(merged.seeds_done) & set(part.seeds_done))
        if twice:
            raise ResultsError(f"{path} holds seeds {twice} again; merge files of different seeds")
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
