"""Where does the FKD student follow 2^-(E+1)? A map of regimes, designed before it runs.

Factors that plausibly decide whether a student can still take its teachers' views after its own lottery:
training samples per class (25, 50, 100), the kernel's eps (0.1, 0.316, 1, and eps relative to the feature scale:
``eps_rel=0.1``), lambda's scale (lambda_E = lambda E k / 10 with lambda = 5, 10, 20) and k (10, 20, 30).

A cell is (samples per class, k, FKD spec). Every cell runs its FKD spec and KD at weight 1 (the baseline that
follows the law best so far), E = 0..4, as one sweep per (data, method) (in this process, the CPU's exact engine)
with one teacher pool per data setting. The exact engine makes a network's records independent of what else a
sweep holds, so a cell's records are the same whichever phase or sweep computes them, and KD and the teachers are
computed once per data.

Phases, run in order up to ``--until`` (each resumable: a sweep already done is read back, not run again):

1. ``factors`` (seeds 0-3): one factor at a time around two corners: S, the shipped regime (100 samples per class,
   eps 0.1, lambda 10, k 10), and N, the notes' regime (50 per class, eps 0.316, lambda 10, k 10).
2. ``grid`` (seeds 0-3): the two factors among samples, eps and lambda whose levels move the failure most (the
   largest spread, over the levels around either corner, of the mean failure / law at E = 2..4), crossed at k = 10.
3. ``report`` (seeds 4-7): the corners and the best cell of phases 1-2 (the lowest worst failure / law over
   E = 1..4 among cells with multi-view error <= 2%), on fresh seeds.
4. ``ktrend`` (seeds 0-1): the best cell's settings at k = 10, 20, 30, 40 (samples per class kept, or
   ``--ktrend-per-class`` where the best cell's would not fit the CPU; k > 10 with ``max_steps=5000``).

Decision rule, fixed before running: the law holds in a cell when, on seeds 4-7, mean failure / 2^-(E+1) <= 1.25
at every E = 1..4, the mean own views kept >= 0.9 at every E, and every student's multi-view error <= 2%; it holds
*by the theory's mechanism* when, in addition, the views the students learned that neither their own run nor their
teachers had are <= 5% of the (class, view) cells. Cells measured on seeds 0-3 only get no verdict, only the map.

Cost (CPU, AMD EPYC, the exact engine with 2 workers): see docs/results.md; phase 1 at k = 10 is the cheap part,
k = 20 and 30 at 100 samples per class cost 4x and 9x a k = 10 cell per seed.

Writes OUT/regime.json (every cell's summary), the table --table and the map figure --figure; the table, the figure
and OUT/regime_so_far.json after every sweep, so a stopped run shows what it has. Cells run cheapest data first.

    python scripts/multiview_regime.py --out runs/regime --until factors --ks 10      # the k = 10 part of phase 1
    python scripts/multiview_regime.py --out runs/regime --until ktrend             # everything
"""

from __future__ import annotations

import argparse
import itertools
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from fkdapp.progress import Progress
from fkdapp.runtime import atomic_save_figure, atomic_write_text, write_json
from fkdapp.settings import parse_seeds
from fkdapp.stats import mean_ci
from multiview.config import Config
from multiview.engine import Engine, run_script
from multiview.experiment import distill_experiment
from multiview.methods import parse_method
from multiview.records import read_distill

KD = "kd:kd_weight=1"
EPS = {"0.1": "", "0.316": "eps=0.316", "1": "eps=1", "rel0.1": "eps_rel=0.1"}
LAMBDAS = (5, 10, 20)
SAMPLES = (25, 50, 100)
KS = (10, 20, 30)
PHASES = ["factors", "grid", "report", "ktrend"]


@dataclass(frozen=True)
class Cell:
    """Samples per class, k, the kernel's eps (a key of EPS) and lambda."""

    per_class: int
    k: int
    eps: str
    lam: int

    @property
    def fkd(self) -> str:
        params = [p for p in (EPS[self.eps], "" if self.lam == 10 else f"lambda={self.lam}") if p]
        return parse_method("fkd" + (":" + ",".join(params) if params else "")).spec  # the records' spelling

    @property
    def data(self) -> str:
        return f"k{self.k}-n{self.per_class * self.k}"

    @property
    def name(self) -> str:
        data = f"{self.per_class}/class k{self.k}"
        return data if self.eps == "-" else f"{data} eps {self.eps} lambda {self.lam}"

    @property
    def data_only(self) -> Cell:
        """The cell of its data alone (what KD's records depend on)."""
        return Cell(self.per_class, self.k, "-", 0)


