"""docs/architecture.md's map is drawn from the code: every module of each package is named, as FILE.py, in its
package's part of the map, and every FILE.py the map names exists there."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("fkd", "fkdapp", "multiview", "realdata", "studies")


def _sections() -> dict[str, str]:
    """The map (the doc's first code block) cut at each package's header line (``pkg/`` at the line's start)."""
    tree = (ROOT / "docs" / "architecture.md").read_text().split("```")[1]
    parts = re.split(r"^(\w+)/ ", tree, flags=re.M)
    return {name: text for name, text in zip(parts[1::2], parts[2::2], strict=True)}


def test_every_module_is_on_the_map_and_the_map_names_no_missing_file():
    sections = _sections()
    assert set(PACKAGES) <= set(sections)
    for pkg in PACKAGES:
        named = set(re.findall(r"(\w+)\.py\b", sections[pkg]))
        files = {f.stem for f in (ROOT / pkg).rglob("*.py") if f.stem not in ("__init__", "__main__")}
        assert not files - named, f"{pkg}/ modules missing from docs/architecture.md: {sorted(files - named)}"
        assert not named - files, f"docs/architecture.md names files {pkg}/ does not have: {sorted(named - files)}"
