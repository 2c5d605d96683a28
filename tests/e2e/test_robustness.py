"""Nothing lost: torn files, two writers on one folder, failing writes, and runs killed at random moments."""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from tiny_sim import SMOKE

import fkdapp.runtime as runtime
from fkdapp.lock import FolderLock, LockedError, holder_identity
from fkdapp.runtime import WriteError, atomic_write_text, read_jsonl
from realdata.checkpoints import read_checkpoint
from realdata.cli import main
from realdata.runs import RunDir

#: Metrics that measure time, not what was computed: they differ between a killed and a never-killed run.
TIMING = ("seconds", "images_per_s", "eval_seconds", "train_seconds")


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def train_args(data_dir, out, epochs=2) -> list[str]:
    return ["train", "--model", "resnet8", "--dataset", "cifar10", "--data-dir", str(data_dir), "--epochs",
            str(epochs), "--batch-size", "16", "--device", "cpu", "--out", str(out), "--no-progress"]


def untimed(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def one_line_error(result, match: str) -> str:
    lines = [line for line in result.output.splitlines() if line.strip() and not line.startswith("Warning")]
    assert result.exit_code == 1 and len(lines) == 1 and "Traceback" not in result.output, result.output
    assert lines[0].startswith("Error: ") and match in lines[0] and len(lines[0]) < 200, lines[0]
    return lines[0]


# ------------------------------------------------------------------------------------------------- torn files


def test_a_torn_last_line_is_dropped_with_one_warning_and_resume_restores_it(tmp_path, data_dir):
    out = tmp_path / "run"
    assert cli(*train_args(data_dir, out)).exit_code == 0
    path = out / "metrics.jsonl"
    text = path.read_text()
    rows = [json.loads(line) for line in text.splitlines()]
    start = text.rstrip("\n").rfind("\n") + 1
    for cut in range(start, len(text)):  # every byte of the last line
        path.write_text(text[:cut])
        whole = cut >= len(text) - 1  # only the newline missing: the record is complete
        assert RunDir(out).read_metrics() == (rows if whole else rows[:-1]), cut
    path.write_text(text[: start + 7])
    report = cli("report", out)
    assert report.exit_code == 0 and report.output.count("Warning") <= 1, report.output
    one_line_error(cli("plot", out, "-o", tmp_path / "c.png"), "no finished run to plot (unfinished: ")
    resumed = cli("resume", out, "--no-progress")
    assert resumed.exit_code == 0, resumed.output
    assert RunDir(out).read_metrics() == rows  # each epoch once, the torn one back from last.pt's copy
    assert path.read_text() == text
    path.write_text("{oops\n" + text)  # a bad line before the last is not a torn tail
    one_line_error(cli("report", out), "line 1 is not a JSON record")


def test_read_jsonl_warns_once_per_file(tmp_path, capsys):
    p = tmp_path / "m.jsonl"
    p.write_text('{"epoch": 1}\n{"epo')
    assert read_jsonl(p) == [{"epoch": 1}] and read_jsonl(p) == [{"epoch": 1}]
    assert capsys.readouterr().err.count("Warning") == 1
    assert read_jsonl(tmp_path / "absent.jsonl") == []


# ---------------------------------------------------------------------------------------------- one writer


def _lock_of(pid: int, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ".lock").write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "since": "earlier"}))


def test_a_second_writer_is_refused_and_a_stale_lock_taken_over(tmp_path, data_dir):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _lock_of(holder.pid, tmp_path / "busy")
        line = one_line_error(cli(*train_args(data_dir, tmp_path / "busy")), "is being written by pid")
        assert f"pid {holder.pid} on {socket.gethostname()}" in line
        with pytest.raises(LockedError, match="being written"):
            from multiview.config import Config
            from multiview.experiment import distill_experiment
            distill_experiment(Config(), [0], [0], ["fkd"], torch.device("cpu"), tmp_path / "busy")
    finally:
        holder.kill()
        holder.wait(timeout=30)
    _lock_of(holder.pid, tmp_path / "stale")  # its holder is gone: taken over, no manual step
    assert cli(*train_args(data_dir, tmp_path / "stale", epochs=1)).exit_code == 0
    assert not (tmp_path / "stale" / ".lock").exists()  # released at the end
    with FolderLock(tmp_path / "x"), FolderLock(tmp_path / "x"):  # re-entrant in one process
        assert (tmp_path / "x" / ".lock").is_file()
    assert not (tmp_path / "x" / ".lock").exists()


