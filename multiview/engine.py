"""How a simulation's networks are computed: each alone (exact, the CPU's path) or as one population (CUDA).

**exact** (the CPU): every network is trained and measured alone, as a population of one, on one thread, from its
own generator. Its numbers then depend only on what defines it (config, seed, method spec, E, role) and never on
which other networks share the run, how many worker threads or torchrun processes there are, or in which order
they finish: the same operations on the same shapes, in the same order, on one thread. A network that has stopped
costs nothing (its loop ends). ``workers`` threads train networks side by side (torch releases the GIL inside
its kernels), so both cores of a CPU are used without changing any number.

**batched** (CUDA): all students of a seed in one population tensor, one kernel per operation for all of them; much
faster on a GPU, but a network's last bits then depend on the population's size, which the lottery can amplify
into another view learned. Stopped networks are masked, not removed. Use it for throughput, not for comparing
single seeds across runs.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from fkdapp.runtime import world_size

T = TypeVar("T")
KINDS = ("auto", "exact", "batched")


def set_numerics() -> None:
    """The one numerics path of every simulation (commands and scripts alike): denormal floats flushed to zero on the
    CPU. On this project's CPU (AMD EPYC, 1 thread; seed 0, fkd and kd at E = 0..2) every record came out the same
    with and without it. Call it before training networks from Python to get the commands' numbers bit for bit."""
    torch.set_flush_denormal(True)


def run_script(script_main: Callable[[], None]) -> None:
    """Entry point of the experiment scripts under scripts/: the commands' numerics (:func:`set_numerics`), and the
    package's one-line errors printed as ``Error: ...`` (exit status 1), as in the commands here."""
    from fkdapp.errors import run_main

    set_numerics()
    run_main(script_main)


def default_workers() -> int:
    """One worker thread per core this process may use: the CPU's cores shared out among torchrun's processes."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // world_size())


@dataclass(frozen=True)
class Engine:
    """``batched``: one population per seed (CUDA); otherwise exact, ``workers`` networks at a time."""

    batched: bool = False
    workers: int = 1

    @classmethod
    def for_device(cls, device: torch.device, workers: int | None = None, kind: str = "auto") -> Engine:
        """``kind`` "auto" (batched on CUDA, exact elsewhere), "exact" or "batched"; ``workers`` threads (default:
        :func:`default_workers`)."""
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if kind not in KINDS:
            raise ValueError(f"engine must be one of {KINDS}, got {kind!r}")
        batched = device.type == "cuda" if kind == "auto" else kind == "batched"
        return cls(batched=batched, workers=workers or default_workers())

    @property
    def name(self) -> str:
        """What a results file records: the engine's numbers are comparable bit for bit only under the same name."""
        return "batched" if self.batched else "exact"

    def map(self, jobs: Sequence[Callable[[], T]]) -> list[T]:
        """Run ``jobs`` (``workers`` at a time, each on its own thread) and return their results in order."""
        if self.workers == 1 or len(jobs) <= 1:
            return [job() for job in jobs]
        with ThreadPoolExecutor(min(self.workers, len(jobs))) as pool:
            return list(pool.map(_flushed, jobs))

    @contextmanager
    def numerics(self) -> Iterator[None]:
        """The engine's numerics for the block, restored after: denormals flushed to zero (on every thread that
        runs a job, as in every command) and, exact, one torch thread (no reduction split across threads)."""
        threads, flushing = torch.get_num_threads(), _flushing()
        torch.set_flush_denormal(True)
        if not self.batched:
            torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(threads)
            torch.set_flush_denormal(flushing)


def _flushing() -> bool:
    """Whether this thread flushes denormal floats to zero now."""
    return float(torch.tensor([1e-39]) * 1.0) == 0.0


def _flushed(job: Callable[[], T]) -> T:
    """A job on a worker thread, which starts with the float settings of no thread in particular: set them."""
    torch.set_flush_denormal(True)
    return job()


class SharedProgress:
    """A progress callback that worker threads may call at once (one lock around the display)."""

    def __init__(self, progress: Callable[[int], Any] | None) -> None:
        self.progress, self.lock = progress, threading.Lock()

    def __call__(self, n: int = 1) -> None:
        if self.progress is not None:
            with self.lock:
                self.progress(n)
