"""Re-make a committed sweep on the current engine and set the two side by side, per method and E.

Runs (resumably) ``multiview sweep`` with the old results file's config, teacher counts and seeds for the chosen
methods into OUT, then writes a Markdown table: for each method and E, the old and the new single-view failure
(mean ± 95% interval over seeds), both against the law 2^-(E+1), and whether the new mean lies inside the old
interval. The old file stays as it is: a record of the engine (and commit) that made it.

    python scripts/multiview_remake.py --old figures/multiview_lag_report_k10_results.json \\
        --methods fkd,kd:kd_weight=1 --out runs/remake_k10 --table figures/multiview_engine_k10.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

import _root  # noqa: F401  (studies/ is in the repository, not installed)

from multiview.engine import run_script
from studies.remake import Options, run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", type=Path, required=True, help="the committed results file to re-make")
    ap.add_argument("--methods", required=True, help="the methods to re-make (specs, comma-separated)")
    ap.add_argument("--out", type=Path, default=Path("runs/remake"))
    ap.add_argument("--table", type=Path, default=None, help="Markdown table [OUT/remake.md]")
    ap.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more sweep options (e.g. --set ...)")
    run(Options(**vars(ap.parse_args())))


if __name__ == "__main__":
    run_script(main)
