#!/usr/bin/env python
"""Reproduce a CIFAR-100 table with ``realdata``: the FKD paper's (He & Ozay, ICLR 2022; ``--suite fkd``, the
default) or the CRD / DKD benchmark's pairs with every method after DKD (``--suite crd``).

The suites, their columns, every (pair, method) run's settings (DKD's beta and ReviewKD's weight per pair, KD+LS's
temperature, the optimiser of KD+DOT) and the published numbers with their sources are data files under
``configs/realdata/cifar100/`` (``suites.json``, ``<teacher>-<student>/<method>.json``, ``published.json``); a
pair's config file works on its own too: ``realdata distill --config configs/realdata/cifar100/vgg13-vgg8/dkd.json
--teacher vgg13.pth``. For every pair and method ``--seeds`` students are trained with the standard recipe (SGD,
batch 64, lr 0.05 (0.01 for ShuffleV1), 240 epochs, lr x0.1 at 150/180/210; ``realdata/config.py``). Each teacher is
trained once (seed 0, cross-entropy, the same recipe) unless ``--teacher-dir`` holds the published checkpoints, each
``{'model': state_dict}``: a folder of ``<arch>.pth`` (``resnet32x4.pth``, ``vgg13.pth``, ...), mdistiller's
``cifar_teachers`` folder (``<arch>_vanilla/ckpt_epoch_240.pth``) or its ``cifar_teachers.tar`` as downloaded
(extracted once beside it). Every run is a ``realdata`` run folder under ``--out``::

    OUT/teachers/<arch>/                      a teacher trained here
    OUT/runs/ce/<student>/s<seed>/            the student alone (shared by the pairs with that student)
    OUT/runs/<method>/<teacher>-<student>/s<seed>/

A finished run is skipped and an unfinished one resumed (``realdata``'s ``--resume``), so the script can be
stopped and started again at will; runs go seed by seed, so a complete table with fewer seeds comes first.
At the end (and after every run) OUT/report.md holds the table in the paper's layout (last-epoch top-1, mean ± std
over the finished seeds, beside the published numbers) and the full ``realdata report`` table (last and best).

    python scripts/reproduce_cifar100.py --data-dir data --download --out runs/cifar100   # everything (GPU)
    python scripts/reproduce_cifar100.py --dry-run                                      # the plan only
    python scripts/reproduce_cifar100.py --suite crd --dry-run                          # the benchmark's table
    torchrun --nproc-per-node 4 scripts/reproduce_cifar100.py ...   # each run on 4 GPUs (DDP, same global batch)

Scale (``--dry-run`` counts it): 315 student runs of 240 epochs plus 3 teachers (``--suite crd``: 1630 and 6); on
one GPU that is days. ``--pairs`` (T-S), ``--methods`` and ``--seeds`` (a count, a range 2-4 or a list) select a part,
e.g. to share the work among machines once the teachers exist. docs/reproduce.md: teachers, configs, flag mapping.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import _root  # noqa: F401  (studies/ is in the repository, not installed)

from studies.reproduce import COLUMNS, Options, run


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/cifar100_reproduction", help="Folder of all runs and report.md.")
    p.add_argument("--data-dir", default="data", help="Where cifar-100-python/ is (or goes, with --download).")
    p.add_argument("--download", action="store_true", help="Fetch CIFAR-100 if it is missing.")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N.")
    p.add_argument("--epochs", type=int, default=240, help="Epochs of every run (milestones scale with it).")
    p.add_argument("--batch-size", type=int, default=64,
                   help="Global batch (the recipe's 64); the learning rates are the recipe's, for batch 64.")
    p.add_argument("--seeds", default="5",
                   help="Student seeds: a count N (seeds 0..N-1), a range like 2-4 or a list like 0,3.")
    p.add_argument("--suite", default="fkd", choices=["fkd", "crd"],
                   help="The table to plan: fkd (the FKD paper's four pairs and its columns) or crd (the CRD / DKD "
                        "benchmark's pairs with every method after DKD); configs/realdata/cifar100/suites.json.")
    p.add_argument("--pairs", default=None, help="Comma-separated TEACHER-STUDENT pairs (or 'TEACHER->STUDENT', "
                   "quoted) [the suite's].")
    p.add_argument("--methods", default=None,
                   help=f"Comma-separated, from: {', '.join(COLUMNS)} (ce: the student alone; fkd-noreg: FKD with "
                        f"feature_reg 0; kd-ls: KD with logit standardisation; kd-dot: KD with DOT) [the suite's].")
    p.add_argument("--teacher-dir", default=None,
                   help="Published teachers ({'model': state_dict}), used instead of training them: a folder of "
                        "<arch>.pth, mdistiller's cifar_teachers folder (<arch>_vanilla/ckpt_epoch_240.pth) or its "
                        "cifar_teachers.tar as downloaded.")
    p.add_argument("--dry-run", action="store_true", help="Print the plan (and each run's state) and stop.")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    return run(Options(**vars(build_parser().parse_args(argv))))


if __name__ == "__main__":
    sys.exit(main())
