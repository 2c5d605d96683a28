"""What single-view training data do to the lottery and to the FKD curve: one sweep (fkd and ce, E = 0..4) per mu.

Each mu is one resumable sweep under OUT/mu<mu>; the summary (lottery purity, failure per E) goes to
OUT/mu.json and the figure to --figure.

    python scripts/multiview_mu.py --seeds 3 --out runs/mu --figure figures/multiview_mu.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fkdapp.runtime import resolve_device, write_json
from multiview.config import Config
from multiview.engine import run_script
from multiview.experiment import distill_experiment
from multiview.methods import parse_methods
from multiview.plot import plot_mu
from multiview.records import DistillResults
from multiview.report import group_students, lottery_purity, mean_ci


def summary(mu: float, results: DistillResults) -> dict:
    one, both = lottery_purity(results.teachers)
    failure = {
        f"{m}@{e}": mean_ci([s.single_view_failure for s in ss]) for (m, e), ss in group_students(results).items()
    }
    return {
        "mu": mu,
        "seeds": results.seeds_done,
        "one_view_pairs": one,
        "both_view_pairs": both,
        "failure_mean_ci": failure,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mu", default="0,0.025,0.05,0.1")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--teachers", default="0,1,2,3,4")
    ap.add_argument("--methods", default="fkd,ce", help="method specs, as for `multiview sweep --methods`")
    ap.add_argument("--config", type=Path, default=None, help="JSON file of base config values [default: the defaults]")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", type=Path, default=Path("runs/mu"))
    ap.add_argument("--figure", type=Path, default=Path("figures/multiview_mu.png"))
    args = ap.parse_args()
    counts = sorted(int(e) for e in args.teachers.split(","))
    device = resolve_device(args.device)
    base = Config.load(args.config) if args.config else Config()
    runs, summaries = [], []
    for mu in (float(m) for m in args.mu.split(",")):
        cfg = base.with_(mu=mu)
        methods = parse_methods(args.methods, cfg)
        r = distill_experiment(cfg, list(range(args.seeds)), counts, methods, device, args.out / f"mu{mu:g}")
        runs.append((mu, r))
        summaries.append(summary(mu, r))
        print(json.dumps(summaries[-1]), flush=True)
    write_json(args.out / "mu.json", {"device": str(device), "runs": summaries})
    plot_mu(runs, args.figure, method=parse_methods(args.methods)[0].spec)
    print(f"wrote {args.figure} and {args.out / 'mu.json'}")


if __name__ == "__main__":
    run_script(main)
