"""Which of its teachers' views does an FKD student miss, and how badly? Per (seed, E, class, view) cell that the
teachers hold and the student's own lottery lacks: the student's view correlation max_r <w_j,r, v_j,l> with and
without teachers, its correlation with the class's other view, and the teachers' correlations.

Trains what one seed of `multiview sweep --methods fkd` trains (the same teachers, data and student initialisation)
and writes the cells to OUT (JSON), printing one line per cell.

    python scripts/multiview_missed_views.py --seeds 0,1 --teachers 2,4 --out runs/missed_views.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

import _root  # noqa: F401  (studies/ is in the repository, not installed)

from fkdapp.settings import parse_seeds, seeds_arg
from multiview.engine import run_script
from studies.missed_views import Options, run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=seeds_arg, default=parse_seeds("0-1"))
    ap.add_argument("--teachers", default="2,4")
    ap.add_argument("--config", type=Path, default=None, help="JSON file of config values [default: the defaults]")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", type=Path, default=Path("runs/missed_views.json"))
    run(Options(**vars(ap.parse_args())))


if __name__ == "__main__":
    run_script(main)