CORNERS = {"S": Cell(100, 10, "0.1", 10), "N": Cell(50, 10, "0.316", 10)}
LEVELS = {"per_class": SAMPLES, "eps": tuple(EPS), "lam": LAMBDAS, "k": KS}


def factor_cells() -> list[Cell]:
    """Phase 1: each corner, and each factor moved alone around it."""
    cells = []
    for corner in CORNERS.values():
        for factor, levels in LEVELS.items():
            cells += [Cell(**{**asdict(corner), factor: v}) for v in levels]
    return list(dict.fromkeys(cells))


def folder(out: Path, cell: Cell, method: str) -> Path:
    return out / "sweeps" / cell.data / method.replace(":", "_").replace(",", "_").replace("=", "")


def sweep(out: Path, cell: Cell, method: str, seeds: list[int], overrides: list[str], engine: Engine) -> float:
    """The sweep of ``method`` on the cell's data, E = 0..4, in this process (resumed where partly done; teachers
    pooled per data); its wall time (s). ``overrides`` come last (tests shrink the problem with them)."""
    target = folder(out, cell, method)
    big = ["max_steps=5000"] if cell.k > 10 else []
    cfg = Config().with_overrides([f"k={cell.k}", f"n_train={cell.per_class * cell.k}", *big, *overrides])
    start = time.time()
    progress = Progress(None, f"{cell.name}: {method}, seeds {seeds}")
    distill_experiment(cfg, seeds, list(range(5)), [method], torch.device("cpu"), target,
                       pool=target.parent / "teachers", engine=engine,
                       on_seed=lambda r: progress.update(f"seed {r.seeds_done} done", force=True))
    progress.close()
    return time.time() - start


def summary(out: Path, cell: Cell, method: str, seeds: list[int]) -> dict:
    """Per E = 1..4 on ``seeds``: failure (mean, half-width) and / law, own views kept, multi-view error (max),
    views nobody had (fraction of cells); and the decision rule's verdict (None unless on seeds 4-7)."""
    students = [s for s in read_distill(folder(out, cell, method) / "results.json").students
                if s.seed in seeds and s.method == method]
    per_e = {}
    for e in range(1, 5):
        ss = [s for s in students if s.teachers == e]
        if not ss:
            continue
        law = 2.0 ** -(e + 1)
        m, h = mean_ci([s.single_view_failure for s in ss])
        nobody = [np.mean(np.array(s.views_learned) & ~np.array(s.own_views) & ~np.array(s.teacher_views_union))
                  for s in ss]
        kept = [s.own_views_kept for s in ss if s.own_views_kept is not None]
        per_e[e] = {"failure": m, "half": h, "ratio": m / law, "own_kept": float(np.mean(kept)) if kept else math.nan,
                    "multi_max": max(s.multi_view_error for s in ss), "nobody": float(np.mean(nobody)),
                    "seeds": len(ss)}
    ok = len(per_e) == 4 and all(v["ratio"] <= 1.25 and v["own_kept"] >= 0.9 and v["multi_max"] <= 0.02
                                 for v in per_e.values())
    verdict = None
    if set(seeds) == {4, 5, 6, 7} and len(per_e) == 4:
        verdict = {"law_holds": ok, "by_mechanism": ok and all(v["nobody"] <= 0.05 for v in per_e.values())}
    worst = max((v["ratio"] for v in per_e.values()), default=math.nan)
    return {"cell": asdict(cell), "method": method, "seeds": seeds, "per_e": per_e, "worst_ratio": worst,
            "multi_ok": all(v["multi_max"] <= 0.02 for v in per_e.values()), "verdict": verdict}


def spread(rows: list[dict], factor: str) -> float:
    """How much moving ``factor`` alone (around either corner) moves FKD's mean failure / law at E = 2..4."""
    out = 0.0
    for corner in CORNERS.values():
        others = {k: v for k, v in asdict(corner).items() if k != factor}
        vals = [np.mean([r["per_e"][e]["ratio"] for e in (2, 3, 4) if e in r["per_e"]]) for r in rows
                if r["method"] != KD and all(r["cell"][k] == v for k, v in others.items())]
        if len(vals) > 1:
            out = max(out, float(np.nanmax(vals) - np.nanmin(vals)))
    return out


