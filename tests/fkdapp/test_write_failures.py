"""A full disk, a read-only folder and no permission, at every write of a run, a sweep, a report, a figure and a
checkpoint: one line naming the path and the cause, a non-zero exit, and the last good files untouched (issue 36).

Faults are injected at the write (they run anywhere); where this machine lets the test mount a small tmpfs, the same
cases run on a real full and a real read-only file system too."""

import errno
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from tiny_images import write_tiny_data
from tiny_sim import SMOKE

import fkdapp.runtime as runtime
from fkdapp.errors import UserError
from fkdapp.runtime import WriteError, atomic_save, atomic_write, atomic_write_text, check_writable, write_json


def no_space(path_part: str):
    """A tempfile.mkstemp whose files under a path containing ``path_part`` fail to write: ENOSPC."""
    real = runtime.tempfile.mkstemp

    def mkstemp(*args, **kw):
        fd, name = real(*args, **kw)
        if path_part in name:  # the file is made, then the disk is full: as a write that runs out of space
            os.close(fd)
            os.unlink(name)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return fd, name

    return mkstemp


def test_a_failed_atomic_write_names_the_path_the_cause_and_leaves_no_partial_file(tmp_path):
    target = tmp_path / "results.json"
    write_json(target, {"good": 1})

    def full(f):
        f.write(b"x" * 10)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(WriteError) as e:
        atomic_write(target, full, size=12345)
    msg = str(e.value)
    assert str(target) in msg and "No space left on device" in msg and "needed 12345 bytes" in msg
    assert "bytes free" in msg and "the previous version is intact" in msg and "\n" not in msg
    assert target.read_text() == '{\n "good": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no temporary file left


def test_a_checkpoint_on_a_full_disk_is_a_write_error_not_torch_s(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    atomic_save({"epoch": 1}, path)
    monkeypatch.setattr(runtime.tempfile, "mkstemp", no_space(".last.pt."))
    with pytest.raises(WriteError, match=r"cannot write .*last\.pt: No space left on device \(needed \d+ bytes"):
        atomic_save({"epoch": 2, "w": torch.zeros(1000)}, path)
    assert torch.load(path)["epoch"] == 1


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES, errno.ENOSPC])
def test_an_unwritable_folder_is_named_before_any_compute(tmp_path, monkeypatch, code):
    def refuse(*a, **k):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(runtime.tempfile, "mkstemp", refuse)
    with pytest.raises(WriteError, match=rf"cannot write to {tmp_path / 'out'} \(--out\): {os.strerror(code)}"):
        check_writable(tmp_path / "out", "--out")


def test_a_file_in_the_way_of_the_output_folder(tmp_path):
    (tmp_path / "out").write_text("x")
    with pytest.raises(WriteError, match="cannot write to .*out"):
        check_writable(tmp_path / "out", "--out")


def test_realdata_full_disk_mid_run_keeps_the_last_good_checkpoint_and_resumes(tmp_path, monkeypatch):
    from realdata.checkpoints import read_checkpoint
    from realdata.config import TrainConfig
    from realdata.engine import run_training
    from realdata.runs import RunDir

    data = write_tiny_data(tmp_path / "data")
    cfg = TrainConfig(model="resnet8", dataset="cifar10", epochs=3, batch_size=16, data_dir=str(data), device="cpu")
    out = tmp_path / "run"
    real = runtime.atomic_write_bytes
    calls = {"n": 0}

    def fails_in_epoch_2(path, data):
        if Path(path).name == "last.pt":
            calls["n"] += 1
            if calls["n"] == 2:
                raise WriteError(f"cannot write {path}: No space left on device (needed {len(data)} bytes, 0 bytes "
                                 "free); the previous version is intact")
        return real(path, data)

    monkeypatch.setattr(runtime, "atomic_write_bytes", fails_in_epoch_2)
    with pytest.raises(WriteError, match="No space left on device"):
        run_training(cfg, out)
    assert read_checkpoint(out / "last.pt")["epoch"] == 1  # the last good one, untouched
    monkeypatch.setattr(runtime, "atomic_write_bytes", real)
    run_training(cfg, out, resume=True)  # space freed: the run continues from the last good checkpoint
    assert read_checkpoint(out / "last.pt")["epoch"] == 3
    assert [r["epoch"] for r in RunDir(out).read_metrics()] == [1, 2, 3]


