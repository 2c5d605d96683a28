"""The converged Fashion-MNIST study: every distillation method for one teacher -> student pair, and the
ensemble-size curve (the real-image twin of the simulation's failure-vs-E law, like the FKD paper's Figure 4).

Runs (each a ``realdata`` command in its own folder under OUT, JOBS at a time at THREADS threads each; every
command passes --resume, so the script can be stopped and run again: finished runs are skipped, unfinished ones
continue from their last.pt):

1. teachers, on the whole training set (60000 images), --teacher-epochs epochs of cross-entropy: resnet20 (seed 0,
   the pair's teacher) and resnet8 seeds 0..max(E)-1 (the ensemble's members, the student's own architecture);
2. students, resnet8 on a fixed class-balanced subset of --train-size images, --epochs epochs (the recipe's
   learning-rate steps scaled to them, so the curves flatten), seeds --seeds:
   - the methods table: ce (alone) and every method from the resnet20 teacher (fkd with and without its
     regulariser);
   - the ensemble curve: fkd and kd from the first E resnet8 teachers, E in --ensemble;
3. the teacher ensembles' own accuracy (``realdata evaluate`` of E checkpoints: mean logits), and the student
   alone's kernel distance to the pair's teacher (``realdata evaluate --kernel-to``), the baseline for the
   kernel-alignment monitor that every distilled run logs.

Writes FIGURES/fashion_mnist_study_{methods,ensemble}.md (``realdata report``: last and best accuracy, mean ± 95%
interval), FIGURES/fashion_mnist_study_alignment.md (per method: last-epoch accuracy and kernel distance to the
teacher, and their rank correlation over methods),
FIGURES/fashion_mnist_study_curves.png (``realdata plot`` of the methods: accuracy per epoch and the kernel
distance to the teacher), FIGURES/fashion_mnist_study_ensemble.png (last-epoch accuracy against E) and
FIGURES/fashion_mnist_study.json (every number, the commands' wall time, the device).

Sized for about 3-4 hours on 2 CPU cores with the defaults (JOBS=2, 1 thread each); needs Fashion-MNIST on disk
(``apt-get install dataset-fashion-mnist``, or the four IDX files under --data-dir).

    python scripts/fashion_mnist_study.py --out runs/fmnist-study --jobs 2
"""

from __future__ import annotations

import argparse
from pathlib import Path

import _root  # noqa: F401  (studies/ is in the repository, not installed)

from fkdapp.errors import run_main
from fkdapp.settings import parse_seeds, seeds_arg
from studies.fashion import ROWS, Options, run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/fmnist-study"))
    ap.add_argument("--figures", type=Path, default=Path("figures"))
    ap.add_argument("--jobs", type=int, default=2, help="runs side by side")
    ap.add_argument("--threads", type=int, default=1, help="threads per run")
    ap.add_argument("--seeds", type=seeds_arg, default=parse_seeds("0-4"))
    ap.add_argument("--ensemble", type=lambda t: sorted({int(e) for e in t.split(",") if t != "none"}),
                    default=[1, 2, 4], help="the ensemble curve's E values, or none (no curve)")
    ap.add_argument("--train-size", type=int, default=2000, help="the students' class-balanced subset")
    ap.add_argument("--epochs", type=int, default=20, help="student epochs")
    ap.add_argument("--teacher-epochs", type=int, default=10)
    ap.add_argument("--teacher-train-size", type=int, default=None, help="[default: the whole training set]")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--eval-batch-size", type=int, default=500)
    ap.add_argument("--data-dir", default="data", help="also looked in: /usr/share/datasets/fashion-mnist")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--methods", default=None, help="comma list of the methods table's rows [default: all]: "
                    + ", ".join(ROWS))
    ap.add_argument("--dry-run", action="store_true", help="print the commands and what is done; run nothing")
    run(Options(**vars(ap.parse_args())))


if __name__ == "__main__":
    run_main(main)
