"""What single-view training data do to the lottery and to the FKD curve: one sweep (fkd and ce, E = 0..4) per mu.

Each mu is one resumable sweep under OUT/mu<mu>; the summary (lottery purity, failure per E) goes to
OUT/mu.json and the figure to --figure.

    python scripts/multiview_mu.py --seeds 3 --out runs/mu --figure figures/multiview_mu.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import _root  # noqa: F401  (studies/ is in the repository, not installed)

from fkdapp.settings import parse_seeds, seeds_arg
from multiview.engine import run_script
from studies.mu import Options, run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mu", default="0,0.025,0.05,0.1")
    ap.add_argument("--seeds", type=seeds_arg, default=parse_seeds("3"))
    ap.add_argument("--teachers", default="0,1,2,3,4")
    ap.add_argument("--methods", default="fkd,ce", help="method specs, as for `multiview sweep --methods`")
    ap.add_argument("--config", type=Path, default=None, help="JSON file of base config values [default: the defaults]")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", type=Path, default=Path("runs/mu"))
    ap.add_argument("--figure", type=Path, default=Path("figures/multiview_mu.png"))
    run(Options(**vars(ap.parse_args())))


if __name__ == "__main__":
    run_script(main)