def test_the_clis_say_one_line_for_a_read_only_output(tmp_path, monkeypatch):
    from multiview.cli import main as multiview
    from realdata.cli import main as realdata

    data = write_tiny_data(tmp_path / "data")
    ro = tmp_path / "ro"
    real = runtime.tempfile.mkstemp

    def read_only(*a, dir=None, **k):  # noqa: A002 - mkstemp's own name
        if dir is not None and str(ro) in str(dir):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        return real(*a, dir=dir, **k)

    monkeypatch.setattr(runtime.tempfile, "mkstemp", read_only)
    runs = [
        (realdata, ["train", "--model", "resnet8", "--dataset", "cifar10", "--data-dir", str(data), "--epochs", "1",
                    "--batch-size", "16", "--device", "cpu", "--out", str(ro / "run")], "Read-only file system"),
        (multiview, ["sweep", "--teachers", "0-1", "--methods", "fkd", "--seeds", "1", "--set", "k=4", "--set", "d=32",
                     "--out", str(ro / "sweep")], "Read-only file system"),
        (multiview, ["train", "--models", "2", "--set", "k=4", "--set", "d=32", "--out", str(ro / "train")],
         "Read-only file system"),
    ]
    for command, args, says in runs:
        r = CliRunner().invoke(command, args)
        assert r.exit_code == 1, r.output
        line = r.output.strip().splitlines()[-1]
        assert line.startswith("Error: cannot write to ") and says in line and str(ro) in line, r.output
        assert "Traceback" not in r.output


def test_a_figure_that_cannot_be_written_is_one_line(tmp_path, monkeypatch):
    from multiview.cli import main as multiview
    from multiview.config import Config
    from multiview.experiment import distill_experiment

    cfg = Config(**{**SMOKE, "n_test": 100, "m": 4, "max_steps": 60, "sigma_p": 0.0875})
    distill_experiment(cfg, [0], [0, 1], ["fkd"], torch.device("cpu"), tmp_path / "sw")
    real = runtime.tempfile.mkstemp

    def full(*a, dir=None, **k):  # noqa: A002
        if dir is not None and "figs" in str(dir):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(*a, dir=dir, **k)

    monkeypatch.setattr(runtime.tempfile, "mkstemp", full)
    r = CliRunner().invoke(multiview, ["plot", str(tmp_path / "sw" / "results.json"), "-o", str(tmp_path / "figs" /
                                                                                                  "f.png")])
    assert r.exit_code == 1 and "No space left on device (needed" in r.output and "Traceback" not in r.output


def _mount(kind: str, where: Path) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    opts = "size=150k" if kind == "full" else "ro,size=64k"
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)], capture_output=True,
                        timeout=30).returncode
    return ok == 0


@pytest.fixture
def mounts(tmp_path):
    base = Path("/tmp") / f"fkd-mount-{uuid.uuid4().hex[:8]}"
    full, ro = base / "full", base / "ro"
    if os.geteuid() != 0 or not (_mount("full", full) and _mount("ro", ro)):
        pytest.skip("this machine does not let the test mount a tmpfs")
    yield full, ro
    for m in (full, ro):
        subprocess.run(["umount", str(m)], capture_output=True, timeout=30)


@pytest.mark.slow
def test_a_real_full_and_a_real_read_only_file_system(tmp_path, mounts):
    full, ro = mounts
    data = write_tiny_data(tmp_path / "data")
    exe = Path(sys.executable).parent
    train = [str(exe / "realdata"), "train", "--model", "resnet8", "--dataset", "cifar10", "--data-dir", str(data),
             "--epochs", "2", "--batch-size", "16", "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([*train, "--out", str(full / "run")], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "No space left on device (needed" in r.stderr and "bytes free" in r.stderr, r.stderr
    assert not [p for p in (full / "run").iterdir() if p.name.endswith(".tmp")]  # no partial file left
    r = subprocess.run([*train, "--out", str(ro / "run")], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 1 and "Read-only file system" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([str(exe / "multiview"), "sweep", "--teachers", "0-1", "--methods", "fkd", "--seeds", "1",
                        "--set", "k=4", "--set", "d=32", "--out", str(ro / "sw")], capture_output=True, text=True,
                       env=env, timeout=600)
    assert r.returncode == 1 and "cannot write to" in r.stderr and "Read-only file system" in r.stderr


def test_write_errors_are_user_errors_and_text_writes_share_the_path(tmp_path, monkeypatch):
    assert issubclass(WriteError, UserError)  # the CLIs print them as one "Error: ..." line, exit status 1
    monkeypatch.setattr(runtime.tempfile, "mkstemp", no_space("report"))
    with pytest.raises(WriteError, match="report.md: No space left on device"):
        atomic_write_text(tmp_path / "report.md", "| a |\n")
