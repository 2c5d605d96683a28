"""The transfer frontier: own views kept against teachers' new views covered (the design:
scripts/multiview_frontier.py's --help)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from fkdapp.runtime import resolve_device, write_json
from fkdapp.stats import mean_ci
from multiview.config import Config
from multiview.experiment import distill_experiment
from multiview.methods import StudentMethod, parse_method
from multiview.report import by_method
from studies.figures import plot_frontier

VARIANTS = {  # name -> method spec (lambda is scaled from the method's default)
    "mean": "fkd",
    "concat": "fkd:ensemble=concat",
    "raw": "fkd-raw",
    "mean-eps0.32": "fkd:eps=0.316",  # eps^2 = 0.1 inside the norms
}
SCALES = (0.3, 1.0, 3.0)  # x the default lambda


@dataclass(frozen=True)
class Options:
    """The study's settings, as scripts/multiview_frontier.py's flags give them."""

    seeds: list[int]
    teachers: str
    variants: str
    scales: str
    config: Path | None
    device: str
    out: Path
    figure: Path


def run(a: Options) -> None:
    """Every (variant, lambda) as one resumable sweep in OUT; the points to OUT/frontier.json, the figure."""
    counts = [0, *sorted(int(e) for e in a.teachers.split(","))]
    device = resolve_device(a.device)
    base = Config.load(a.config) if a.config else Config()
    specs = variant_specs(base, a.variants.split(","), [float(x) for x in a.scales.split(",")])
    r = distill_experiment(base, a.seeds, counts, list(specs.values()), device, a.out)
    groups = by_method(r, min_teachers=1)
    points = [point(variant, scale, method, e, groups[method.spec][e])
              for (variant, scale), method in specs.items() for e in counts[1:]]
    for p in points:
        print(json.dumps(p))
    write_json(a.out / "frontier.json", {"config": base.to_dict(), "device": str(device), "points": points})
    plot_frontier(points, a.figure)
    print(f"wrote {a.figure} and {a.out / 'frontier.json'}")


def variant_specs(base: Config, variants: list[str], scales: list[float]) -> dict[tuple[str, float], StudentMethod]:
    """(variant, scale) -> the variant's method with its lambda scaled (from the config's method_params)."""
    specs = {}
    for variant in variants:
        method = parse_method(VARIANTS[variant], base.method_params)
        for scale in scales:
            specs[variant, scale] = method.with_params(**{"lambda": method.params["lambda"] * scale})
    return specs


def point(variant: str, scale: float, method: StudentMethod, e: int, ss: list) -> dict:
    """One point of the frontier: own views kept and teachers' new views covered (means over the students that have
    such views, NaN where none has; 95% half-widths from 3 seeds on), and uncovered over the ideal union, of the
    students ``ss`` at E = ``e``."""
    own = mean_ci([s.own_views_kept for s in ss if s.own_views_kept is not None] or [math.nan])
    new = mean_ci([s.teacher_new_views_covered for s in ss if s.teacher_new_views_covered is not None] or [math.nan])
    ratio = [s.uncovered_fraction / s.ideal_uncovered for s in ss if s.ideal_uncovered > 0]
    return {"variant": variant, "lambda": method.params["lambda"], "teachers": e, "seeds": len(ss),
            "own_views_kept": own[0], "scale": scale,
            "own_ci": None if math.isnan(own[1]) or len(ss) < 3 else own[1],
            "teacher_new_views_covered": new[0],
            "new_ci": None if math.isnan(new[1]) or len(ss) < 3 else new[1],
            "uncovered_over_ideal": sum(ratio) / max(len(ratio), 1)}
