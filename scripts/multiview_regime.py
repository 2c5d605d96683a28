"""Where does the FKD student follow 2^-(E+1)? A map of regimes, designed before it runs.

Factors that plausibly decide whether a student can still take its teachers' views after its own lottery:
training samples per class (25, 50, 100), the kernel's eps (0.1, 0.316, 1, and eps relative to the feature scale:
``eps_rel=0.1``), lambda's scale (lambda_E = lambda E k / 10 with lambda = 5, 10, 20) and k (10, 20, 30).

A cell is (samples per class, k, FKD spec). Every cell runs its FKD spec and KD at weight 1 (the baseline that
follows the law best so far), E = 0..4, as one sweep per (data, method) (in this process, the CPU's exact engine)
with one teacher pool per data setting. The exact engine makes a network's records independent of what else a
sweep holds, so a cell's records are the same whichever phase or sweep computes them, and KD and the teachers are
computed once per data.

Phases, run in order up to ``--until`` (each resumable: a sweep already done is read back, not run again):

1. ``factors`` (seeds 0-3): one factor at a time around two corners: S, the shipped regime (100 samples per class,
   eps 0.1, lambda 10, k 10), and N, the notes' regime (50 per class, eps 0.316, lambda 10, k 10).
2. ``grid`` (seeds 0-3): the two factors among samples, eps and lambda whose levels move the failure most (the
   largest spread, over the levels around either corner, of the mean failure / law at E = 2..4), crossed at k = 10.
3. ``report`` (seeds 4-7): the corners and the best cell of phases 1-2 (the lowest worst failure / law over
   E = 1..4 among cells with multi-view error <= 2%), on fresh seeds.
4. ``ktrend`` (seeds 0-1): the best cell's settings at k = 10, 20, 30, 40 (samples per class kept, or
   ``--ktrend-per-class`` where the best cell's would not fit the CPU; k > 10 with ``max_steps=5000``).

Decision rule, fixed before running: the law holds in a cell when, on seeds 4-7, mean failure / 2^-(E+1) <= 1.25
at every E = 1..4, the mean own views kept >= 0.9 at every E, and every student's multi-view error <= 2%; it holds
*by the theory's mechanism* when, in addition, the views the students learned that neither their own run nor their
teachers had are <= 5% of the (class, view) cells. Cells measured on seeds 0-3 only get no verdict, only the map.

Cost (CPU, AMD EPYC, the exact engine with 2 workers): see docs/results.md; phase 1 at k = 10 is the cheap part,
k = 20 and 30 at 100 samples per class cost 4x and 9x a k = 10 cell per seed.

Writes OUT/regime.json (every cell's summary), the table --table and the map figure --figure; the table, the figure
and OUT/regime_so_far.json after every sweep, so a stopped run shows what it has. Cells run cheapest data first.

    python scripts/multiview_regime.py --out runs/regime --until factors --ks 10      # the k = 10 part of phase 1
    python scripts/multiview_regime.py --out runs/regime --until ktrend             # everything
"""

from __future__ import annotations

import argparse
from pathlib import Path

import _root  # noqa: F401  (studies/ is in the repository, not installed)

from fkdapp.settings import parse_seeds, seeds_arg
from multiview.engine import run_script
from studies.regime import PHASES, Options, run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/regime"))
    ap.add_argument("--until", default="factors", choices=PHASES, help="the last phase to run")
    ap.add_argument("--ks", default="10,20,30", help="the k levels phase 1 runs (the larger cost most)")
    ap.add_argument("--select-seeds", type=seeds_arg, default=parse_seeds("0-3"))
    ap.add_argument("--report-seeds", type=seeds_arg, default=parse_seeds("4-7"))
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="config override, as for sweep")
    ap.add_argument("--workers", type=int, default=None, help="networks trained side by side [the cores]")
    ap.add_argument("--ktrend-per-class", type=int, default=None,
                    help="samples per class of the k-trend [the best cell's]; fewer where k = 40 would not fit")
    ap.add_argument("--ktrend-fkd-only", action="store_true", help="the k-trend without its KD sweeps (the CPU's time)")
    ap.add_argument("--table", type=Path, default=Path("figures/multiview_regime.md"))
    ap.add_argument("--figure", type=Path, default=Path("figures/multiview_regime.png"))
    run(Options(**vars(ap.parse_args())))


if __name__ == "__main__":
    run_script(main)
