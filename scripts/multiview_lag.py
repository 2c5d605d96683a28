"""The E >= 2 lag: variants that make the kernel act while the lottery is decided, a fair KD baseline, a decision
rule fixed in advance, and the law against k.

Phases (each a resumable `multiview sweep` under OUT, teachers pooled per (config, seed) in OUT/teachers-<k>):

1. select (k = 10, seeds 0-3, E = 2 and 4): the shipped fkd; scale-relative normalisation (eps_rel 0.1); gradient
   balancing (c = 0.3, 0.5, 1, with eps_rel 0.1, always or until step 200); a KD warm start (kd_steps 100, 200);
   the kernel alone for the first 150 / 400 steps; the "hand-over" variant (eps_rel 0.1, balance 1 until step 150,
   then lambda); and KD at kd_weight 1, 3, 10, 30. The best FKD variant and the best KD: the lowest mean failure
   over those seeds and E among settings that keep >= 90% of their own views with multi-view error <= 2%.
2. report (k = 10, seeds 4-7, E = 0..4): shipped fkd, the best variant, the best KD (and KD at 3, shipped).
3. Decision rule (fixed in the issue before any of this ran): the variant becomes the default only if at k = 10
   (seeds 4-7) its failure at each of E = 2, 3, 4 is <= 0.7x the shipped fkd's, it keeps >= 90% of its own views
   and every student's multi-view error is <= 2%; then the same at k = 20 on 4 seeds.
4. The law against k: shipped fkd and the best variant at k = 20 (seeds 0-3) and k = 30 (seeds 0-1), E = 0..4;
   any phase kNN runs configs/kNN.json on the seeds --k-seeds gives it (k40 and k80 are for a GPU). Phase k10
   extends the report's sweep to the seeds --k-seeds gives k = 10 (0-7): the k-trend's k = 10 is those seeds, the
   decision rule stays on the report's seeds.

    python scripts/multiview_lag.py --out runs/lag --jobs 2

On one GPU, the k-trend at k = 40 and 80 with 16 seeds, for the variant chosen on the CPU (its results folder need
not be there):

    python scripts/multiview_lag.py --out runs/lag --phases k40,k80 --k-seeds 40:0-15 --k-seeds 80:0-15 --device cuda \
        --jobs 1 --variant "fkd:eps_rel=0.1,balance=1,balance_until=150"
"""

from __future__ import annotations

import argparse
from pathlib import Path

import _root  # noqa: F401  (studies/ is in the repository, not installed)

from fkdapp.settings import parse_seeds, seeds_arg
from multiview.engine import run_script
from studies.lag import Options, k_seeds_arg, run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/lag"))
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--phases", default="select,report,k10,k20,k30",
                    help="select, report and any kNN (configs/kNN.json); empty: only tabulate")
    ap.add_argument("--figures", type=Path, default=Path("figures"))
    ap.add_argument("--select-seeds", type=seeds_arg, default=parse_seeds("0-3"), help="seeds of select")
    ap.add_argument("--report-seeds", type=seeds_arg, default=parse_seeds("4-7"), help="seeds of report")
    ap.add_argument("--k-seeds", type=k_seeds_arg, action="append", default=None, metavar="K:SEEDS",
                    help="seeds of phase kK, repeatable [default: 10:0-7 20:0-3 30:0-1]")
    ap.add_argument("--device", default="cpu", help="device of every sweep (cuda: use --jobs 1)")
    ap.add_argument("--variant", default=None, help="the FKD variant of the kNN phases [default: the selected one]")
    ap.add_argument("--results", default=None,
                    help="K:RESULTS.json,...: existing sweeps whose shipped fkd joins the k-trend where no phase of "
                         "this run made that k (e.g. the committed figures/multiview_k10_results.json)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="config override for every sweep")
    ap.add_argument("--variants", default=None, help="';'-separated FKD specs to select from [default: all above]")
    ap.add_argument("--kd-grid", default=None, help="';'-separated KD specs [default: kd_weight 1, 3, 10, 30]")
    run(Options(**vars(ap.parse_args())))


if __name__ == "__main__":
    run_script(main)
