"""The realdata command line end to end on tiny data sets in the official formats, and its one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner
from interrupt import train_until_killed

from fkdapp.runtime import atomic_save
from realdata.checkpoints import read_checkpoint
from realdata.cli import main
from realdata.config import TrainConfig
from realdata.engine import load_data
from realdata.models import build


def cli(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def common(data_dir, out, epochs=2, device="cpu") -> list[str]:
    return ["--dataset", "cifar10", "--data-dir", data_dir, "--epochs", str(epochs), "--batch-size", "16",
            "--device", device, "--out", out, "--no-progress"]


def one_line_error(result, match: str) -> None:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1, result.output
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in result.output, result.output
    assert match in lines[0], lines[0]


def test_train_distill_evaluate_report(tmp_path, data_dir):
    teacher = tmp_path / "teacher"
    r = cli("train", "--model", "resnet8", *common(data_dir, teacher))
    assert r.exit_code == 0, r.output
    assert "epoch 2/2 loss" in r.output and f"run folder {teacher}" in r.output
    students = []
    for seed in (0, 1):
        out = tmp_path / "runs" / f"fkd_s{seed}"
        r = cli("distill", "--teacher", teacher / "best.pt", "--student", "resnet8", "--method", "fkd",
                "--lambda", "5", "--seed", seed, *common(data_dir, out))
        assert r.exit_code == 0, r.output
        students.append(out)
    config = json.loads((students[0] / "config.json").read_text())
    assert config["params"]["lambda"] == 5 and config["teacher_archs"] == ["resnet8"]

    before = sorted(p.name for p in tmp_path.rglob("*"))
    r = cli("evaluate", students[0] / "last.pt", "--data-dir", data_dir, "--device", "cpu")
    assert r.exit_code == 0, r.output
    last = json.loads((students[0] / "metrics.jsonl").read_text().splitlines()[-1])
    assert f"resnet8 on cifar10 test: {last['test_acc']:.2f}% top-1 (16 images)" in r.output
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # evaluate writes nothing unless asked
    r = cli("evaluate", students[0] / "last.pt", "--data-dir", data_dir, "--json", tmp_path / "e.json")
    assert json.loads((tmp_path / "e.json").read_text())["test_acc"] == pytest.approx(last["test_acc"])
    # --kernel-to measures the monitor's distance for any checkpoint: here it must equal the run's last logged one
    r = cli("evaluate", students[0] / "last.pt", "--kernel-to", teacher / "best.pt", "--data-dir", data_dir,
            "--json", tmp_path / "k.json")
    assert r.exit_code == 0 and f"D(rho_S, rho_T) to {teacher / 'best.pt'}: " in r.output, r.output
    assert json.loads((tmp_path / "k.json").read_text())["kernel_distance"] == pytest.approx(last["kernel_distance"])
    one_line_error(cli("evaluate", students[0] / "last.pt", students[1] / "last.pt", "--kernel-to",
                       teacher / "best.pt", "--data-dir", data_dir), "give one checkpoint")

    r = cli("report", tmp_path / "runs", teacher)
    assert r.exit_code == 0, r.output
    rows = [line for line in r.output.splitlines() if line.startswith("| cifar10")]
    assert len(rows) == 2
    fkd = next(row for row in rows if "fkd" in row)
    assert "fkd (lambda=5)" in fkd and "resnet8 -> resnet8" in fkd and "| 2 |" in fkd and "±" in fkd
    assert any("| ce |" in row and "resnet8 alone" in row and "| 1 |" in row for row in rows)

    r = cli("plot", tmp_path / "runs", teacher, "-o", tmp_path / "curves.png")
    assert r.exit_code == 0 and "(2 run groups)" in r.output, r.output
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    one_line_error(cli("plot", tmp_path / "nothing-here", "-o", tmp_path / "x.png"), "does not exist")
    one_line_error(cli("plot", tmp_path / "runs", "-o", tmp_path / "curves.xyz"), "cannot write")
    assert cli("plot", tmp_path / "runs", "-o", tmp_path / "new" / "c.svg").exit_code == 0  # folder made


def test_train_size_subset_is_recorded_and_reported(tmp_path, data_dir):
    out = tmp_path / "small"
    r = cli("train", "--model", "resnet8", "--train-size", "10", *common(data_dir, out, epochs=1), "--batch-size", "5")
    assert r.exit_code == 0, r.output
    config = TrainConfig.load(out / "config.json")
    assert config.train_size == 10 and json.loads((out / "metrics.jsonl").read_text())["epoch"] == 1
    data, _ = load_data(config, download=False, device=torch.device("cpu"))
    assert torch.bincount(data.train_y, minlength=10).tolist() == [1] * 10 and len(data.test_y) == 16
    r = cli("report", out)
    assert "| train images |" in r.output and "| 10 | 1 | 1 |" in r.output, r.output
    one_line_error(cli("train", "--model", "resnet8", "--train-size", "0", *common(data_dir, tmp_path / "z")),
                   "train_size must be an integer >= 1")
    one_line_error(cli("train", "--model", "resnet8", "--train-size", "100000", *common(data_dir, tmp_path / "y")),
                   "train_size must be in 1..")


def test_ensemble_of_two_archs_and_cross_dataset_transfer(tmp_path, data_dir):
    t1, t2 = tmp_path / "t1.pt", tmp_path / "t2.pt"
    torch.manual_seed(1)
    atomic_save({"model": build("resnet8", 10).state_dict()}, t1)  # a published-style checkpoint: no arch
    torch.manual_seed(2)
    atomic_save({"model": build("resnet14", 10).state_dict()}, t2)
    out = tmp_path / "student"
    r = cli("distill", "--teacher", f"{t1}:resnet8", "--teacher", f"{t2}:resnet14", "--student", "resnet8",
            "--method", "fkd", "--transfer-data", "fashion_mnist", *common(data_dir, out, epochs=1))
    assert r.exit_code == 0, r.output
    config = json.loads((out / "config.json").read_text())
    assert config["teacher_archs"] == ["resnet8", "resnet14"] and config["transfer_data"] == "fashion_mnist"
    # the other way round: a Fashion-MNIST (1x28x28) student with CIFAR (3x32x32) transfer images
    out2 = tmp_path / "fmnist_student"
    args = common(data_dir, out2, epochs=1)
    args[args.index("cifar10")] = "fashion_mnist"
    r = cli("distill", "--teacher", t1, "--teacher-arch", "resnet8", "--student", "resnet8", "--method", "kd",
            "--transfer-data", "cifar10", *args)
    assert r.exit_code == 0, r.output
    ckpt = read_checkpoint(out2 / "last.pt")
    assert (ckpt["dataset"], ckpt["in_channels"], ckpt["image_size"]) == ("fashion_mnist", 3, 32)
    r = cli("evaluate", out2 / "last.pt", "--data-dir", data_dir, "--device", "cpu")
    assert r.exit_code == 0 and "on fashion_mnist test" in r.output, r.output


def test_user_errors_are_one_line(tmp_path, data_dir):
    teacher = tmp_path / "teacher"
    assert cli("train", "--model", "resnet8", *common(data_dir, teacher, epochs=1)).exit_code == 0
    ckpt = teacher / "last.pt"
    crd = tmp_path / "crd.pt"
    atomic_save({"model": read_checkpoint(ckpt)["model"]}, crd)
    run = ["--student", "resnet8", *common(data_dir, tmp_path / "s", epochs=1)]
    one_line_error(cli("train", "--model", "resnet9", *common(data_dir, tmp_path / "x")), "unknown model 'resnet9'")
    one_line_error(cli("distill", "--teacher", ckpt, "--method", "vvd", *run), "unknown method 'vvd'")
    one_line_error(cli("distill", "--teacher", ckpt, "--lambda", "1", "--method", "kd", *run),
                   "method 'kd' has no parameter 'lambda'")
    one_line_error(cli("train", "--model", "resnet8", *common(tmp_path / "empty", tmp_path / "x")),
                   "run with --download")
    one_line_error(cli("train", "--model", "resnet8", *common(data_dir, tmp_path / "x", epochs=0)),
                   "epochs must be an integer >= 1")
    one_line_error(cli("train", "--model", "resnet8", "--lr", "-1", *common(data_dir, tmp_path / "x")), "lr must be")
    one_line_error(cli("distill", "--teacher", f"{ckpt}:resnet14", *run),
                   f"checkpoint {ckpt} holds a 'resnet8', not the resnet14 asked for")
    one_line_error(cli("distill", "--teacher", crd, *run), f"checkpoint {crd} does not record its architecture")
    one_line_error(cli("distill", "--teacher", tmp_path / "nope.pt", *run), "nope.pt not found")
    one_line_error(cli("evaluate", crd, "--arch", "wrn_16_1", "--dataset", "cifar10", "--data-dir", data_dir),
                   "does not fit arch 'wrn_16_1'")
    one_line_error(cli("train", "--model", "resnet8", "--seed", "3", *common(data_dir, teacher, epochs=1)),
                   "holds a different run (seed 0 there, 3 here)")
    one_line_error(cli("train", "--model", "resnet8", *common(data_dir, teacher, epochs=1)),
                   "already holds this run, finished at epoch 1")
    one_line_error(cli("train", "--model", "resnet8", *common(data_dir, tmp_path / "x", device="tpu")),
                   "unknown device 'tpu'")
    one_line_error(cli("report", tmp_path / "nothing-here"), "does not exist")
    # a loss blowing up: the last good checkpoint stays
    r = cli("train", "--model", "resnet8", "--lr", "1e30", "--momentum", "0", *common(data_dir, tmp_path / "nan", 3))
    one_line_error(r, "the 'ce' loss is")
    assert "training stopped" in r.output


def test_resume_from_the_command_line(tmp_path, data_dir):
    out = tmp_path / "run"
    r = cli("train", "--model", "resnet8", "--resume", *common(data_dir, out, epochs=1))
    assert r.exit_code == 0, r.output  # --resume with nothing to resume starts the run
    r = cli("train", "--model", "resnet8", "--resume", *common(data_dir, out, epochs=1))
    assert r.exit_code == 0 and "last" in r.output, r.output  # a finished run: nothing left to do


@pytest.mark.slow
def test_python_dash_m():
    r = subprocess.run([sys.executable, "-m", "realdata", "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and all(c in r.stdout for c in ("train", "distill", "evaluate", "report"))


def test_config_file_and_defaults_from_the_dataclass(tmp_path, data_dir):
    """--config gives the fields, options given on the command line win, the rest are TrainConfig's defaults."""
    from realdata.cli import DEFAULTS

    assert DEFAULTS["epochs"] == 240 and DEFAULTS["batch_size"] == 64 and DEFAULTS["weight_decay"] == 5e-4
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"model": "resnet8", "dataset": "cifar10", "epochs": 1, "batch_size": 16,
                               "data_dir": str(data_dir), "device": "cpu", "seed": 3}))
    out = tmp_path / "run"
    r = cli("train", "--config", cfg, "--seed", "4", "--out", out, "--no-progress")
    assert r.exit_code == 0, r.output
    saved = json.loads((out / "config.json").read_text())
    assert saved["seed"] == 4 and saved["epochs"] == 1 and saved["momentum"] == DEFAULTS["momentum"]
    one_line_error(cli("train", "--config", tmp_path / "missing.json", "--out", tmp_path / "x"), "not found")
    cfg.write_text(json.dumps({"model": "resnet8", "dataset": "cifar10", "epoch": 1}))
    one_line_error(cli("train", "--config", cfg, "--out", tmp_path / "y"), "did you mean 'epochs'")
    one_line_error(cli("train", "--model", "resnet88", "--dataset", "cifar10", "--out", tmp_path / "z"),
                   "did you mean")


