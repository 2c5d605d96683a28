"""The transfer-channel study at tiny size: plans run resumably in this process, the summaries, the decision rule on
the report seeds only, the regime probe, and the study's report."""

import json

import pytest
import torch
from tiny_sim import SMOKE, as_overrides

from multiview.config import Config
from multiview.engine import Engine
from multiview.records import read_distill
from studies.sweeps import Setting, pool_folder, run_setting
from studies.transfer import REGIMES, TRANSFER, lottery_probe, report_markdown, run_plan

TINY = as_overrides({**SMOKE, "n_train": 40, "n_test": 100, "m": 4, "max_steps": 60, "sigma_p": 0.0875,
                     "sigma_0": 0.012})


def test_settings_share_teachers_and_resume(tmp_path):
    engine = Engine.for_device(torch.device("cpu"), 1)
    a = Setting("a", (), ("fkd",), (0, 1))
    b = Setting("b", ("transfer_single=10",), ("fkd",), (0, 1))
    assert pool_folder(tmp_path, a.config(TINY), engine) == pool_folder(tmp_path, b.config(TINY), engine)
    first = run_setting(tmp_path, a, [0], engine, TINY)
    again = run_setting(tmp_path, a, [0], engine, TINY)  # read back, nothing run again
    assert first.students == again.students
    assert list(json.loads((tmp_path / "sweeps" / "a" / "wall.json").read_text())) == ["0"]


def test_the_report_names_seed_groups_in_seed_order(tmp_path):
    """Seeds run out of order (a resumed or extended sweep) are kept, and reported, in seed order."""
    engine = Engine.for_device(torch.device("cpu"), 1)
    a = Setting("a", (), ("fkd",), (0,))
    for seed in (1, 0):
        run_setting(tmp_path, a, [seed], engine, TINY)
    assert read_distill(tmp_path / "sweeps" / "a" / "results.json").seeds_done == [0, 1]
    assert "| a | fkd | 0-1 |" in report_markdown(tmp_path)


@pytest.mark.slow
def test_the_transfer_plan_at_tiny_size(tmp_path):
    engine = Engine.for_device(torch.device("cpu"), 1)
    extra = [*TINY, "transfer_single=10"]
    summaries = run_plan("transfer", tmp_path, engine, extra, limit_seeds=1)
    assert [s["setting"] for s in summaries] == [TRANSFER[0].name, TRANSFER[1].name, TRANSFER[1].name,
                                                 TRANSFER[0].name, TRANSFER[2].name, TRANSFER[2].name]
    assert summaries[0]["verdicts"] is None  # the select seeds get no verdict
    assert set(summaries[2]["verdicts"]) == set(TRANSFER[1].methods)  # the report seeds do
    assert json.loads((tmp_path / "transfer.json").read_text())[0]["rows"]
    text = report_markdown(tmp_path)
    assert "| T1-single500 | fkd:eps=1 | 4-4 |" in text and "Wall time" in text


def test_the_lottery_probe_measures_purity_and_memorisation():
    cfg = Config().with_overrides([*TINY, "mu=0.25"])
    probe = lottery_probe(cfg, 0, 2, Engine.for_device(torch.device("cpu"), 1))
    assert 0 <= probe["one_view"] <= 1 and probe["single_train"] > 0
    assert len(probe["fit_view_not_learned"]) == 2 and len(probe["fit_view_learned"]) == 2
    assert (256, 0.04) in REGIMES


def test_the_k10_1200_step_config_is_that_cell_of_the_transfer_study():
    from pathlib import Path

    from multiview.methods import parse_method
    from studies.transfer import FKD, TIMING_K10

    shipped = Config.load(Path(__file__).resolve().parents[2] / "configs" / "k10_n250_steps1200.json")
    cell = TIMING_K10[1]
    assert cell.name == "k10-steps1200" and FKD in cell.methods
    assert shipped.with_(method_params={}) == cell.config()
    assert parse_method("fkd", shipped.method_params) == parse_method(FKD)
