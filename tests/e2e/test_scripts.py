"""The experiment scripts at tiny size: they run end to end and write what they promise (the real runs take hours)."""

import json
import os
import subprocess
import sys
from pathlib import Path

from tiny_sim import SMOKE, as_set

ROOT = Path(__file__).resolve().parents[2]
TINY = as_set(SMOKE)


def run(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


def test_testbed_script(tmp_path):
    # two methods end to end (the phases' choices are unit-tested in tests/studies/test_phases.py)
    run(["scripts/multiview_testbed.py", "--out", str(tmp_path), "--jobs", "1", "--select-seeds", "0-0",
         "--report-seeds", "1-1", "--methods", "fkd,kd", "--table", str(tmp_path / "t.md"), "--figure",
         str(tmp_path / "f.png"), *TINY])
    summary = json.loads((tmp_path / "testbed.json").read_text())
    assert set(summary["chosen"]) == {"fkd", "kd"} and len(summary["selection"]["kd"]["scores"]) == 4
    assert "| rank |" in (tmp_path / "t.md").read_text() and (tmp_path / "f.png").stat().st_size > 10_000
    assert len(list((tmp_path / "teachers").glob("seed*.pt"))) == 2  # one pool for every sweep
    run(["scripts/multiview_testbed.py", "--out", str(tmp_path), "--jobs", "1", "--select-seeds", "0-0", "--no-report",
         "--methods", "fkd,kd", "--table", str(tmp_path / "t2.md"), "--figure", str(tmp_path / "f2.png"),
         *TINY])  # from the selection alone
    assert "reported on the selection sweeps" in (tmp_path / "t2.md").read_text()


def test_lag_script(tmp_path):
    run(["scripts/multiview_lag.py", "--out", str(tmp_path), "--jobs", "1", "--figures", str(tmp_path / "fig"),
         "--select-seeds", "0-0", "--report-seeds", "1-1", "--k-seeds", "10:0-1", "--k-seeds", "20:0-0", "--k-seeds",
         "30:0-0", "--variants", "fkd;fkd:eps_rel=0.1,balance=1", "--kd-grid", "kd;kd:kd_weight=10", *TINY])
    state = json.loads((tmp_path / "fig" / "multiview_lag.json").read_text())
    assert {"select", "k10", "k10_report", "k20", "k30"} <= set(state) and state["select"]["best_variant"]
    # the k-trend's k = 10 has the report's seed and seed 0; the decision rule only the report's
    assert state["k10"]["fkd"]["2"]["seeds"] == 2 and state["k10_report"]["fkd"]["2"]["seeds"] == 1
    assert state["verdict_k10"] is None or state["verdict_k10"]["seeds"] == "1-1"
    figures = tmp_path / "fig"
    assert (figures / "multiview_lag_k.png").is_file() and (figures / "multiview_lag_balance.png").is_file()
    # the GPU phases (k40, k80) as their command runs them, at tiny size on the CPU, with a named variant
    variant = "fkd:eps_rel=0.1,balance=1,balance_until=150"
    run(["scripts/multiview_lag.py", "--out", str(tmp_path / "gpu"), "--jobs", "1", "--figures",
         str(tmp_path / "fig2"), "--phases", "k40,k80", "--k-seeds", "40:0-1", "--k-seeds", "80:0-0", "--device", "cpu",
         "--variant", variant, "--results", f"10:{tmp_path / 'report-k10' / 'results.json'}", *TINY,
         "--set", "d=200"])
    state = json.loads((tmp_path / "fig2" / "multiview_lag.json").read_text())
    assert set(state["k40"]) == set(state["k80"]) == {"fkd", variant} and state["k40"]["fkd"]["2"]["seeds"] == 2
    assert set(state["k10"]) == {"fkd"} and "(from " in (tmp_path / "fig2" / "multiview_lag.md").read_text()


def test_fashion_mnist_study_script(tmp_path):
    from tiny_images import write_fashion_mnist

    data = write_fashion_mnist(tmp_path / "data", n_train=40, n_test=16)

    def study(seeds: str, *extra: str) -> str:
        return run(["scripts/fashion_mnist_study.py", "--out", str(tmp_path / "out"), "--figures",
                    str(tmp_path / "fig"), "--jobs", "2", "--seeds", seeds, "--ensemble", "1,2", "--train-size", "20",
                    "--epochs", "1", "--teacher-epochs", "1", "--batch-size", "10", "--eval-batch-size", "8",
                    "--data-dir", str(data), *extra]).stdout

    plan = study("0-1", "--dry-run")  # every method
    assert plan.count("[run] ") == 3 + 2 * (1 + 16 + 2 * 2) and not (tmp_path / "out").exists()
    study("0-0", "--methods", "fkd-noreg,crd")
    summary = json.loads((tmp_path / "fig" / "fashion_mnist_study.json").read_text())
    assert set(summary["methods_last_acc"]) == {"ce", "fkd-noreg", "crd"}
    curve = summary["ensemble_curve"]
    assert set(curve["fkd"]) == {"1", "2"} and len(curve["teacher_ensemble"]) == 2
    noreg = json.loads((tmp_path / "out" / "methods" / "fkd-noreg" / "s0" / "config.json").read_text())
    assert noreg["params"]["feature_reg"] == 0 and noreg["train_size"] == 20
    assert (tmp_path / "fig" / "fashion_mnist_study_ensemble.png").stat().st_size > 10_000
    assert "| kd | resnet8+resnet8 -> resnet8 |" in (tmp_path / "fig" / "fashion_mnist_study_ensemble.md").read_text()
    # the student alone's distance to the teacher comes from evaluate --kernel-to, the others' from their monitor
    d = summary["methods_kernel_distance"]
    assert set(d) == {"ce", "fkd-noreg", "crd"} and all(0 <= m <= 1 for m, _ in d.values())
    assert (tmp_path / "out" / "methods" / "ce" / "s0" / "kernel.json").is_file()
    alignment = (tmp_path / "fig" / "fashion_mnist_study_alignment.md").read_text()
    assert "Spearman rank correlation over the 3 methods" in alignment
    assert summary["seconds"]["students"] > 0
    again = study("0-0", "--methods", "fkd-noreg,crd", "--dry-run")
    assert again.count("[skip]") == 3 + 7 and "[run]" not in again  # all finished: nothing to run again
    plain = study("0-0", "--methods", "crd", "--ensemble", "none", "--dry-run")  # no curve: no members either
    assert plain.count("[skip]") == 3 and "[run]" not in plain


def test_fashion_mnist_verdict_script(tmp_path):
    """Every phase at tiny size: selection on validation, report, recipe rows, differing teachers, fewer labels."""
    from tiny_images import write_fashion_mnist

    data = write_fashion_mnist(tmp_path / "data", n_train=400, n_test=16)

    def verdict(*extra: str, out: str = "out") -> str:
        return run(["scripts/fashion_mnist_verdict.py", "--out", str(tmp_path / out), "--figures",
                    str(tmp_path / "fig"), "--methods", "kd,fkd,sp", "--settings", "1", "--select-seeds", "0-0",
                    "--report-seeds", "1-1", "--ensemble", "1,2", "--big-batch", "20", "--train-size", "20",
                    "--val-size", "20", "--low-labels", "10", "--unlabelled", "20", "--epochs", "1",
                    "--teacher-epochs", "1", "--batch-size", "10", "--eval-batch-size", "8", "--data-dir", str(data),
                    *extra]).stdout

    verdict()
    summary = json.loads((tmp_path / "fig" / "fashion_mnist_verdict.json").read_text())
    assert summary["selection"]["fkd"]["records"][0]["setting"] == "lambda=25,feature_reg=0.0001"
    assert summary["best_other"] == "sp" and set(summary["test"]) == {"kd", "fkd", "sp"}
    assert len(summary["fkd_minus_kd"]) == 1 and set(summary["recipe"]) == {
        "fkd, norm_head=1", "fkd, reg_power=1", "fkd, batch 20", "kd, batch 20"}
    assert set(summary["ensemble"]["teacher_ensemble"]) == {"1", "2"}
    assert list(summary["ensemble"]["members"]) == ["resnet20-part1of4", "wrn_16_2-part2of4"]
    assert all(0 <= v <= 100 for v in summary["ensemble"]["members"].values())
    assert set(summary["lowlabel"]) == {"fkd", "kd", "sp", "fkd + unlabelled", "kd + unlabelled", "sp + unlabelled"}
    out = tmp_path / "out"
    member = json.loads((out / "teachers" / "wrn_16_2-part2of4" / "config.json").read_text())
    assert member["train_part"] == "2/4"
    low = json.loads((out / "lowlabel" / "kd-unlabelled" / "s1" / "config.json").read_text())
    assert (low["train_size"], low["transfer_size"], low["val_size"]) == (10, 20, 20)
    select = json.loads((out / "select" / "fkd" / "set0" / "s0" / "config.json").read_text())
    assert select["params"]["lambda"] == 25 and select["seed"] == 0 and select["val_size"] == 20
    assert "| fkd, norm_head=1 |" in (tmp_path / "fig" / "fashion_mnist_verdict.md").read_text()
    again = verdict("--dry-run")
    assert "[run]" not in again and again.count("[skip]") == 1 + 3 + 3 + 4 + 2 + 4 + 6  # all finished
    # the ensemble phase alone, in another folder, from the record: no teacher, no selection runs
    record = tmp_path / "fig" / "fashion_mnist_verdict.json"
    verdict("--from", "ensemble", "--selection", str(record), "--name", "ens", out="out2")
    ens = json.loads((tmp_path / "fig" / "ens.json").read_text())
    assert ens["selection"] == summary["selection"] and ens["selection_from"] == str(record)
    assert set(ens["ensemble"]["kd"]) == {"1", "2"} and "test" not in ens and "lowlabel" not in ens
    assert not (tmp_path / "out2" / "teachers" / "resnet20").exists() and not (tmp_path / "out2" / "select").exists()
    assert (tmp_path / "fig" / "ens.png").is_file() and "read from" in (tmp_path / "fig" / "ens.md").read_text()
    # a verdict extended with a new method: the record's choices kept, only the new method's selection planned
    more = verdict("--from", "select", "--until", "report", "--selection", str(record), "--methods", "kd,fkd,sp,dist",
                   "--dry-run")
    assert [line.split("--out ")[-1] for line in more.splitlines() if "/select/" in line] == [
        str(tmp_path / "out" / "select" / "dist" / "set0" / "s0")]
    wrong = subprocess.run([sys.executable, "scripts/fashion_mnist_verdict.py", "--from", "ensemble", "--selection",
                            str(record), "--methods", "kd,fkd,sp", "--settings", "2", "--dry-run"], cwd=ROOT,
                           capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert wrong.returncode != 0 and "pass the --settings it was made with" in wrong.stderr


def test_regime_script(tmp_path):
    """Every phase at tiny size (the TINY overrides pin k and n_train, so every cell shares one data setting)."""
    run(["scripts/multiview_regime.py", "--out", str(tmp_path), "--until", "ktrend", "--ks", "10", "--select-seeds",
         "0-0", "--report-seeds", "1-1", "--workers", "2", "--table", str(tmp_path / "t.md"), "--figure",
         str(tmp_path / "f.png"), *TINY])
    state = json.loads((tmp_path / "regime.json").read_text())
    assert len(state["factors_chosen_for_grid"]) == 2 and state["best"] is not None
    assert {r["method"] for r in state["map"]} >= {"fkd", "fkd:eps=0.316", "fkd:eps_rel=0.1", "kd:kd_weight=1"}
    assert [r["cell"]["k"] for r in state["ktrend"] if r["method"] == "kd:kd_weight=1"] == [10, 20, 30, 40]
    assert all(r["seeds"] == [1] for r in state["report"]) and (tmp_path / "f.png").stat().st_size > 10_000
    table = (tmp_path / "t.md").read_text()
    assert "| 50/class k10 eps 0.316 lambda 10 | fkd:eps=0.316 | 0 |" in table
    # resumed: every sweep is read back, none run again (no results file rewritten)
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("results.json")}
    again = run(["scripts/multiview_regime.py", "--out", str(tmp_path), "--until", "ktrend", "--ks", "10",
                 "--select-seeds", "0-0", "--report-seeds", "1-1", "--table", str(tmp_path / "t2.md"), "--figure",
                 str(tmp_path / "f2.png"), *TINY])
    assert stamps and {p: p.stat().st_mtime_ns for p in tmp_path.rglob("results.json")} == stamps
    assert "wall time this sitting:" in again.stdout and (tmp_path / "t2.md").read_text() == table


def test_remake_script(tmp_path):
    """A committed sweep re-made on the current engine, the two side by side."""
    import torch

    from multiview.config import Config
    from multiview.experiment import distill_experiment

    cfg = Config(**SMOKE)
    old = distill_experiment(cfg, [0, 1], [0, 1], ["fkd", "kd:kd_weight=1"], torch.device("cpu"),
                             tmp_path / "old")
    run(["scripts/multiview_remake.py", "--old", str(tmp_path / "old" / "results.json"), "--methods",
         "fkd,kd:kd_weight=1", "--out", str(tmp_path / "new"), "--table", str(tmp_path / "r.md")])
    table = (tmp_path / "r.md").read_text()
    assert "| fkd | 1 |" in table and "| kd:kd_weight=1 | 1 |" in table
    assert json.loads((tmp_path / "r_results.json").read_text())["seeds_done"] == old.seeds_done


def test_the_fkd_in_your_loop_example(tmp_path):
    from tiny_images import write_fashion_mnist

    data = write_fashion_mnist(tmp_path / "data", n_train=40, n_test=16)
    out = run(["examples/fkd_in_your_loop.py", "--data-dir", str(data), "--train-size", "20", "--steps", "3",
               "--batch", "8"]).stdout
    assert "teacher: " in out and "student alone: " in out and "student with FKD: " in out, out
