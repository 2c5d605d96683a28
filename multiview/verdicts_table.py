"""Rule v2 over many sweeps: a manifest of results files, each with the seeds to judge, -> one table (Markdown and
JSON) of regime x method x verdict with the failing clause. The README and docs quote this table; a test holds them
equal to it.

Manifest (JSON object): ``{"entries": [{"label": ..., "results": PATH, "seeds": "4-7", "fresh": true,
"methods": [...], "readme": [...]}, ...]}``; paths are relative to the manifest's folder; ``methods`` defaults to
every method with teachers; ``fresh`` false marks seeds that chose a setting (judged for orientation, never a
verdict); ``readme`` names the methods whose rows the README quotes (the JSON's ``readme_table``; a test holds the
README to it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fkdapp.errors import ConfigError
from fkdapp.runtime import atomic_write_text, write_json
from fkdapp.settings import parse_seeds, read_json_object, seeds_text
from multiview.methods import parse_method
from multiview.records import read_distill
from multiview.verdict import RULE, judge, rule_text


@dataclass(frozen=True)
class Entry:
    """One sweep to judge: its label (the regime in words), results file, judged seeds and methods."""

    label: str
    results: Path
    seeds: list[int]
    fresh: bool
    methods: list[str] | None
    readme: list[str]  # methods whose rows the README quotes
    written: str  # the results path as the manifest writes it (relative to the manifest's folder)


def read_manifest(path: Path) -> list[Entry]:
    """The manifest's entries, each checked (one-line ConfigError naming the entry and the fix)."""
    data = read_json_object(path, "verdicts manifest")
    entries = data.get("entries")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"verdicts manifest {path}: give a non-empty list 'entries' of {{label, results, seeds}}")
    out = []
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or not all(isinstance(e.get(k), str) for k in ("label", "results", "seeds")):
            raise ConfigError(f"verdicts manifest {path}: entry {i} needs string 'label', 'results' and 'seeds'")
        for key in ("methods", "readme"):
            v = e.get(key)
            if v is not None and not (isinstance(v, list) and all(isinstance(m, str) for m in v)):
                raise ConfigError(f"verdicts manifest {path}: entry {i} ('{e['label']}'): '{key}' is a list of specs")
        out.append(Entry(e["label"], path.parent / e["results"], parse_seeds(e["seeds"]), bool(e.get("fresh", True)),
                         e.get("methods"), e.get("readme") or [], e["results"]))
    return out


def judge_entry(entry: Entry) -> list[dict[str, Any]]:
    """Rule v2 on each method of one entry: the table's rows (numbers unrounded)."""
    r = read_distill(entry.results)
    lacking = sorted(set(entry.seeds) - set(r.seeds_done))
    if lacking:
        raise ConfigError(f"{entry.results}: seeds {lacking} are not in the file ({r.seeds_done}); fix the manifest's "
                          f"'{entry.label}'")
    methods = entry.methods or [m for m in r.methods if parse_method(m).USES_TEACHERS]
    rows = []
    for method in methods:
        j = judge(r, method, entry.seeds)
        c = j.cell
        row = {"label": entry.label, "results": entry.written, "method": method, "seeds": j.seeds,
               "fresh": entry.fresh, "k": c.k, "verdict": j.verdict, "holds": j.holds if entry.fresh else None,
               "readme": method in entry.readme, "passing_seeds": j.seeds_passing,
               "clauses": [x.__dict__ for x in j.clauses]}
        if j.clauses:
            row |= {"over_L": [c.failure[e] / c.law(e) for e in RULE["teachers"]],
                    "ensemble_over_L": [c.ensemble[e] / c.law(e) for e in RULE["teachers"] if e in c.ensemble],
                    "one_view_teachers": c.one_view_teachers, "one_view_own": c.one_view_own, "f0": c.f0,
                    "p": [c.p[e] for e in RULE["teachers"]], "kept": [c.kept[e] for e in RULE["teachers"]],
                    "per_seed_over_L": {str(s): v for s, v in j.per_seed.items()}}
        rows.append(row)
    return rows


def table_markdown(rows: list[dict[str, Any]]) -> str:
    """The table: one row per (sweep, method); ratios to 2 decimals (the verdict compares the unrounded numbers and
    names its failing clause to 3)."""
    lines = ["| regime | method | seeds | failure / L(E), E = 1..4 | ensemble / L(E), E = 3, 4 "
             "| one-view teachers, own; f0 | verdict (rule v2) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        seeds = seeds_text(r["seeds"]) + ("" if r["fresh"] else " (selection)")
        if "over_L" in r:
            ratios = ", ".join(f"{v:.2f}" for v in r["over_L"])
            ens = ", ".join(f"{v:.2f}" for v in r["ensemble_over_L"][2:4])
            regime = f"{r['one_view_teachers']:.2f}, {r['one_view_own']:.2f}; {r['f0']:.2f}"
        else:
            ratios = ens = regime = "-"
        verdict = r["verdict"] if r["fresh"] else "selection seeds, no verdict: " + r["verdict"]
        lines.append(f"| {r['label']} | {r['method']} | {seeds} | {ratios} | {ens} | {regime} | {verdict} |")
    return "\n".join(lines)


def write_verdicts(manifest: Path, out: Path) -> str:
    """Judge every entry of ``manifest``; write OUT.md and OUT.json; return the Markdown."""
    rows = [row for entry in read_manifest(manifest) for row in judge_entry(entry)]
    md = table_markdown(rows) + "\n\n" + rule_text() + "\n"
    atomic_write_text(out.with_suffix(".md"), md)
    write_json(out.with_suffix(".json"), {"rule": RULE, "manifest": manifest.name, "rows": rows,
                                          "readme_table": table_markdown([r for r in rows if r["readme"]])})
    return md


__all__ = ["Entry", "judge_entry", "read_manifest", "table_markdown", "write_verdicts"]
