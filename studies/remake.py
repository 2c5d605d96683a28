"""A committed sweep re-made on the current engine and set beside the old one (the design:
scripts/multiview_remake.py's --help)."""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path

from fkdapp.runtime import atomic_write_text, write_json
from fkdapp.stats import format_ci, mean_ci
from multiview.config import Config
from multiview.decompose import law
from multiview.methods import parse_methods
from multiview.records import read_distill
from multiview.report import by_method
from studies.sweeps import cli_sweep


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
            law_e = law(e)
            o = mean_ci([s.single_view_failure for s in go.get(method, {}).get(e, []) if s.seed in new.seeds_done])
            n = mean_ci([s.single_view_failure for s in gn[method][e]])
            inside = abs(n[0] - o[0]) <= o[1] if not math.isnan(o[1]) else None
            rows.append({"method": method, "teachers": e, "old": o, "new": n, "law": law_e, "new_in_old_ci": inside})
            lines.append(f"| {method} | {e} | {format_ci(*o)} | {o[0] / law_e:.2f} | {format_ci(*n)} "
                         f"| {n[0] / law_e:.2f} | {'yes' if inside else 'no'} |")
    return "\n".join(lines) + "\n", rows


@dataclass(frozen=True)
class Options:
    """The study's settings, as scripts/multiview_remake.py's flags give them."""

    old: Path
    methods: str
    out: Path
    table: Path | None
    extra: list[str]


def run(a: Options) -> None:
    """The old file's sweep re-made (resumable) into OUT, then the side-by-side table and its record."""
    old = read_distill(a.old)
    seeds = ",".join(map(str, old.seeds_done))
    counts = ",".join(map(str, old.teacher_counts))
    cfg = a.out / "config.json"
    a.out.mkdir(parents=True, exist_ok=True)
    write_json(cfg, old.config)
    wall = cli_sweep(a.out / "sweep", a.methods.split(","), seeds, counts, config=cfg, extra=a.extra)
    specs = [m.spec for m in parse_methods(a.methods, Config.from_dict(old.config).method_params)]
    text, rows = table(a.old, a.out / "sweep" / "results.json", specs)
    text += f"\nWall time of this sitting: {wall / 60:.1f} min (one process, the engine's default workers).\n"
    out_table = a.table or a.out / "remake.md"
    atomic_write_text(out_table, text)
    write_json(out_table.with_suffix(".json"), {"old": str(a.old), "methods": a.methods, "rows": rows,
                                                 "wall_s_this_sitting": wall})
    shutil.copyfile(a.out / "sweep" / "results.json", out_table.with_name(out_table.stem + "_results.json"))
    print(text)