def test_torchrun_ranks_share_the_launchers_identity(monkeypatch):
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "abc")
    assert holder_identity() == {"pid": os.getppid(), "host": socket.gethostname()}


def test_two_runs_started_together_on_one_folder(tmp_path, data_dir):
    out = tmp_path / "run"
    cmd = [str(Path(sys.executable).parent / "realdata"), *train_args(data_dir, out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
             for _ in range(2)]
    outputs = [p.communicate(timeout=240)[0] for p in procs]  # read while they run: a full pipe never blocks
    results = [(p.returncode, text) for p, text in zip(procs, outputs, strict=True)]
    assert sorted(rc for rc, _ in results) == [0, 1], results
    refused = next(text for rc, text in results if rc == 1).strip().splitlines()
    assert len(refused) == 1 and refused[0].startswith("Error: --out"), refused
    assert [r["epoch"] for r in RunDir(out).read_metrics()] == [1, 2]


# ------------------------------------------------------------------------------------------- failing writes


def test_a_failing_write_keeps_the_previous_file_and_says_why(tmp_path, monkeypatch):
    p = tmp_path / "results.json"
    atomic_write_text(p, "old\n")

    def full(*_):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(runtime.os, "fsync", full)
    with pytest.raises(WriteError) as e:
        atomic_write_text(p, "new\n")
    assert str(e.value).startswith(f"cannot write {p}: No space left on device (")  # then the bytes free
    assert str(e.value).endswith("bytes free); the previous version is intact")
    assert p.read_text() == "old\n" and [q.name for q in tmp_path.iterdir()] == ["results.json"]  # no temp files


def test_a_run_whose_checkpoint_cannot_be_written_stops_in_one_line_and_resumes(tmp_path, data_dir, monkeypatch):
    out, whole = tmp_path / "run", tmp_path / "whole"
    assert cli(*train_args(data_dir, whole, epochs=3)).exit_code == 0
    replace, calls = os.replace, []

    def denied_at_epoch_2(src, dst):
        calls.append(dst)
        if str(dst).endswith("last.pt") and sum(str(c).endswith("last.pt") for c in calls) == 2:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
        replace(src, dst)

    monkeypatch.setattr(runtime.os, "replace", denied_at_epoch_2)
    r = cli(*train_args(data_dir, out, epochs=3))
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output  # epoch 1's line, then the error
    assert r.output.strip().splitlines()[-1] == f"Error: cannot write {out / 'last.pt'}: Permission denied; the " \
                                                "previous version is intact"
    monkeypatch.setattr(runtime.os, "replace", replace)
    assert read_checkpoint(out / "last.pt")["epoch"] == 1  # the previous checkpoint, intact
    assert cli("resume", out, "--no-progress").exit_code == 0
    assert untimed(RunDir(out).read_metrics()) == untimed(RunDir(whole).read_metrics())
    a, b = read_checkpoint(out / "last.pt")["model"], read_checkpoint(whole / "last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------------------------------- kill anywhere


def test_a_run_killed_at_random_moments_ends_as_a_run_never_killed(tmp_path, data_dir):
    """SIGKILL at seeded random moments (once in the start-up, before the folder is written; then each time at a
    random point of the epoch after a chosen one: mid-step, mid-evaluation or mid-write), the original command run
    again each time, then to the end: the weights and metrics of a run never killed."""
    whole, out = tmp_path / "whole", tmp_path / "run"
    exe = str(Path(sys.executable).parent / "realdata")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    assert subprocess.run([exe, *train_args(data_dir, whole, epochs=8)], env=env, timeout=240).returncode == 0
    rows = RunDir(whole).read_metrics()
    epoch = max(r["seconds"] + r["eval_seconds"] for r in rows)
    startup = time.perf_counter() - start - sum(r["seconds"] + r["eval_seconds"] for r in rows)
    command = [exe, *train_args(data_dir, out, epochs=8), "--resume"]  # --resume starts a fresh run where none is
    rng = random.Random(25)
    for attempt in range(4):
        p = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if attempt == 0:
            time.sleep(rng.uniform(0.1, 0.5) * startup)
        else:
            target = len(RunDir(out).read_metrics()) + rng.randint(0, 1)
            deadline = time.time() + 120
            while len(RunDir(out).read_metrics()) < target and p.poll() is None and time.time() < deadline:
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 1.0) * epoch)
        assert p.poll() is None, f"attempt {attempt} finished before its kill"
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)
    assert subprocess.run(command, env=env, capture_output=True, timeout=240).returncode == 0
    assert untimed(RunDir(out).read_metrics()) == untimed(rows)
    a, b = read_checkpoint(out / "last.pt")["model"], read_checkpoint(whole / "last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a) and not (out / ".lock").exists()


def test_a_multiview_sweep_killed_in_the_middle_of_a_seed_ends_as_one_never_killed(tmp_path):
    from multiview.config import Config
    from multiview.experiment import distill_experiment
    from multiview.records import read_distill

    config = {**SMOKE, "max_steps": 300, "student_steps": 200}
    (tmp_path / "c.json").write_text(json.dumps(config))
    out = tmp_path / "sweep"
    command = [str(Path(sys.executable).parent / "multiview"), "sweep", "--teachers", "0-2", "--methods", "fkd,kd",
               "--seeds", "0-1", "--config", str(tmp_path / "c.json"), "--device", "cpu", "--out", str(out)]
    p = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and p.poll() is None:  # until seed 0 is written: then seed 1 is under way
        if (out / "results.json").is_file() and read_distill(out / "results.json").seeds_done == [0]:
            break
        time.sleep(0.05)
    time.sleep(random.Random(5).uniform(0.0, 0.5))
    assert p.poll() is None, "the sweep finished before it could be killed; make it longer"
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)
    assert read_distill(out / "results.json").seeds_done == [0] and (out / ".lock").is_file()  # killed mid-seed
    assert subprocess.run(command, capture_output=True, timeout=240).returncode == 0  # the stale lock is taken over
    resumed = read_distill(out / "results.json")
    whole = distill_experiment(Config(**config), [0, 1], [0, 1, 2], ["fkd", "kd"], torch.device("cpu"), None)
    assert resumed.students == whole.students and resumed.ensembles == whole.ensembles


