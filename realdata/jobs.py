"""Studies made of many runs: each a :class:`Job` (a name, its run folder, its config), run side by side and
resumably.

A job is finished when its folder holds a run whose metrics reach its config's epochs. A study lists its jobs;
:func:`run_jobs` runs the unfinished ones as ``realdata train|distill --config OUT.json --resume --out OUT`` commands
(the config written beside the folder, so a stopped study continues each run from its last.pt), ``workers`` at a time;
the reproduction runs them in this process (:func:`realdata.engine.run_training` with ``job.config``). :func:`last_rows`
reads the finished runs back.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from fkdapp.runtime import atomic_write_text
from realdata.config import TrainConfig
from realdata.runs import RunDir


@dataclass(frozen=True)
class Job:
    """One run of a study: ``config`` trained into the folder ``out``."""

    name: str
    out: Path
    config: TrainConfig

    def status(self) -> tuple[str, bool]:
        """(what is there, whether it is finished)."""
        run = RunDir(self.out)
        if not run.is_run():
            return "to do", False
        rows = run.read_metrics()
        done = rows[-1]["epoch"] if rows else 0
        if done >= self.config.epochs:
            return "done", True
        return f"resume after epoch {done}", False

    def finished(self) -> bool:
        return self.status()[1]

    @property
    def config_file(self) -> Path:
        """Where :func:`run_jobs` writes the config the command reads: ``OUT.json`` beside the run folder."""
        return self.out.with_name(self.out.name + ".json")

    def command(self) -> list[str]:
        """The ``realdata`` arguments that run (or resume) this job from its config file."""
        verb = "distill" if self.config.teachers else "train"
        return [verb, "--config", str(self.config_file), "--resume", "--no-progress", "--out", str(self.out)]


def realdata() -> str:
    """The ``realdata`` console script beside this interpreter (else the one on PATH)."""
    return shutil.which("realdata", path=os.path.dirname(sys.executable)) or "realdata"


def run_jobs(jobs: list[Job], workers: int, threads: int, dry_run: bool) -> float:
    """Run the unfinished jobs, ``workers`` at a time at ``threads`` threads each, each logging to OUT.log; the first
    failure stops the script with its log's tail. Prints every job as [run] or [skip]; returns the wall time (s)."""
    todo = [j for j in jobs if not j.finished()]
    for j in jobs:
        print(f"{'[run] ' if j in todo else '[skip]'} {j.name}: realdata {' '.join(j.command())}", flush=True)
    if dry_run or not todo:
        return 0.0
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}

    def one(job: Job) -> None:
        job.out.parent.mkdir(parents=True, exist_ok=True)
        job.config.save(job.config_file)
        log = job.out.with_suffix(".log")
        with open(log, "a") as f:
            rc = subprocess.run([realdata(), *job.command()], stdout=f, stderr=subprocess.STDOUT, env=env).returncode
        if rc != 0:
            tail = log.read_text().strip().splitlines()[-3:]
            raise SystemExit(f"Error: realdata {' '.join(job.command())} failed (exit {rc}); {log}:\n" +
                             "\n".join(tail))
        print(f"done: {job.out}", flush=True)

    start = time.time()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, todo))
    return time.time() - start


class Ledger:
    """:func:`run_jobs` phase by phase, with the wall time of each summed over the sittings that ran something, kept
    in ``path`` (a study's seconds.json); ``phases`` are listed from the start (at 0 s)."""

    def __init__(self, path: Path, workers: int, threads: int, dry_run: bool, phases: Sequence[str] = ()) -> None:
        self.path, self.workers, self.threads, self.dry_run = path, workers, threads, dry_run
        saved = json.loads(path.read_text()) if path.is_file() else {}
        self.seconds: dict[str, float] = {**dict.fromkeys(phases, 0.0), **saved}

    def run(self, phase: str, jobs: list[Job]) -> None:
        """Run the phase's unfinished jobs (side by side, resumable) and add its wall time."""
        spent = run_jobs(jobs, self.workers, self.threads, self.dry_run)
        if spent:
            self.seconds[phase] = self.seconds.get(phase, 0.0) + spent
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.path, json.dumps(self.seconds) + "\n")


def last_row(folder: Path) -> dict | None:
    """The last metrics row of the finished run in ``folder`` (None if unfinished or absent)."""
    run = RunDir(folder)
    if not run.is_run():
        return None
    rows = run.read_metrics()
    return rows[-1] if rows and rows[-1]["epoch"] == run.config().epochs else None


def last_rows(folder: Path) -> list[tuple[Path, dict]]:
    """(seed folder, last metrics row) of every finished run in ``folder``'s seed folders s0, s1, ... (not their
    logs s0.log, ...)."""
    runs = sorted(p for p in folder.glob("s*") if p.is_dir())
    return [(run, row) for run in runs if (row := last_row(run)) is not None]


def last_accs(folder: Path, split: str = "test") -> list[float]:
    """The last-epoch accuracy (%) on ``split`` (test or val) of every finished run in ``folder``'s seed folders."""
    return [row[f"{split}_acc"] for _, row in last_rows(folder)]
