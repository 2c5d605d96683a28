"""Named multiview sweeps run in this process, resumably, with one teacher pool per data setting and the wall time
of every sitting kept beside the results; and one ``multiview sweep`` run as a subprocess (:func:`cli_sweep`)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from fkdapp.progress import Progress
from fkdapp.runtime import write_json
from multiview.config import Config
from multiview.engine import Engine
from multiview.experiment import distill_experiment, teacher_key
from multiview.records import DistillResults, read_distill


@dataclass(frozen=True)
class Setting:
    """One sweep: a name (its folder), config overrides on the defaults, the methods and the teacher counts."""

    name: str
    overrides: tuple[str, ...]
    methods: tuple[str, ...]
    teachers: tuple[int, ...] = (0, 1, 2, 3, 4)
    notes: dict[str, Any] = field(default_factory=dict, compare=False)

    def config(self, extra: Sequence[str] = ()) -> Config:
        """The setting's config; ``extra`` overrides come last (tests shrink the problem with them)."""
        return Config().with_overrides([*self.overrides, *extra])


def read_json(path: Path) -> Any:
    """A JSON file's contents, or None where there is no such file (the study's own state files)."""
    return json.loads(path.read_text()) if path.is_file() else None


def pool_folder(out: Path, cfg: Config, engine: Engine) -> Path:
    """The teacher pool of ``cfg``'s data and teacher settings: settings that differ only in students share it."""
    key = teacher_key(cfg, 0, engine)
    key.pop("seed")
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    return out / "teachers" / digest


def cli_sweep(out: Path, specs: Sequence[str], seeds: str, teachers: str, *, jobs: int = 1, pool: Path | None = None,
              config: Path | str | None = None, overrides: Sequence[str] = (), device: str = "cpu",
              extra: Sequence[str] = ()) -> float:
    """One ``multiview sweep`` into ``out`` as a subprocess (under torchrun with ``jobs`` processes), every process
    at one thread, its output appended to OUT.log; ``extra``: more sweep options, last. Returns its wall time (s);
    the sweep resumes by seed."""
    args = ["sweep", "--methods", ",".join(specs), "--seeds", seeds, "--teachers", teachers, "--device", device,
            "--out", str(out), *(["--teacher-pool", str(pool)] if pool else []),
            *(["--config", str(config)] if config else []), *sum((["--set", o] for o in overrides), []), *extra]
    if jobs > 1:
        torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable)) or "torchrun"
        cmd = [torchrun, "--standalone", "--nproc-per-node", str(jobs), "-m", "multiview", *args]
    else:
        cmd = [sys.executable, "-m", "multiview", *args]
    out.parent.mkdir(parents=True, exist_ok=True)
    start = time.time()
    with open(out.with_suffix(".log"), "a") as log:
        subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    return time.time() - start


def run_setting(out: Path, setting: Setting, seeds: Sequence[int], engine: Engine,
                extra: Sequence[str] = ()) -> DistillResults:
    """The setting's sweep on ``seeds`` into OUT/sweeps/NAME (seeds already there are read back, not run again);
    the wall time of this sitting is added to OUT/sweeps/NAME/wall.json under the seeds it ran."""
    cfg = setting.config(extra)
    folder = out / "sweeps" / setting.name
    wall_path = folder / "wall.json"
    done = set(read_distill(folder / "results.json").seeds_done) if (folder / "results.json").is_file() else set()
    todo = [s for s in seeds if s not in done]
    start = time.time()
    progress = Progress(None, f"{setting.name}: seeds {list(seeds)}")
    results = distill_experiment(cfg, list(seeds), list(setting.teachers), list(setting.methods), torch.device("cpu"),
                                 folder, pool=pool_folder(out, cfg, engine), engine=engine,
                                 on_seed=lambda r: progress.update(f"seed {r.seeds_done} done", force=True))
    progress.close()
    if todo:
        wall = read_json(wall_path) or {}
        wall[",".join(map(str, todo))] = round(time.time() - start, 1)
        write_json(wall_path, wall)
    return results


def wall_seconds(out: Path, setting: Setting) -> float:
    """Every sitting's wall time of a setting's sweep, summed (0 where none is recorded)."""
    return float(sum((read_json(out / "sweeps" / setting.name / "wall.json") or {}).values()))


def restrict(results: DistillResults, seeds: Sequence[int]) -> DistillResults:
    """The part of ``results`` on ``seeds`` (the select or the report seeds of one sweep file)."""
    keep = set(seeds)
    return DistillResults(config=results.config, teacher_counts=results.teacher_counts, methods=results.methods,
                          view_threshold=results.view_threshold, environment=results.environment,
                          seeds_done=[s for s in results.seeds_done if s in keep],
                          teachers=[t for t in results.teachers if t.seed in keep],
                          ensembles=[e for e in results.ensembles if e.seed in keep],
                          students=[s for s in results.students if s.seed in keep])
