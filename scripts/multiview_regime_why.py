"""Why the regime map's cells differ: the probes every FKD student records (the kernel term's gradient norm over
CE's, and each (class, view) correlation max_r <w_j,r, v_j,l> at the probe steps), read for chosen cells.

Per cell and E (the selection seeds' students): when the kernel starts to act (the first probe step where the
gradient ratio reaches 0.1, median over students), its early size (mean ratio over steps <= 100), when views grow
(the median first probe step where a finally learned view's correlation passes the learning threshold, for the
student's own views and for the teachers' new ones), how many the student learned of each kind (own views kept,
teachers' new views covered, views nobody had, per (class, view) cell), and how many it grew and then lost
(correlation >= 1 at a probe, below 0.3 later).

    python scripts/multiview_regime_why.py --sweeps runs/regime/sweeps --table figures/multiview_regime_why.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

import _root  # noqa: F401  (studies/ is in the repository, not installed)

from fkdapp.settings import parse_seeds, seeds_arg
from multiview.engine import run_script
from studies.regime_why import Options, run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sweeps", type=Path, default=Path("runs/regime/sweeps"))
    ap.add_argument("--seeds", type=seeds_arg, default=parse_seeds("0-3"))
    ap.add_argument("--table", type=Path, default=Path("figures/multiview_regime_why.md"))
    run(Options(**vars(ap.parse_args())))


if __name__ == "__main__":
    run_script(main)