def fmt(v: dict, e: int) -> str:
    x = v["per_e"].get(e)
    if x is None:
        return "-"
    return f"{x['failure']:.3f} ± {x['half']:.3f} ({x['ratio']:.2f}x)" if not math.isnan(x["half"]) else \
        f"{x['failure']:.3f} ({x['ratio']:.2f}x)"


def write_table(rows: list[dict], path: Path, note: str) -> None:
    lines = [note, "", "| cell | method | seeds | E = 1 | E = 2 | E = 3 | E = 4 | own kept (min) | multi-view max "
             "| views nobody had | verdict |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        c, pe = Cell(**r["cell"]), r["per_e"]
        if not pe:
            continue
        verdict = "-" if r["verdict"] is None else ("holds" + (" (mechanism)" if r["verdict"]["by_mechanism"] else
                                                              "") if r["verdict"]["law_holds"] else "fails")
        lines.append(f"| {c.name} | {r['method']} | {','.join(map(str, r['seeds']))} | "
                     + " | ".join(fmt(r, e) for e in range(1, 5))
                     + f" | {min(v['own_kept'] for v in pe.values()):.2f}"
                     f" | {max(v['multi_max'] for v in pe.values()):.3f}"
                     f" | {max(v['nobody'] for v in pe.values()):.3f} | {verdict} |")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "\n".join(lines) + "\n")


