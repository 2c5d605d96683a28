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
import json
import math
from pathlib import Path

from fkdapp.runtime import resolve_device, write_json
from multiview.config import Config
from multiview.engine import run_script
from multiview.experiment import distill_experiment
from multiview.methods import parse_method
from multiview.plot import plot_frontier
from multiview.report import by_method, mean_ci

VARIANTS = {  # name -> method spec (lambda is scaled from the method's default)
    "mean": "fkd",
    "concat": "fkd:ensemble=concat",
    "raw": "fkd-raw",
    "mean-eps0.32": "fkd:eps=0.316",  # eps^2 = 0.1 inside the norms
}
SCALES = (0.3, 1.0, 3.0)  # x the default lambda


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--teachers", default="2,4")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--scales", default=",".join(map(str, SCALES)))
    ap.add_argument("--config", type=Path, default=None, help="JSON file of base config values [default: the defaults]")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", type=Path, default=Path("runs/frontier"))
    ap.add_argument("--figure", type=Path, default=Path("figures/multiview_frontier.png"))
    args = ap.parse_args()
    counts = [0, *sorted(int(e) for e in args.teachers.split(","))]
    device = resolve_device(args.device)
    base = Config.load(args.config) if args.config else Config()
    variants = args.variants.split(",")
    scales = [float(x) for x in args.scales.split(",")]
    specs = {}  # (variant, scale) -> spec
    for variant in variants:
        method = parse_method(VARIANTS[variant], base)
        for scale in scales:
            lam = method.params["lambda"] * scale
            specs[variant, scale] = method.with_params(**{"lambda": lam})
    r = distill_experiment(base, list(range(args.seeds)), counts, list(specs.values()), device, args.out)
    groups = by_method(r, min_teachers=1)
    points = []
    for (variant, scale), method in specs.items():
        for e in counts[1:]:
            ss = groups[method.spec][e]
            own = mean_ci([s.own_views_kept for s in ss])
            new = mean_ci([s.teacher_new_views_covered for s in ss if s.teacher_new_views_covered is not None])
            ratio = [s.uncovered_fraction / s.ideal_uncovered for s in ss if s.ideal_uncovered > 0]
            points.append(
                {
                    "variant": variant,
                    "lambda": method.params["lambda"],
                    "teachers": e,
                    "seeds": len(ss),
                    "own_views_kept": own[0],
                    "scale": scale,
                    "own_ci": None if math.isnan(own[1]) or len(ss) < 3 else own[1],
                    "teacher_new_views_covered": new[0],
                    "new_ci": None if math.isnan(new[1]) or len(ss) < 3 else new[1],
                    "uncovered_over_ideal": sum(ratio) / max(len(ratio), 1),
                }
            )
            print(json.dumps(points[-1]))
    write_json(args.out / "frontier.json", {"config": base.to_dict(), "device": str(device), "points": points})
    plot_frontier(points, args.figure)
    print(f"wrote {args.figure} and {args.out / 'frontier.json'}")


if __name__ == "__main__":
    run_script(main)
