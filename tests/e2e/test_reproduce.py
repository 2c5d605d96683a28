"""scripts/reproduce_cifar100.py on a tiny CIFAR-100-format data set: teacher, every method, report, skip, resume."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch
from interrupt import train_until_killed
from tiny_images import write_cifar100

from fkdapp.runtime import atomic_save
from realdata.checkpoints import read_checkpoint
from realdata.models import build
from studies.reproduce import Options, make_plan

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "reproduce_cifar100.py"
TITLES = ("student alone", "KD", "RKD", "SP", "PKT", "FKD without feature reg.", "FKD", "FitNet", "AT", "DKD", "CRD",
          "CC", "VID", "NST", "FT", "AB", "FSP")


@pytest.fixture(scope="module")
def script():
    sys.path.insert(0, str(SCRIPT.parent))  # as `python scripts/...` has it: the script's folder (its _root helper)
    spec = importlib.util.spec_from_file_location("reproduce_cifar100", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_cifar100(tmp_path_factory.mktemp("data"), n_train=32, n_test=16)


def args(data_dir, out, *more) -> list[str]:
    return ["--epochs", "1", "--seeds", "1", "--pairs", "resnet8->resnet8", "--batch-size", "16", "--device", "cpu",
            "--data-dir", str(data_dir), "--out", str(out), *more]


def test_the_whole_table_on_tiny_data(script, data_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert script.main(args(data_dir, out, "--dry-run")) == 0
    plan = capsys.readouterr().out
    assert "1 teachers to train, 17 student runs" in plan and "fkd-noreg, seed 0: to do" in plan
    assert not out.exists()  # a dry run writes nothing

    assert script.main(args(data_dir, out)) == 0
    assert (out / "teachers" / "resnet8" / "last.pt").is_file()
    for method in ("kd", "rkd", "sp", "pkt", "fkd-noreg", "fkd", "fitnet", "at", "dkd", "crd"):
        assert (out / "runs" / method / "resnet8-resnet8" / "s0" / "last.pt").is_file()
    assert (out / "runs" / "ce" / "resnet8" / "s0" / "last.pt").is_file()
    noreg = json.loads((out / "runs" / "fkd-noreg" / "resnet8-resnet8" / "s0" / "config.json").read_text())
    assert noreg["method"] == "fkd" and noreg["params"]["feature_reg"] == 0 and noreg["lr"] == 0.05
    report = (out / "report.md").read_text()
    header = next(line for line in report.splitlines() if line.startswith("| teacher -> student"))
    assert all(f"| {t} |" in header for t in TITLES), header
    ours = next(line for line in report.splitlines() if line.startswith("| resnet8 -> resnet8 | ours"))
    assert ours.count("(n = 1)") == 1 + len(TITLES), ours  # the teacher and every method: one finished seed
    for label in ("| ce |", "| kd |", "| rkd |", "| sp |", "| pkt |", "| fkd (feature_reg=0) |", "| fkd |",
                  "| fitnet |", "| at |", "| dkd |", "| crd |"):
        assert label in report, label  # the realdata report of the student runs

    capsys.readouterr()
    assert script.main(args(data_dir, out)) == 0  # everything finished: skipped
    again = capsys.readouterr().out
    assert again.count("[skip]") == 18 and "[run]" not in again  # the teacher and 17 student runs


def test_published_teachers_and_resuming(script, data_dir, tmp_path, capsys):
    teachers = tmp_path / "published"
    teachers.mkdir()
    torch.manual_seed(0)
    atomic_save({"model": build("resnet8", num_classes=100).state_dict()}, teachers / "resnet8.pth")
    out = tmp_path / "out"
    # an interrupted run (epoch 1 of 2 done, as if killed) is resumed, not restarted
    base = args(data_dir, out, "--teacher-dir", str(teachers), "--methods", "kd,fkd")
    base[base.index("--epochs") + 1] = "2"
    plan = make_plan(Options(**vars(script.build_parser().parse_args(base))))
    job = next(j for j in plan.jobs if j.config.method == "kd")
    train_until_killed(job.config, job.out)
    kd = out / "runs" / "kd" / "resnet8-resnet8" / "s0"
    assert job.out == kd and read_checkpoint(kd / "last.pt")["epoch"] == 1
    assert script.main(base) == 0
    printed = capsys.readouterr().out
    assert "kd, seed 0: resume after epoch 1" in printed and f"teacher resnet8: {teachers / 'resnet8.pth'}" in printed
    assert not (out / "teachers").exists()  # nothing trained for the teacher
    assert [json.loads(r)["epoch"] for r in (kd / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    report = (out / "report.md").read_text()
    ours = next(line for line in report.splitlines() if line.startswith("| resnet8 -> resnet8 | ours"))
    assert ours.count("(n = 1)") == 3, ours  # the published teacher (evaluated), KD and FKD


def test_bad_flags_are_one_line(script, data_dir, tmp_path, capsys):
    for flags, match in ((["--pairs", "resnet8"], "TEACHER-STUDENT"), (["--methods", "vvd"], "vvd"),
                         (["--seeds", "x"], "--seeds"), (["--teacher-dir", str(tmp_path)],
                                                                   "has no teacher resnet8: looked for resnet8.pth")):
        assert script.main(args(data_dir, tmp_path / "o", *flags)) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and match in err and len(err.strip().splitlines()) == 1, err


def test_the_dry_run_checks_data_and_teachers_and_lists_skipped_cells(script, data_dir, tmp_path, capsys):
    """T-S pairs beside T->S, the one seed grammar, the skipped (pair, method) cells with why, and the data and
    given teachers checked before anything runs (exit 1 where something is missing)."""
    teachers = tmp_path / "published"
    teachers.mkdir()
    atomic_save({"model": build("resnet14", num_classes=100).state_dict()}, teachers / "resnet8.pth")  # wrong arch
    flags = ["--epochs", "1", "--seeds", "2-3", "--device", "cpu", "--out", str(tmp_path / "o"), "--dry-run"]
    assert script.main([*flags, "--pairs", "resnet8-resnet8", "--methods", "kd", "--data-dir", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert "kd, seed 2: to do" in out and "kd, seed 3: to do" in out and "seed 0" not in out
    assert "data: cifar100: extracted files in" in out and "ready to run" in out
    assert script.main([*flags, "--pairs", "resnet8-resnet8", "--methods", "kd", "--data-dir", str(tmp_path),
                        "--teacher-dir", str(teachers)]) == 1
    out = capsys.readouterr().out
    assert f"cifar100 not found in {tmp_path}: give --data-dir" in out and "teacher resnet8: checkpoint" in out
    assert "does not fit arch 'resnet8'" in out and "not ready" in out
    assert script.main(["--suite", "crd", "--dry-run", "--out", str(tmp_path / "o"), "--data-dir", str(data_dir),
                        "--pairs", "vgg13-MobileNetV2", "--methods", "ofd,kd"]) == 0
    assert "vgg13-MobileNetV2 ofd: skipped, student MobileNetV2 gives no preact maps" in capsys.readouterr().out
