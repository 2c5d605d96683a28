"""Re-make a committed sweep on the current engine and set the two side by side, per method and E.

Runs (resumably) ``multiview sweep`` with the old results file's config, teacher counts and seeds for the chosen
methods into OUT, then writes a Markdown table: for each method and E, the old and the new single-view failure
(mean ± 95% interval over seeds), both against the law 2^-(E+1), and whether the new mean lies inside the old
interval. The old file stays as it is: a record of the engine (and commit) that made it.

    python scripts/multiview_remake.py --old figures/multiview_lag_report_k10_results.json \\
        --methods fkd,kd:kd_weight=1 --out runs/remake_k10 --table figures/multiview_engine_k10.md
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from fkdapp.runtime import write_json
from multiview.config import Config
from multiview.engine import run_script
from multiview.methods import parse_methods
from multiview.records import read_distill
from multiview.report import by_method, mean_ci


def fmt(m: float, h: float) -> str:
    return f"{m:.3f}" if math.isnan(h) else f"{m:.3f} ± {h:.3f}"


def table(old_path: Path, new_path: Path, methods: list[str]) -> tuple[str, list[dict]]:
    old, new = read_distill(old_path), read_distill(new_path)
    go, gn = by_method(old), by_method(new)
    rows, lines = [], [
        f"Old: `{old_path.name}` (commit {old.environment.get('git_commit', '?')[:7]}, engine "
        f"{old.environment.get('engine', 'batched')}); new: `{new_path.name}` (commit "
        f"{new.environment.get('git_commit', '?')[:7]}, engine {new.environment.get('engine')}, "
        f"{new.environment.get('device_name')}); seeds {new.seeds_done}, k = {new.config['k']}. Single-view failure, "
        "mean ± 95% interval over seeds; x law = mean / 2^-(E+1).",
        "",
        "| method | E | old | old x law | new | new x law | new mean in old interval |",
        "|---|---|---|---|---|---|---|",
    ]
    for method in methods:
        for e in sorted(gn.get(method, {})):
            law = 2.0 ** -(e + 1)
            o = mean_ci([s.single_view_failure for s in go.get(method, {}).get(e, []) if s.seed in new.seeds_done])
            n = mean_ci([s.single_view_failure for s in gn[method][e]])
            inside = abs(n[0] - o[0]) <= o[1] if not math.isnan(o[1]) else None
            rows.append({"method": method, "teachers": e, "old": o, "new": n, "law": law, "new_in_old_ci": inside})
            lines.append(f"| {method} | {e} | {fmt(*o)} | {o[0] / law:.2f} | {fmt(*n)} | {n[0] / law:.2f} | "
                         f"{'yes' if inside else 'no'} |")
    return "\n".join(lines) + "\n", rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", type=Path, required=True, help="the committed results file to re-make")
    ap.add_argument("--methods", required=True, help="the methods to re-make (specs, comma-separated)")
    ap.add_argument("--out", type=Path, default=Path("runs/remake"))
    ap.add_argument("--table", type=Path, default=None, help="Markdown table [OUT/remake.md]")
    ap.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more sweep options (e.g. --set ...)")
    a = ap.parse_args()
    old = read_distill(a.old)
    seeds = ",".join(map(str, old.seeds_done))
    counts = ",".join(map(str, old.teacher_counts))
    cfg = a.out / "config.json"
    a.out.mkdir(parents=True, exist_ok=True)
    write_json(cfg, old.config)
    cmd = [sys.executable, "-m", "multiview", "sweep", "--methods", a.methods, "--seeds", seeds, "--teachers", counts,
           "--config", str(cfg), "--device", "cpu", "--out", str(a.out / "sweep"), *a.extra]
    start = time.time()
    with open(a.out / "sweep.log", "a") as log:
        subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    wall = time.time() - start
    specs = [m.spec for m in parse_methods(a.methods, Config.from_dict(old.config))]
    text, rows = table(a.old, a.out / "sweep" / "results.json", specs)
    text += f"\nWall time of this sitting: {wall / 60:.1f} min (one process, the engine's default workers).\n"
    out_table = a.table or a.out / "remake.md"
    out_table.write_text(text)
    write_json(out_table.with_suffix(".json"), {"old": str(a.old), "methods": a.methods, "rows": rows,
                                                 "wall_s_this_sitting": wall})
    shutil.copyfile(a.out / "sweep" / "results.json", out_table.with_name(out_table.stem + "_results.json"))
    print(text)


if __name__ == "__main__":
    run_script(main)
