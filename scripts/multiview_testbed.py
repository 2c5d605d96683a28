"""The simulation as a testbed: every distillation loss of the toolkit as a student of the multi-view theory.

Two phases of resumable `multiview sweep` runs under OUT, all sharing the teachers in OUT/teachers (trained once per
seed): the selection one sweep per method (every method's whole grid at once does not fit in memory with the
relational losses at 1000 samples), the report one sweep of the chosen settings:

1. select (seeds 0-3, E = 2 and 4): every method with teachers at a grid of multiples of its default weight (its
   ``WEIGHT`` parameter: lambda, kd_weight, weight): 0.3x-3x for fkd and fkd-raw (the frontier's range), 0.3x-10x
   for the logit losses, 1e-4x, 1e-2x and 1x for SP, PKT and RKD (their published image-side weights make their
   gradient about 10^5 times CE's over the first 100 steps here). Rule, fixed before looking: per method, the
   factor whose students have the lowest mean single-view failure over those seeds and E, among factors whose mean
   multi-view error is <= 2% (the default when none qualifies).
2. report (seeds 4-7, E = 0..4): each method at its chosen weight, and ce.

Writes OUT/testbed.json (the choice, per method and E: failure, own views kept, teachers' new views covered,
early gradient ratio), the table --table and the figure --figure.

    python scripts/multiview_testbed.py --out runs/testbed --jobs 2
"""

from __future__ import annotations

import argparse
from pathlib import Path

import _root  # noqa: F401  (studies/ is in the repository, not installed)

from fkdapp.settings import parse_seeds, seeds_arg
from multiview.engine import run_script
from studies.testbed import Options, run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/testbed"))
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--select-seeds", type=seeds_arg, default=parse_seeds("0-3"))
    ap.add_argument("--report-seeds", type=seeds_arg, default=parse_seeds("4-7"))
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="config override, as for sweep")
    ap.add_argument("--methods", default=None, help="comma list of method names [default: every registered loss]")
    ap.add_argument("--no-report", action="store_true",
                    help="skip phase 2: tabulate the chosen settings from the selection sweeps (E = 0, 2, 4)")
    ap.add_argument("--table", type=Path, default=Path("figures/multiview_testbed.md"))
    ap.add_argument("--figure", type=Path, default=Path("figures/multiview_testbed.png"))
    run(Options(**vars(ap.parse_args())))


if __name__ == "__main__":
    run_script(main)