def plot_map(rows: list[dict], path: Path) -> None:
    """One panel per factor: its levels (around each corner) against FKD's failure / law at E = 2, 3, 4."""
    fig = Figure(figsize=(13, 3.6), layout="constrained")
    axes = fig.subplots(1, len(LEVELS))
    for ax, (factor, levels) in zip(axes, LEVELS.items(), strict=True):
        for (cname, corner), ls in zip(CORNERS.items(), ("-", "--"), strict=True):
            others = {k: v for k, v in asdict(corner).items() if k != factor}
            for e, color in zip((2, 3, 4), ("C0", "C1", "C3"), strict=True):
                xs, ys = [], []
                for i, level in enumerate(levels):
                    r = next((r for r in rows if r["method"] != KD and r["cell"][factor] == level
                              and all(r["cell"][k] == v for k, v in others.items())), None)
                    if r is not None and e in r["per_e"]:
                        xs.append(i)
                        ys.append(r["per_e"][e]["ratio"])
                ax.plot(xs, ys, ls=ls, color=color, marker="o", label=f"{cname}, E = {e}")
        ax.axhline(1.25, color="k", lw=0.8, ls=":")
        ax.set_xticks(range(len(levels)), [str(v) for v in levels])
        ax.set_title({"per_class": "samples per class", "eps": "kernel eps", "lam": "lambda", "k": "k"}[factor],
                     fontsize=9)
        ax.set_ylabel("FKD failure / 2^-(E+1)")
        ax.set_yscale("log", base=2)
        ax.grid(True, alpha=0.3, which="both")
    axes[0].legend(fontsize=7)
    atomic_save_figure(fig, path, 120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/regime"))
    ap.add_argument("--until", default="factors", choices=PHASES, help="the last phase to run")
    ap.add_argument("--ks", default="10,20,30", help="the k levels phase 1 runs (the larger cost most)")
    ap.add_argument("--select-seeds", default="0-3")
    ap.add_argument("--report-seeds", default="4-7")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="config override, as for sweep")
    ap.add_argument("--workers", type=int, default=None, help="networks trained side by side [the cores]")
    ap.add_argument("--ktrend-per-class", type=int, default=None,
                    help="samples per class of the k-trend [the best cell's]; fewer where k = 40 would not fit")
    ap.add_argument("--ktrend-fkd-only", action="store_true", help="the k-trend without its KD sweeps (the CPU's time)")
    ap.add_argument("--table", type=Path, default=Path("figures/multiview_regime.md"))
    ap.add_argument("--figure", type=Path, default=Path("figures/multiview_regime.png"))
    a = ap.parse_args()
    phases = PHASES[: PHASES.index(a.until) + 1]
    ks = {int(k) for k in a.ks.split(",")}
    select, report = parse_seeds(a.select_seeds), parse_seeds(a.report_seeds)
    state_path = a.out / "regime.json"
    wall: dict[str, float] = {}
    engine = Engine.for_device(torch.device("cpu"), a.workers)

    done: dict[tuple, dict] = {}  # (cell, method, seeds) -> its summary, in the order first run
    note = (f"Regime map (CPU; seeds {a.select_seeds} for the map, {a.report_seeds} for the verdict); single-view "
            "failure, mean ± 95% interval (x the law 2^-(E+1)); the rule: <= 1.25x at every E = 1..4, own views kept "
            ">= 0.9, multi-view error <= 2%, and by the mechanism views nobody had <= 5%.")

    def checkpoint() -> None:
        """The table, the figure and OUT/regime_so_far.json of every sweep done so far (a stopped run shows them)."""
        write_table(list(done.values()), a.table, note)
        write_json(a.out / "regime_so_far.json", {"rows": list(done.values()), "wall_s_this_sitting": wall})
        mapped_rows = [r for r in done.values() if r["seeds"] == select]
        if mapped_rows:
            plot_map(mapped_rows, a.figure)

    def run(cells: list[Cell], seeds: list[int], phase: str, kd: bool = True) -> list[dict]:
        """Each cell's FKD, and KD once per data (unless ``kd`` is False), on ``seeds``, the cheapest data first
        (summaries; each (cell, method, seeds) once)."""
        rows = []
        for cell in sorted(cells, key=lambda c: c.per_class * c.k):
            for key, method in ((cell, cell.fkd), *([(cell.data_only, KD)] if kd else [])):
                if (key, method, tuple(seeds)) not in done:
                    wall[phase] = wall.get(phase, 0.0) + sweep(a.out, key, method, seeds, a.overrides, engine)
                    done[(key, method, tuple(seeds))] = summary(a.out, key, method, seeds)
                    checkpoint()
                rows.append(done[(key, method, tuple(seeds))])
        return rows

    mapped = [c for c in factor_cells() if c.k in ks]
    rows = run(mapped, select, "factors")
    factors = sorted(["per_class", "eps", "lam"], key=lambda f: -spread(rows, f))[:2] if rows else []
    if "grid" in phases and factors:
        base = CORNERS["N"]
        grid = [Cell(**{**asdict(base), factors[0]: u, factors[1]: v})
                for u, v in itertools.product(LEVELS[factors[0]], LEVELS[factors[1]])]
        rows = run(list(dict.fromkeys([*mapped, *grid])), select, "grid")
    fkd_rows = [r for r in rows if r["method"] != KD and not math.isnan(r["worst_ratio"])]
    qualified = [r for r in fkd_rows if r["multi_ok"]]  # none: the best of all, said so in the state
    best = Cell(**min(qualified or fkd_rows, key=lambda r: r["worst_ratio"])["cell"]) if fkd_rows else None
    reported = []
    if "report" in phases and best is not None:
        reported = run(list(dict.fromkeys([*CORNERS.values(), best])), report, "report")
    trend = []
    if "ktrend" in phases and best is not None:
        per_class = a.ktrend_per_class or best.per_class
        cells = [Cell(per_class, k, best.eps, best.lam) for k in (10, 20, 30, 40)]
        trend = run(cells, [0, 1], "ktrend", kd=not a.ktrend_fkd_only)
    state = {"design": {"corners": {k: asdict(v) for k, v in CORNERS.items()}, "levels": LEVELS, "kd": KD},
             "select_seeds": select, "report_seeds": report, "factors_chosen_for_grid": factors,
             "best": asdict(best) if best else None, "best_has_multi_view_error_under_2pct": bool(qualified),
             "map": rows, "report": reported, "ktrend": trend, "ktrend_per_class": a.ktrend_per_class,
             "ktrend_fkd_only": a.ktrend_fkd_only,
             "wall_s_this_sitting": wall}
    write_json(state_path, state)
    checkpoint()
    print(f"wrote {state_path} and {a.table}; wall time this sitting: {sum(wall.values()) / 60:.1f} min")


if __name__ == "__main__":
    run_script(main)