# ------------------------------------------------------------------------------------------- one-line errors


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory, data_dir):
    """The files the bad inputs point at: a teacher, a finished run, corrupt and misnamed files."""
    from multiview.cli import main as multiview_main

    root = tmp_path_factory.mktemp("bad")
    run = root / "run"
    assert cli(*train_args(data_dir, run, epochs=1)).exit_code == 0
    ckpt = run / "last.pt"
    torch.save({"model": read_checkpoint(ckpt)["model"]}, root / "noarch.pt")
    (root / "corrupt.pt").write_bytes(b"not a checkpoint")
    torch.save([1, 2], root / "list.pt")
    (root / "bad.json").write_text("{oops")
    (root / "unknown.json").write_text('{"colour": 1}')
    (root / "file").write_text("x")
    (root / "full").mkdir()
    (root / "full" / "x.txt").write_text("x")
    (root / "empty").mkdir()
    torn = root / "torn"
    torn.mkdir()
    (torn / "config.json").write_text((run / "config.json").read_text())
    (torn / "metrics.jsonl").write_text('{oops\n{"epoch": 1}\n')
    return {"data": str(data_dir), "root": str(root), "run": str(run), "ckpt": str(ckpt), "multiview": multiview_main}


R, M = "realdata", "multiview"
TRAIN = ["train", "--model", "resnet8", "--dataset", "cifar10", "--data-dir", "{data}", "--epochs", "1",
         "--batch-size", "16", "--device", "cpu", "--out", "{root}/new"]
