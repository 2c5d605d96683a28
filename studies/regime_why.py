"""Why the regime map's cells differ: the FKD students' probes read for chosen cells (the columns:
scripts/multiview_regime_why.py's --help)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fkdapp.runtime import atomic_write_text
from fkdapp.settings import seeds_text
from multiview.decompose import nobody_had
from multiview.records import StudentRecord, read_distill
from multiview.report import collapsed_views, early_ratio

THRESHOLD = 0.3  # the learning threshold of views_learned at the default config
#: (label, data folder, method folder, method spec): the map's two ends at 100 per class (eps 0.1: the shipped
#: corner; eps 1: the closest cell) and the sample-size end at eps 0.1 (25 per class)
CELLS = [("S: 100/class, eps 0.1", "k10-n1000", "fkd", "fkd"),
         ("100/class, eps 1 (closest)", "k10-n1000", "fkd_eps1", "fkd:eps=1"),
         ("25/class, eps 0.1", "k10-n250", "fkd", "fkd"),
         ("N: 50/class, eps 0.316", "k10-n500", "fkd_eps0.316", "fkd:eps=0.316")]


def first_step(steps: list[int], values: np.ndarray, level: float) -> float:
    """The first probe step whose value reaches ``level`` (nan if none)."""
    hit = np.nonzero(values >= level)[0]
    return float(steps[hit[0]]) if len(hit) else np.nan


def student_probes(s: StudentRecord) -> dict[str, float]:
    d = s.diagnostics or {}
    steps, ratio = d.get("probe_steps", []), np.asarray(d.get("grad_ratio", []), dtype=float)
    corr = np.asarray(d.get("view_corr", []), dtype=float)  # (probes, k, 2)
    learned, own, union = (np.asarray(x, dtype=bool) for x in (s.views_learned, s.own_views, s.teacher_views_union))
    onset = {}
    for name, mask in (("own", learned & own), ("new", learned & ~own & union), ("nobody", learned & ~own & ~union)):
        cells = np.argwhere(mask)
        times = [first_step(steps, corr[:, j, v], THRESHOLD) for j, v in cells] if corr.size else []
        onset[name] = float(np.nanmedian(times)) if times and not np.all(np.isnan(times)) else np.nan
    return {"acts": first_step(steps, ratio, 0.1) if ratio.size else np.nan,
            "early": early_ratio(s) or np.nan, "own_onset": onset["own"], "new_onset": onset["new"],
            "nobody_onset": onset["nobody"], "own_kept": s.own_views_kept if s.own_views_kept is not None else np.nan,
            "new_covered": s.teacher_new_views_covered if s.teacher_new_views_covered is not None else np.nan,
            "nobody": nobody_had(s), "lost": collapsed_views(s) or 0,
            "failure": s.single_view_failure}


@dataclass(frozen=True)
class Options:
    """The study's settings, as scripts/multiview_regime_why.py's flags give them."""

    sweeps: Path
    seeds: list[int]
    table: Path


def run(a: Options) -> None:
    """The table of the cells' probes, written to ``a.table``."""
    seeds = set(a.seeds)
    lines = [f"Probes of the FKD students (seeds {seeds_text(a.seeds)}; medians over students, except the means of the "
             "last five columns); CPU records of the regime map.", "",
             "| cell | E | kernel acts (step) | early ratio | own views grow (step) | teachers' new views grow "
             "(step) | views nobody had grow (step) | own kept | new covered | nobody had | views lost | failure |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for label, data, folder, spec in CELLS:
        path = a.sweeps / data / folder / "results.json"
        if not path.is_file():
            continue
        students = [s for s in read_distill(path).students if s.method == spec and s.seed in seeds and s.teachers]
        for e in sorted({s.teachers for s in students}):
            rows = [student_probes(s) for s in students if s.teachers == e]

            def med(key: str, rows: list = rows) -> str:
                v = np.nanmedian([r[key] for r in rows]) if not all(np.isnan(r[key]) for r in rows) else np.nan
                return "-" if np.isnan(v) else f"{v:.0f}"

            def avg(key: str, rows: list = rows, fmt: str = ".2f") -> str:
                return format(float(np.nanmean([r[key] for r in rows])), fmt)

            lines.append(f"| {label} | {e} | {med('acts')} | {avg('early', fmt='.3f')} | {med('own_onset')} | "
                         f"{med('new_onset')} | {med('nobody_onset')} | {avg('own_kept')} | {avg('new_covered')} | "
                         f"{avg('nobody', fmt='.3f')} | {avg('lost', fmt='.1f')} | {avg('failure', fmt='.3f')} |")
    a.table.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(a.table, "\n".join(lines) + "\n")
    print("\n".join(lines))

