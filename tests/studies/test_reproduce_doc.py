"""docs/reproduce.md's plan sizes are the plan's own numbers (counted by studies.reproduce.make_plan)."""

from pathlib import Path

import pytest

from studies.reproduce import Options, make_plan

DOC = Path(__file__).parents[2] / "docs" / "reproduce.md"


@pytest.mark.parametrize("suite", ["fkd", "crd"])
def test_the_documented_plan_sizes_are_the_plans(suite, tmp_path):
    row = next(line for line in DOC.read_text().splitlines() if line.startswith(f"| {suite} |"))
    teachers, runs, skipped, images = (c.strip() for c in row.strip("|").split("|")[1:5])
    opts = Options(out=str(tmp_path), data_dir=str(tmp_path), download=False, device="cpu", epochs=240,
                   batch_size=64, seeds="5", suite=suite, pairs=None, methods=None, teacher_dir=None, dry_run=True)
    plan = make_plan(opts)
    assert (len(plan.teacher_jobs), len(plan.jobs), len(plan.skipped)) == (int(teachers), int(runs), int(skipped))
    assert f"{len(plan.jobs) * 240 * 50_000:.2e}".replace("e+0", "e").replace("e+", "e") == images
