"""The distribution: a wheel built from the repository installs and exports the documented API."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_a_wheel_built_from_the_repository_exports_the_public_names(tmp_path):
    dist, site, src = tmp_path / "dist", tmp_path / "site", tmp_path / "src"
    for name in ("fkd", "fkdapp", "multiview", "realdata", "studies"):  # a copy: the build writes build/ beside it
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(dist), str(src)], check=True,
                   capture_output=True, timeout=240)
    wheels = list(dist.glob("fkd-*.whl"))
    assert len(wheels) == 1
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheels[0])], check=True,
                   capture_output=True, timeout=240)
    assert (site / "fkd" / "py.typed").is_file()
    # no generic top-level names in another project's environment: studies/ stays in the repository
    assert sorted(p.name for p in site.iterdir() if not p.name.endswith(".dist-info") and p.name != "bin") == [
        "fkd", "fkdapp", "multiview", "realdata"]
    probe = ("import json, fkd, multiview.cli, realdata.cli; "
             "print(json.dumps({'file': fkd.__file__, 'all': fkd.__all__, "
             "'ok': all(hasattr(fkd, n) for n in fkd.__all__)}))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(site)}, timeout=120)
    got = json.loads(out.stdout)
    import fkd

    assert got["file"].startswith(str(site)) and got["ok"] and got["all"] == fkd.__all__