def test_resume_from_the_folder_alone_and_csv(tmp_path, data_dir):
    """A run killed after epoch 1, continued by `realdata resume RUN` (and by --resume with --out only), ends with
    the weights of an uninterrupted run; metrics.csv mirrors metrics.jsonl."""
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert cli("train", "--model", "resnet8", *common(data_dir, whole)).exit_code == 0
    train_until_killed(TrainConfig.load(whole / "config.json"), cut)
    r = cli("train", "--out", cut, "--no-progress")
    one_line_error(r, "no data set")  # without --resume nothing is read from the folder
    r = cli("resume", cut, "--no-progress")
    assert r.exit_code == 0, r.output
    a, b = read_checkpoint(whole / "last.pt")["model"], read_checkpoint(cut / "last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    lines = (cut / "metrics.csv").read_text().splitlines()
    assert lines[0].startswith("epoch,") and "loss_ce" in lines[0] and len(lines) == 3
    r = cli("train", "--out", cut, "--resume", "--no-progress")  # finished: nothing left to train
    assert r.exit_code == 0, r.output
    one_line_error(cli("train", "--model", "resnet8", *common(data_dir, cut), "--seed", "5"),
                   f"realdata resume {cut}")


def test_checkpoint_given_as_folder_or_json(tmp_path, data_dir):
    run = tmp_path / "t"
    assert cli("train", "--model", "resnet8", *common(data_dir, run, epochs=1)).exit_code == 0
    one_line_error(cli("evaluate", run), f"give {run / 'best.pt'}")
    one_line_error(cli("evaluate", run / "config.json"), "is a JSON file, not a checkpoint")
    one_line_error(cli("distill", "--teacher", run, "--student", "resnet8", *common(data_dir, tmp_path / "s")),
                   "is a folder, not a checkpoint")
    r = cli("evaluate", run / "best.pt", "--device", "cpu")  # the data folder comes from the run
    assert r.exit_code == 0, r.output


def test_report_one_seed_and_duplicates(tmp_path, data_dir):
    run = tmp_path / "runs" / "a"
    assert cli("train", "--model", "resnet8", *common(data_dir, run, epochs=1)).exit_code == 0
    r = cli("report", tmp_path / "runs")
    assert "(n = 1)" in r.output and "± 0.00" not in r.output and "95% t-interval" in r.output
    import shutil

    shutil.copytree(run, tmp_path / "runs" / "b")
    r = cli("report", tmp_path / "runs")  # the copy is named and left out; the table stays
    assert r.exit_code == 0 and "(n = 1)" in r.output and "the same run as" in r.output and "resnet8 alone" in r.output


@pytest.mark.slow
def test_sigint_stops_after_the_step_and_says_how_to_resume(tmp_path, data_dir):
    import signal
    import time

    out, whole = tmp_path / "run", tmp_path / "whole"
    args = ["--model", "resnet8", *map(str, common(data_dir, out, epochs=6))]
    proc = subprocess.Popen([sys.executable, "-m", "realdata", "train", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 120
    while time.time() < deadline and not ((out / "metrics.jsonl").is_file() and (out / "metrics.jsonl").read_text()):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err  # a stop the user asked for: 128 + SIGINT, not an error
    assert "stopping after this step (Ctrl-C again to stop now)" in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("Stopped: stopped by signal 2") and f"continue with: realdata resume {out}" in last
    assert cli("resume", out, "--no-progress").exit_code == 0
    assert cli("train", "--model", "resnet8", *common(data_dir, whole, epochs=6)).exit_code == 0
    a, b = read_checkpoint(whole / "last.pt")["model"], read_checkpoint(out / "last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_a_second_signal_stops_at_once_and_keeps_the_last_checkpoint(tmp_path, data_dir):
    import signal
    import time

    out = tmp_path / "run"
    args = ["--model", "resnet8", *map(str, common(data_dir, out, epochs=50))]
    proc = subprocess.Popen([sys.executable, "-m", "realdata", "train", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "last.pt").is_file():
        time.sleep(0.05)
    saved = (out / "last.pt").read_bytes()
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    # the second signal stops the run at once; one that comes after the first has already stopped it (its handlers
    # given back) ends the process as SIGTERM does, which a shell reports as the same 143
    assert proc.returncode in (143, -signal.SIGTERM) and "Traceback" not in err, err
    if proc.returncode == 143:
        assert err.strip().splitlines()[-1].startswith("Stopped: "), err
    # whichever way the two signals met the run, last.pt is whole (the one before, or the stop's own) and resumable
    assert read_checkpoint(out / "last.pt")["epoch"] >= 1 and len(saved) > 0
    assert not list(out.glob(".*.tmp"))


def test_tensorboard_event_files_or_a_clear_error(tmp_path, data_dir):
    r = cli("train", "--model", "resnet8", *common(data_dir, tmp_path / "tb", epochs=1), "--tensorboard")
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        one_line_error(r, "pip install '.[tensorboard]'")
    else:
        assert r.exit_code == 0, r.output
        assert list((tmp_path / "tb" / "tensorboard").glob("events.out.tfevents.*"))


def test_val_size_holds_out_a_split_logged_reported_and_plotted(tmp_path, data_dir):
    out = tmp_path / "val"
    r = cli("train", "--model", "resnet8", "--val-size", "10", *common(data_dir, out, epochs=2), "--batch-size", "5")
    assert r.exit_code == 0, r.output
    assert "val " in r.output and "validation last" in r.output
    config = TrainConfig.load(out / "config.json")
    assert config.val_size == 10
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all("val_acc" in row for row in rows)
    assert ["test_acc" in row for row in rows] == [False, True]  # the test set is read at the last epoch only
    assert rows[-1]["best_acc"] == max(row["val_acc"] for row in rows)  # best.pt is chosen on validation
    assert torch.load(out / "best.pt", weights_only=False)["val_acc"] == rows[-1]["best_acc"]
    data, _ = load_data(config, download=False, device=torch.device("cpu"))
    assert len(data.train_y) == 30 and len(data.val_y) == 10 and len(data.test_y) == 16  # 40 training images
    r = cli("report", out)
    assert "| last val acc (%) |" in r.output and r.output.strip().splitlines()[-1].endswith(" (n = 1) |"), r.output
    assert cli("plot", out, "-o", tmp_path / "c.png").exit_code == 0
    one_line_error(cli("train", "--model", "resnet8", "--val-size", "1000", *common(data_dir, tmp_path / "v")),
                   "val_size must be in 1..40 for cifar10")


def test_teachers_on_parts_and_a_student_with_unlabelled_images_and_fkd_recipe_choices(tmp_path, data_dir):
    teacher = tmp_path / "teacher"
    r = cli("train", "--model", "resnet8", "--train-part", "2/2", *common(data_dir, teacher, epochs=1))
    assert r.exit_code == 0, r.output
    config = TrainConfig.load(teacher / "config.json")
    halves = [load_data(config.with_updates(train_part=f"{i}/2"), False, torch.device("cpu"))[0] for i in (1, 2)]
    assert config.train_part == "2/2" and len(halves[0].train_y) + len(halves[1].train_y) == 40  # a partition
    out = tmp_path / "student"
    r = cli("distill", "--teacher", teacher / "last.pt", "--student", "resnet8", "--train-size", "10", "--val-size",
            "3", "--transfer-size", "2", "--param", "norm_head=1", "--param", "reg_power=1",
            *common(data_dir, out, epochs=1), "--batch-size", "5")
    assert r.exit_code == 0, r.output
    config = TrainConfig.load(out / "config.json")
    assert config.transfer_size == 2 and config.params["norm_head"] == 1 and config.params["reg_power"] == 1
    data, unlabelled = load_data(config, False, torch.device("cpu"))
    assert (len(data.train_y), len(data.val_y), len(unlabelled.train_y)) == (10, 3, 2)  # tiny, uneven classes
    assert read_checkpoint(out / "last.pt")["unit_features"] is True  # evaluate rebuilds the same head
    test_acc = json.loads((out / "metrics.jsonl").read_text())["test_acc"]
    r = cli("evaluate", out / "last.pt", "--data-dir", data_dir, "--device", "cpu", "--json", tmp_path / "e.json")
    assert r.exit_code == 0 and json.loads((tmp_path / "e.json").read_text())["test_acc"] == test_acc, r.output
    assert "2 unlabelled" in cli("report", out).output and "part 2/2" in cli("report", teacher).output
    for bad, match in ((["--train-part", "3/2"], "train_part must be i/n"),
                       (["--train-part", "1/2", "--train-size", "10"], "--train-size or --train-part, not both")):
        one_line_error(cli("train", "--model", "resnet8", *bad, *common(data_dir, tmp_path / "x")), match)
    one_line_error(cli("distill", "--teacher", teacher / "last.pt", "--student", "resnet8", "--transfer-size", "5",
                       *common(data_dir, tmp_path / "y")), "--transfer-size takes unlabelled images")


def test_a_users_own_architecture_trains_resumes_evaluates_and_teaches(tmp_path, data_dir):
    teacher = tmp_path / "teacher"
    r = cli("train", "--model", "user_models:small_cnn", *common(data_dir, teacher, epochs=2))
    assert r.exit_code == 0, r.output
    config = TrainConfig.load(teacher / "config.json")
    assert config.model == "user_models:small_cnn" and read_checkpoint(teacher / "last.pt")["arch"] == config.model
    # the checkpoint names its model, but a file never chooses code to run: the user names it
    one_line_error(cli("evaluate", teacher / "last.pt", "--data-dir", data_dir, "--device", "cpu"),
                   "a file never chooses code to run: name it yourself with --teacher-arch user_models:small_cnn")
    r = cli("evaluate", teacher / "last.pt", "--arch", "user_models:small_cnn", "--data-dir", data_dir, "--device",
            "cpu", "--json", tmp_path / "e.json")
    last = json.loads((teacher / "metrics.jsonl").read_text().splitlines()[-1])
    assert r.exit_code == 0 and json.loads((tmp_path / "e.json").read_text())["test_acc"] == last["test_acc"]
    # a zoo student learns from it (its features: the input of its last nn.Linear), and a user's student with
    # --feature-layer from a zoo teacher, killed after epoch 1 and resumed
    r = cli("distill", "--teacher", teacher / "last.pt", "--teacher-arch", "user_models:small_cnn", "--student",
            "resnet8", *common(data_dir, tmp_path / "s1"))
    assert r.exit_code == 0, r.output
    student = tmp_path / "s2"
    args = ("distill", "--teacher", tmp_path / "s1" / "last.pt", "--student", "user_models:small_cnn",
            "--feature-layer", "body.relu", "--method", "fkd", *common(data_dir, student, epochs=2))
    train_until_killed(TrainConfig(model="user_models:small_cnn", dataset="cifar10", method="fkd",
                                   feature_layer="body.relu", teachers=(str(tmp_path / "s1" / "last.pt"),), epochs=2,
                                   batch_size=16, device="cpu", data_dir=str(data_dir)), student)
    one_line_error(cli("resume", student, "--no-progress"), "names code to import ('user_models:small_cnn')")
    assert cli("resume", student, "--no-progress", "--allow-code", "user_models:small_cnn").exit_code == 0
    assert read_checkpoint(student / "last.pt")["feature_layer"] == "body.relu"
    assert cli(*args, "--out", tmp_path / "s3").exit_code == 0  # the same from the command line
    for bad, says in ((["--model", "user_models:nothing"], "user_models has no 'nothing'"),
                      (["--model", "no_such_module:f"], "cannot import no_such_module"),
                      (["--model", "user_models:NOT_CALLABLE"], "NOT_CALLABLE is not callable"),
                      (["--model", "user_models:broken"], "did not build with num_classes=10"),
                      (["--model", "user_models:grey_cnn"], "does not run on 3x32x32 images"),
                      (["--model", "user_models:small_cnn", "--feature-layer", "body.relu2"], "closest: body.relu"),
                      (["--model", "resnet8", "--feature-layer", "layer1"], "--feature-layer applies to")):
        one_line_error(cli("train", *bad, *common(data_dir, tmp_path / "x")), says)
    one_line_error(cli("distill", "--teacher", teacher / "last.pt", "--teacher-arch", "user_models:small_cnn",
                       "--student", "resnet8", "--method", "at", *common(data_dir, tmp_path / "y")),
                   "compares the maps after every stage")
