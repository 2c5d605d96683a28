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
