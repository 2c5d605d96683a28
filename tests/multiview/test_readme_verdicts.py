"""No simulation verdict is typed by hand: the committed verdicts table is what rule v2 makes of the committed records
now, and the README quotes its rows word for word."""

import json
from pathlib import Path

from multiview.verdicts_table import read_manifest, table_markdown, write_verdicts

ROOT = Path(__file__).parents[2]
MANIFEST = ROOT / "figures" / "multiview_verdicts_manifest.json"
TABLE = ROOT / "figures" / "multiview_verdicts.json"


def test_the_committed_table_is_rule_v2_on_the_committed_records(tmp_path):
    write_verdicts(MANIFEST, tmp_path / "table")
    fresh = json.loads((tmp_path / "table.json").read_text())
    committed = json.loads(TABLE.read_text())
    assert fresh["rows"] == committed["rows"] and fresh["readme_table"] == committed["readme_table"]
    assert (tmp_path / "table.md").read_text() == (ROOT / "figures" / "multiview_verdicts.md").read_text()
    assert len(read_manifest(MANIFEST)) == len({r["results"] for r in committed["rows"]})


def test_the_counts_the_pages_give_are_the_tables():
    rows = json.loads(TABLE.read_text())["rows"]
    fresh = [r for r in rows if r["fresh"]]
    sweeps = len(read_manifest(MANIFEST))
    assert f"table, {sweeps} sweeps:" in (ROOT / "README.md").read_text()
    results = " ".join((ROOT / "docs" / "results.md").read_text().split())
    assert f"{sweeps} sweeps, the manifest" in results
    said = (f"Of its {len(rows)} (sweep, method) rows, {len(fresh)} are on fresh seeds: "
            f"{'none' if not any(r['holds'] for r in fresh) else sum(bool(r['holds']) for r in fresh)} holds, "
            f"{sum(r['holds'] is False for r in fresh)} fail the law, {sum(r['holds'] is None for r in fresh)} get no "
            "verdict")
    assert said in results


def test_the_readme_and_results_quote_the_generated_rows():
    table = json.loads(TABLE.read_text())["readme_table"]
    for page in (ROOT / "README.md", ROOT / "docs" / "results.md"):
        quoted = page.read_text().split("<!-- verdicts:start -->\n", 1)[1].split("\n<!-- verdicts:end -->", 1)[0]
        assert quoted == table, page
    assert len(table.splitlines()) <= 2 + 8  # a header, a rule and at most 8 rows
    assert table == table_markdown([r for r in json.loads(TABLE.read_text())["rows"] if r["readme"]])


def test_the_readmes_three_lines_are_the_records():
    """Every number of the README's three lines, recomputed from the committed records by rule v2's code."""
    import numpy as np

    from multiview.records import read_distill
    from multiview.verdict import judge

    readme = " ".join((ROOT / "README.md").read_text().split())
    r = read_distill(ROOT / "figures" / "multiview_v2_sweeps" / "k20-steps600" / "results.json")
    c = judge(r, "fkd:eps=1").cell
    es = (1, 2, 3, 4)
    over = [c.failure[e] / c.law(e) for e in es]
    p = [c.p[e] for e in es]
    vs_ensemble = [c.failure[e] / c.ensemble[e] for e in es]
    missed = []
    for e in (1, 2, 3, 4):
        med = []
        for s in (x for x in r.students if x.method == "fkd:eps=1" and x.teachers == e):
            learned, own, union = (np.asarray(v, bool) for v in (s.views_learned, s.own_views, s.teacher_views_union))
            med += np.asarray(s.view_strength)[union & ~own & ~learned].tolist()
        missed.append(float(np.median(med)))
    assert f"({over[0]:.2f}, {over[1]:.2f} L(E)) but {over[2]:.2f} and {over[3]:.2f} L(E)" in readme
    assert f"{min(p):.2f}-{max(p):.2f} of its teachers' new views" in readme
    assert f"fails {vs_ensemble[0]:.2f}-{vs_ensemble[1]:.2f}x as often" in readme
    assert f"as often as the ensemble ({vs_ensemble[3]:.2f}x)" in readme
    assert f"median strength {min(missed):.1f}-{max(missed):.1f} of the learning threshold" in readme
    k10 = judge(read_distill(ROOT / "figures" / "multiview_transfer_sweeps" / "k10-steps1200" / "results.json"),
                "fkd:eps=1", [4, 5, 6, 7]).cell
    assert (f"one-view teachers {k10.one_view_teachers:.2f}, own run {k10.one_view_own:.2f} < 0.85; f0 "
            f"{k10.f0:.2f}" in readme)
    own = [row["one_view_own"] for row in json.loads(TABLE.read_text())["rows"]
           if row["k"] == 10 and row["fresh"] and "one_view_own" in row]
    assert f"one-view in {min(own):.3f}-{max(own):.3f} of its classes" in readme
