"""The theory's transfer channel: the kernel given single-view data, timing against k, a regime that meets the
theory's assumptions (see :mod:`studies.transfer` for the design and the rule, fixed before running).

    OMP_NUM_THREADS=1 python scripts/multiview_transfer.py --plan transfer --out runs/transfer
    OMP_NUM_THREADS=1 python scripts/multiview_transfer.py --plan timing --out runs/transfer   # beside it
    OMP_NUM_THREADS=1 python scripts/multiview_transfer.py --plan probe --out runs/transfer    # then k20, regime

Every sweep resumes where a stopped run left it; OUT/PLAN.json holds the summaries and wall times so far.

    python scripts/multiview_transfer.py --report --out runs/transfer    # the tables and records under figures/
"""

from __future__ import annotations

import argparse
from pathlib import Path

import _root  # noqa: F401  (studies/ is in the repository, not installed)
import torch

from multiview.engine import Engine, run_script
from studies.transfer import PLANS, run_plan, write_report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--plan", choices=PLANS, help="the plan to run (see studies/transfer.py)")
    ap.add_argument("--report", action="store_true",
                    help="write the study's table (--table) and records (--json) from OUT's sweeps, and copy each "
                         "sweep's results.json under --records")
    ap.add_argument("--table", type=Path, default=Path("figures/multiview_transfer.md"))
    ap.add_argument("--json", type=Path, default=Path("figures/multiview_transfer.json"))
    ap.add_argument("--records", type=Path, default=Path("figures/multiview_transfer_sweeps"))
    ap.add_argument("--out", type=Path, default=Path("runs/transfer"))
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="config override, last (tests)")
    ap.add_argument("--limit-seeds", type=int, default=None, help="the first N seeds of every group (tests)")
    a = ap.parse_args()
    if a.report:
        write_report(a.out, a.table, a.json, a.records)
        print(f"wrote {a.table}, {a.json} and {a.records}/")
        return
    if a.plan is None:
        ap.error("give --plan PLAN or --report")
    engine = Engine.for_device(torch.device("cpu"), 1)
    summaries = run_plan(a.plan, a.out, engine, a.overrides, a.limit_seeds)
    print(f"{a.plan}: {len(summaries)} sweep summaries in {a.out / (a.plan + '.json')}")


if __name__ == "__main__":
    run_script(main)
