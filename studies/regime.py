"""The regime map: where the FKD student follows 2^-(E+1) (the design, phases and rule: scripts/multiview_regime.py's
--help)."""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from fkdapp.progress import Progress
from fkdapp.runtime import atomic_write_text, write_json
from fkdapp.settings import seeds_text
from fkdapp.stats import mean_ci
from multiview.config import Config
from multiview.decompose import RULE_V1, law, nobody_had
from multiview.engine import Engine
from multiview.experiment import distill_experiment
from multiview.methods import parse_method
from multiview.records import read_distill
from studies.figures import plot_regime_map
from studies.select import choose

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


@dataclass(frozen=True)
class Options:
    """The map's settings, as scripts/multiview_regime.py's flags give them."""

    out: Path
    until: str
    ks: str
    select_seeds: list[int]
    report_seeds: list[int]
    overrides: list[str]
    workers: int | None
    ktrend_per_class: int | None
    ktrend_fkd_only: bool
    table: Path
    figure: Path


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
        m, h = mean_ci([s.single_view_failure for s in ss])
        nobody = [nobody_had(s) for s in ss]
        kept = [s.own_views_kept for s in ss if s.own_views_kept is not None]
        per_e[e] = {"failure": m, "half": h, "ratio": m / law(e),
                    "own_kept": float(np.mean(kept)) if kept else math.nan,
                    "multi_max": max(s.multi_view_error for s in ss), "nobody": float(np.mean(nobody)),
                    "seeds": len(ss)}
    ok = len(per_e) == 4 and all(v["ratio"] <= RULE_V1["ratio"] and v["own_kept"] >= RULE_V1["kept"]
                                 and v["multi_max"] <= RULE_V1["multi"] for v in per_e.values())
    verdict = None
    if set(seeds) == {4, 5, 6, 7} and len(per_e) == 4:
        mechanism = ok and all(v["nobody"] <= RULE_V1["nobody"] for v in per_e.values())
        verdict = {"law_holds": ok, "by_mechanism": mechanism}
    worst = max((v["ratio"] for v in per_e.values()), default=math.nan)
    return {"cell": asdict(cell), "method": method, "seeds": seeds, "per_e": per_e, "worst_ratio": worst,
            "multi_ok": all(v["multi_max"] <= RULE_V1["multi"] for v in per_e.values()), "verdict": verdict}


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


@dataclass
class Sitting:
    """This sitting's sweeps: each (cell, method, seeds) run once, in the order first run, with its summary and the
    wall time per phase; after each, the table, the figure and OUT/regime_so_far.json (a stopped run shows them)."""

    a: Options
    engine: Engine
    done: dict[tuple, dict] = field(default_factory=dict)
    wall: dict[str, float] = field(default_factory=dict)

    @property
    def note(self) -> str:
        select, report = seeds_text(self.a.select_seeds), seeds_text(self.a.report_seeds)
        return (f"Regime map (CPU; seeds {select} for the map, {report} for the verdict); single-view failure, mean "
                "± 95% interval (x the law 2^-(E+1)); the rule: <= 1.25x at every E = 1..4, own views kept >= 0.9, "
                "multi-view error <= 2%, and by the mechanism views nobody had <= 5%.")

    def checkpoint(self) -> None:
        write_table(list(self.done.values()), self.a.table, self.note)
        write_json(self.a.out / "regime_so_far.json", {"rows": list(self.done.values()),
                                                        "wall_s_this_sitting": self.wall})
        mapped_rows = [r for r in self.done.values() if r["seeds"] == self.a.select_seeds]
        if mapped_rows:
            plot_regime_map(mapped_rows, self.a.figure, CORNERS, LEVELS, KD)

    def cells(self, cells: list[Cell], seeds: list[int], phase: str, kd: bool = True) -> list[dict]:
        """Each cell's FKD, and KD once per data (unless ``kd`` is False), on ``seeds``, the cheapest data first
        (summaries; each (cell, method, seeds) once)."""
        rows = []
        for cell in sorted(cells, key=lambda c: c.per_class * c.k):
            for key, method in ((cell, cell.fkd), *([(cell.data_only, KD)] if kd else [])):
                if (key, method, tuple(seeds)) not in self.done:
                    took = sweep(self.a.out, key, method, seeds, self.a.overrides, self.engine)
                    self.wall[phase] = self.wall.get(phase, 0.0) + took
                    self.done[(key, method, tuple(seeds))] = summary(self.a.out, key, method, seeds)
                    self.checkpoint()
                rows.append(self.done[(key, method, tuple(seeds))])
        return rows


def run(a: Options) -> None:
    """The phases up to ``a.until`` (each sweep resumes), the state OUT/regime.json, the table and the figure."""
    phases = PHASES[: PHASES.index(a.until) + 1]
    select, report = a.select_seeds, a.report_seeds
    sitting = Sitting(a, Engine.for_device(torch.device("cpu"), a.workers))
    mapped = [c for c in factor_cells() if c.k in {int(k) for k in a.ks.split(",")}]
    rows = sitting.cells(mapped, select, "factors")
    factors = sorted(["per_class", "eps", "lam"], key=lambda f: -spread(rows, f))[:2] if rows else []
    if "grid" in phases and factors:
        rows = sitting.cells(list(dict.fromkeys([*mapped, *grid_cells(factors)])), select, "grid")
    best, qualified = best_cell(rows)
    reported = []
    if "report" in phases and best is not None:
        reported = sitting.cells(list(dict.fromkeys([*CORNERS.values(), best])), report, "report")
    trend = []
    if "ktrend" in phases and best is not None:
        per_class = a.ktrend_per_class or best.per_class
        trend = sitting.cells([Cell(per_class, k, best.eps, best.lam) for k in (10, 20, 30, 40)], [0, 1], "ktrend",
                              kd=not a.ktrend_fkd_only)
    state = {"design": {"corners": {k: asdict(v) for k, v in CORNERS.items()}, "levels": LEVELS, "kd": KD},
             "select_seeds": select, "report_seeds": report, "factors_chosen_for_grid": factors,
             "best": asdict(best) if best else None, "best_has_multi_view_error_under_2pct": qualified,
             "map": rows, "report": reported, "ktrend": trend, "ktrend_per_class": a.ktrend_per_class,
             "ktrend_fkd_only": a.ktrend_fkd_only, "wall_s_this_sitting": sitting.wall}
    write_json(a.out / "regime.json", state)
    sitting.checkpoint()
    print(f"wrote {a.out / 'regime.json'} and {a.table}; wall time this sitting: {sum(sitting.wall.values()) / 60:.1f} "
          "min")


def grid_cells(factors: list[str]) -> list[Cell]:
    """The grid over the two ``factors`` that move FKD's failure most, the other at corner N's level."""
    base = asdict(CORNERS["N"])
    return [Cell(**{**base, factors[0]: u, factors[1]: v})
            for u, v in itertools.product(LEVELS[factors[0]], LEVELS[factors[1]])]


def best_cell(rows: list[dict]) -> tuple[Cell | None, bool]:
    """The mapped FKD cell with the lowest worst failure / law among those with multi-view error <= 2% (none such:
    the best of all, and False beside it)."""
    fkd_rows = [r for r in rows if r["method"] != KD and not math.isnan(r["worst_ratio"])]
    if not fkd_rows:
        return None, False
    best = choose(dict(enumerate(fkd_rows)), lambda r: r["multi_ok"], "worst_ratio")
    return Cell(**fkd_rows[best]["cell"]), any(r["multi_ok"] for r in fkd_rows)
