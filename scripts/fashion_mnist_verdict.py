"""A fair verdict on FKD against KD and the other methods on real images: every method tuned with the same budget on
a validation split, then reported on fresh seeds on the test set.

The setting (Fashion-MNIST, the converged study's): a resnet20 teacher (seed 0, the whole training set, --teacher-
epochs of cross-entropy) -> resnet8 students on a fixed class-balanced subset of --train-size labelled images,
--epochs epochs of the standard recipe scaled (batch 64, lr 0.05, x0.1 at 5/8, 3/4, 7/8 of training), a class-
balanced validation split of --val-size images outside the subset (the same for every run). The same data, epochs,
schedule and batch for every method; only the method's own weights are tuned.

Budgets and rules, declared before running:

1. ``select`` (seeds --select-seeds, 2 by default): the first --settings settings of each method's grid (the same
   number for every method), each run on both seeds; the chosen setting is the one with the highest mean
   last-epoch *validation* accuracy (ties: the earlier in the list). Each grid lists a coarse log grid first, then
   the points between, so that the first 3 span a factor of 16:
   - ce (the student alone; it has no distillation weight): weight decay x (1/4, 1, 4, 1/2, 2, 8) of 5e-4;
   - kd, dkd (alpha and beta together), sp, pkt, rkd, at, fitnet, crd: the method's weight x (1/4, 1, 4, 1/2, 2,
     8) of its published CIFAR-100 value (the log grid ``FACTORS``);
   - fkd: lambda in (25, 100, 400) at feature_reg 1e-4, then the same at 1e-3 (its published 100 and 1e-4
     inside, the other public implementation's 300 near 400).
2. ``report`` (seeds --report-seeds, fresh ones): each method at its chosen setting; last-epoch test accuracy,
   mean ± 95% interval; the per-seed paired difference FKD - KD.
3. ``lowlabel`` (report seeds): 500 labelled images (--low-labels): the student alone, FKD, KD and the best other
   method by validation (their chosen settings), once on the labelled images alone and once with the distillation
   terms also on --unlabelled unlabelled training images outside the labelled subset and the validation split.
4. ``recipe`` (report seeds; rows of their own, not part of FKD's selection): FKD at its chosen setting with the
   classifier reading unit-length features (norm_head=1); with the norm instead of the squared norm as regulariser
   (reg_power=1, weight x4, so that it is of the same size for features of norm about 4); and FKD and KD at their
   chosen settings with batch 256 (lr scaled linearly to 0.2, the same rule for both).
5. ``ensemble`` (report seeds): teachers that differ: four architectures (resnet20, wrn_16_2, vgg8, resnet14), each
   trained on its own quarter of the training images (``--train-part i/4``), so that each sees different data and
   their ensembles are clearly better than one; FKD and KD at their chosen settings from the first E of them, E = 1,
   2, 4; each teacher ensemble's test accuracy (mean logits).

Every run is a ``realdata`` command in its own folder under OUT (--jobs at a time, --threads threads each; each
passes --resume, so the script can be stopped and run again: finished runs are skipped, unfinished ones continue).
``--from PHASE`` and ``--until PHASE`` run the phases between (the teacher is trained only for the phases that use
it: select to recipe); the selection is read from the finished selection runs, or with ``--selection RECORD`` from
the record of an earlier run of this script (checked against this run's grids), so that a later phase can run in
another sitting or on another machine without the selection runs; with ``--from select`` the record's choices are
kept and only the methods it lacks are selected (a verdict extended with new methods). Writes FIGURES/NAME.md
(the tables of the phases run), FIGURES/NAME.json (every number, the selection record, the wall time per phase, the
device) and FIGURES/NAME.png (the ensemble curve), NAME being --name (fashion_mnist_verdict).

The runs read the test set at their last epoch only (``--val-size``): it never chooses a setting or a checkpoint.

Cost measured on an AMD EPYC CPU (2 jobs of 1 thread): the teacher about 30-45 min of one core; with the defaults
(3 settings per method, 2 selection seeds, 3 report seeds: the budget that fits one 3-hour session) selection 39 min,
report 28, lowlabel 8, recipe 9; the ensemble's four member teachers 21 min, its students 39 min at 5 seeds. The
full budget, ``--settings 6 --report-seeds 2,3,4,5,6``, is about twice the selection and the later phases.

    python scripts/fashion_mnist_verdict.py --out runs/fmnist-verdict --until select
    python scripts/fashion_mnist_verdict.py --from ensemble --selection figures/fashion_mnist_verdict.json \
        --name fashion_mnist_verdict_ensemble
"""

from __future__ import annotations

import argparse
from pathlib import Path

import _root  # noqa: F401  (studies/ is in the repository, not installed)

from fkdapp.errors import run_main
from fkdapp.settings import parse_seeds, seeds_arg
from studies.verdict import PHASES, WEIGHTED, Options, run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/fmnist-verdict"))
    ap.add_argument("--figures", type=Path, default=Path("figures"))
    ap.add_argument("--from", dest="start", default="select", choices=PHASES, help="the first phase to run")
    ap.add_argument("--until", default="ensemble", choices=PHASES, help="the last phase to run")
    ap.add_argument("--selection", type=Path, help="take the chosen settings from this record of an earlier run "
                    "(its FIGURES/NAME.json) instead of from the selection runs")
    ap.add_argument("--name", default="fashion_mnist_verdict", help="the results' file name under --figures")
    ap.add_argument("--jobs", type=int, default=2, help="runs side by side")
    ap.add_argument("--threads", type=int, default=1, help="threads per run")
    ap.add_argument("--select-seeds", type=seeds_arg, default=parse_seeds("0-1"))
    ap.add_argument("--report-seeds", type=seeds_arg, default=parse_seeds("2-4"))
    ap.add_argument("--methods", default=",".join(["ce", *WEIGHTED, "fkd"]), help="the methods [default: all]")
    ap.add_argument("--settings", type=int, default=3, help="the first N settings of each grid, the same N for "
                    "every method [3: the coarse grid; 6: the full one]")
    ap.add_argument("--train-size", type=int, default=2000)
    ap.add_argument("--val-size", type=int, default=1000)
    ap.add_argument("--low-labels", type=int, default=500)
    ap.add_argument("--unlabelled", type=int, default=10000)
    ap.add_argument("--ensemble", type=lambda t: sorted({int(e) for e in t.split(",")}), default=[1, 2, 4],
                    help="the ensemble sizes E (at most 4)")
    ap.add_argument("--big-batch", type=int, default=256, help="the recipe rows' large batch (lr scaled linearly)")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--teacher-epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--eval-batch-size", type=int, default=500)
    ap.add_argument("--data-dir", default="data", help="also looked in: /usr/share/datasets/fashion-mnist")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dry-run", action="store_true", help="print the commands and what is done; run nothing")
    run(Options(**vars(ap.parse_args())))


if __name__ == "__main__":
    run_main(main)