DISTILL = ["distill", "--teacher", "{ckpt}", "--student", "resnet8", *TRAIN[3:]]
#: (command line, what the one line must say); {data}, {root}, {run}, {ckpt} are filled in.
BAD_INPUTS = [
    (R, [*TRAIN[:2], "resnet9", *TRAIN[3:]], "unknown model 'resnet9'"),
    (R, [*TRAIN[:4], "cifar11", *TRAIN[5:]], "unknown data set 'cifar11'"),
    (R, [*TRAIN, "--epochs", "0"], "epochs must be an integer >= 1"),
    (R, [*TRAIN, "--epochs", "-3"], "epochs must be an integer >= 1"),
    (R, [*TRAIN, "--epochs", "two"], "Invalid value for '--epochs'"),
    (R, [*TRAIN, "--batch-size", "1"], "batch_size must be an integer >= 2"),
    (R, [*TRAIN, "--lr", "-1"], "lr must be"),
    (R, [*TRAIN, "--lr", "nan"], "lr=nan must be a finite number"),
    (R, [*TRAIN, "--momentum", "1.5"], "momentum must be"),
    (R, [*TRAIN, "--weight-decay", "-1"], "weight_decay must be"),
    (R, [*TRAIN, "--milestones", "5,3", "--epochs", "9"], "milestones must be increasing"),
    (R, [*TRAIN, "--milestones", "a,b"], "--milestones must be comma-separated integers"),
    (R, [*TRAIN, "--lr-decay", "0"], "lr_decay must be"),
    (R, [*TRAIN, "--train-size", "0"], "train_size must be an integer >= 1"),
    (R, [*TRAIN, "--train-size", "100000"], "train_size must be in 1..40"),
    (R, [*TRAIN, "--val-size", "100000"], "val_size must be in 1..40"),
    (R, [*TRAIN, "--train-part", "0/2"], "train_part must be i/n"),
    (R, [*TRAIN, "--train-part", "1/1"], "train_part must be i/n"),
    (R, [*TRAIN, "--train-part", "half"], "train_part must be i/n"),
    (R, [*TRAIN, "--train-part", "1/2", "--train-size", "5"], "--train-size or --train-part, not both"),
    (R, [*TRAIN, "--device", "tpu"], "unknown device 'tpu'"),
    (R, [*TRAIN, "--device", "cuda:7"], "cuda:7"),
    (R, [*TRAIN, "--config", "{root}/missing.json"], "missing.json"),
    (R, [*TRAIN, "--config", "{root}/bad.json"], "bad.json"),
    (R, [*TRAIN, "--config", "{root}/unknown.json"], "colour"),
    (R, [*TRAIN[:6], "{root}/empty", *TRAIN[7:]], "cifar10 not found in"),
    (R, [*TRAIN[:-1], "{root}/file"], "is a file, not a folder"),
    (R, [*TRAIN[:-1], "{root}/full"], "is not empty and holds no run"),
    (R, [*TRAIN[:-1], "{run}"], "already holds this run"),
    (R, [*TRAIN, "--no-such-option"], "No such option"),
    (R, ["distill", "--student", "resnet8", *TRAIN[3:]], "no teacher"),
    (R, [*DISTILL[:2], "{root}/missing.pt", *DISTILL[3:]], "not found"),
    (R, [*DISTILL[:2], "{root}/empty", *DISTILL[3:]], "is a folder, not a checkpoint"),
    (R, [*DISTILL[:2], "{run}/config.json", *DISTILL[3:]], "is a JSON file, not a checkpoint"),
    (R, [*DISTILL[:2], "{root}/corrupt.pt", *DISTILL[3:]], "cannot read checkpoint"),
    (R, [*DISTILL[:2], "{root}/list.pt", *DISTILL[3:]], "is not a model checkpoint"),
    (R, [*DISTILL[:2], "{root}/noarch.pt", *DISTILL[3:]], "does not record its architecture"),
    (R, [*DISTILL[:2], "{ckpt}:resnet14", *DISTILL[3:]], "not the resnet14 asked for"),
    (R, [*DISTILL, "--method", "vvd"], "unknown method 'vvd'"),
    (R, [*DISTILL, "--method", "kd", "--lambda", "1"], "method 'kd' has no parameter 'lambda'"),
    (R, [*DISTILL, "--param", "lambda"], "--param wants NAME=VALUE"),
    (R, [*DISTILL, "--param", "lambda=abc"], "fkd parameter lambda must be a finite number >= 0, got 'abc'"),
    (R, [*DISTILL, "--param", "norm_head=2"], "fkd parameter norm_head=2.0 must be true or false"),
    (R, [*DISTILL, "--method", "kd", "--temperature", "0"], "temperature must be a finite number > 0"),
    (R, [*DISTILL, "--method", "ce"], "uses no teacher"),
    (R, [*DISTILL, "--transfer-data", "mnist"], "unknown transfer data set 'mnist'"),
    (R, [*DISTILL, "--transfer-size", "5"], "--transfer-size takes unlabelled images"),
    (R, [*DISTILL, "--transfer-size", "5", "--train-size", "10", "--transfer-data", "fashion_mnist"], "not both"),
    (R, ["resume", "{root}/empty"], "not a run folder"),
    (R, ["resume", "{root}/missing"], "missing"),
    (R, ["evaluate", "{root}/missing.pt"], "not found"),
    (R, ["evaluate", "{root}/corrupt.pt"], "cannot read checkpoint"),
    (R, ["report", "{root}/missing"], "does not exist"),
    (R, ["report", "{root}/torn"], "line 1 is not a JSON record"),
    (R, ["plot", "{root}/empty", "-o", "{root}/p.png"], "no run folders"),
    (R, ["plot", "{root}/torn", "-o", "{root}/p.png"], "line 1 is not a JSON record"),
    (M, ["simulate", "--set", "lambda=5"], "--set fkd.lambda=5 or --methods fkd:lambda=5"),
    (M, ["simulate", "--set", "kd_steps=5"], "--set fkd-warm.kd_steps=5"),
    (M, ["simulate", "--set", "k=0"], "k=0"),
    (M, ["simulate", "--set", "colour=1"], "unknown config key 'colour'"),
    (M, ["simulate", "--set", "k"], "--set expects KEY=VALUE"),
    (M, ["simulate", "--config", "{root}/missing.json"], "missing.json"),
    (M, ["simulate", "--config", "{root}/bad.json"], "bad.json"),
    (M, ["simulate", "--device", "tpu"], "unknown device 'tpu'"),
    (M, ["simulate", "--engine", "warp"], "Invalid value for '--engine'"),
    (M, ["simulate", "--teachers", "-1"], "--teachers"),
    (M, ["sweep", "--methods", "vid", "--out", "{root}/sw"], "vid"),
    (M, ["sweep", "--methods", "fkd:lambda=-1", "--out", "{root}/sw"], "lambda"),
    (M, ["sweep", "--seeds", "0", "--out", "{root}/sw"], "give at least one seed"),
    (M, ["sweep", "--teachers", "a-b", "--out", "{root}/sw"], "use a number, a range like 0-6"),
    (M, ["report", "{root}/missing.json"], "not found"),
    (M, ["report", "{root}/bad.json"], "not valid JSON"),
    (M, ["plot", "{root}/missing.json", "-o", "{root}/p.png"], "not found"),
]


@pytest.mark.parametrize(("tool", "args", "says"), BAD_INPUTS, ids=[f"{t}-{i}" for i, (t, _, _) in
                                                                   enumerate(BAD_INPUTS)])
def test_every_bad_input_is_one_line(tool, args, says, bad_inputs):
    from realdata.cli import main as realdata_main

    line = [a.format(**{k: v for k, v in bad_inputs.items() if isinstance(v, str)}) for a in args]
    result = CliRunner().invoke(realdata_main if tool == R else bad_inputs["multiview"], line)
    shown = [x for x in result.output.splitlines() if x.strip()]
    assert result.exit_code not in (0, None) and not isinstance(result.exception, AssertionError), result.output
    assert result.exc_info is None or result.exc_info[0] is SystemExit, result.exc_info
    assert len(shown) == 1 and shown[0].startswith("Error: ") and "Traceback" not in result.output, result.output
    assert says in shown[0] and len(shown[0]) < 200, shown[0]


def test_there_are_at_least_fifty_bad_inputs():
    assert len(BAD_INPUTS) >= 50 and {t for t, _, _ in BAD_INPUTS} == {R, M}
