"""The transfer frontier: own views kept against teachers' new views covered, as lambda and the kernel variant vary.

Variants: ``mean`` (fkd, mean of the teachers' normalised kernels), ``concat`` (fkd on the concatenated, RMS-scaled
teacher features), ``raw`` (fkd-raw, raw kernels), ``mean-eps0.32`` (``mean`` with a softer normalisation,
h / sqrt(||h||^2 + 0.1)). Lambda is the method's parameter (``fkd:lambda=...``); the weight a student of E teachers
gets is lambda * E * k / 10. Every (variant, lambda) is a method spec of one resumable sweep in OUT (teachers trained
once per seed); the points (means over seeds, with 95% intervals from 3 seeds on) go to OUT/frontier.json and the
figure to --figure.

    python scripts/multiview_frontier.py --seeds 2 --out runs/frontier --figure figures/multiview_frontier.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import _root  # noqa: F401  (studies/ is in the repository, not installed)

from fkdapp.settings import parse_seeds, seeds_arg
from multiview.engine import run_script
from studies.frontier import SCALES, VARIANTS, Options, run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=seeds_arg, default=parse_seeds("2"))
    ap.add_argument("--teachers", default="2,4")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--scales", default=",".join(map(str, SCALES)))
    ap.add_argument("--config", type=Path, default=None, help="JSON file of base config values [default: the defaults]")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", type=Path, default=Path("runs/frontier"))
    ap.add_argument("--figure", type=Path, default=Path("figures/multiview_frontier.png"))
    run(Options(**vars(ap.parse_args())))


if __name__ == "__main__":
    run_script(main)
