"""realdata.distributed: the global-batch losses and their gradients under DDP (2 gloo processes on the CPU) equal
the single-process ones on the concatenated batch, and ``torchrun -m realdata distill`` trains and resumes."""

from __future__ import annotations

import gc
import json
import os
import shutil
import subprocess
import sys
import traceback
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from click.testing import CliRunner
from interrupt import train_until_killed

from fkd import fkd_loss, pkt_loss, rkd_loss, sp_loss
from fkdapp.runtime import atomic_save
from realdata import distributed
from realdata.checkpoints import model_checkpoint, read_checkpoint
from realdata.cli import main
from realdata.config import TrainConfig
from realdata.data import ImageData
from realdata.methods import METHODS
from realdata.models import build

WORLD = 2
TORCHRUN = shutil.which("torchrun", path=os.path.dirname(sys.executable))


def assert_close(got: torch.Tensor, want: torch.Tensor, what: str) -> None:
    err = (got - want).abs().max().item()
    assert err <= 1e-6 * max(1.0, want.abs().max().item()), f"{what}: max error {err:.3g}"


def _check_losses(rank: int) -> None:
    """Every relational loss of fkd, on a replicated feature matrix H of which rank r uses rows r*b..(r+1)*b-1."""
    torch.manual_seed(0)
    b = 4
    cases = {  # name: (loss, student width, teacher width)
        "fkd": (lambda s, t: fkd_loss(s, [t]), 5, 7),
        "fkd (feature-space form, B > D_s + D_t)": (lambda s, t: fkd_loss(s, [t]), 2, 3),
        "fkd raw kernel": (lambda s, t: fkd_loss(s, [t], normalize=False), 5, 7),
        "sp": (sp_loss, 5, 7),
        "pkt": (pkt_loss, 5, 7),
        "rkd": (rkd_loss, 5, 7),
    }
    mine = slice(rank * b, (rank + 1) * b)
    for name, (loss, d_s, d_t) in cases.items():
        h_s = torch.randn(WORLD * b, d_s, dtype=torch.float64)
        h_t = torch.randn(WORLD * b, d_t, dtype=torch.float64)
        single = h_s.clone().requires_grad_()
        want = loss(single, h_t)
        want.backward()
        for scaled in (True, False):
            h = h_s.clone().requires_grad_()
            s = distributed.global_batch(h[mine]) if scaled else distributed.gather_with_grad(h[mine])
            got = loss(s, distributed.global_batch(h_t[mine]))
            assert_close(got, want, f"{name}: loss on rank {rank}")
            got.backward()
            grad = h.grad.clone()
            others = torch.ones(WORLD * b, dtype=torch.bool)
            others[mine] = False
            assert grad[mine].abs().max() > 0 and grad[others].abs().max() == 0  # into its own slice only
            dist.all_reduce(grad)
            if scaled:  # DDP averages over ranks: the scaled gather's gradient is then the single-process one
                grad /= WORLD
            # unscaled: the ranks' gradients are the parts of the full gradient, which sum to it
            assert_close(grad, single.grad, f"{name}: gradient (scaled={scaled}) on rank {rank}")


DISTILLERS = ("fkd", "sp", "pkt", "rkd", "kd", "crd", "cc")
RELATIONAL = ("fkd", "sp", "pkt", "rkd", "crd", "cc")


def _distiller_case(method: str):
    """The same student, teacher and batch for every process: float64, and eval mode (BatchNorm with its running
    statistics is per sample; in training mode it would see the shard). The batch is the whole training set of
    CRD's memory."""
    torch.manual_seed(0)
    distiller = METHODS[method](build("resnet8", num_classes=10), [build("resnet8", num_classes=10)])
    y = torch.arange(8) % 10
    if hasattr(distiller, "build_heads"):
        distiller.build_heads(ImageData("cifar10", torch.zeros(8, 3, 16, 16, dtype=torch.uint8), y,
                                        torch.zeros(2, 3, 16, 16, dtype=torch.uint8), y[:2], 10, (0.5,) * 3,
                                        (0.5,) * 3))
    x = torch.randn(8, 3, 16, 16, dtype=torch.float64)
    return distiller.double().eval(), x, y


def _single_process_distillers() -> dict[str, tuple[dict[str, torch.Tensor], list[torch.Tensor]]]:
    """Each method's named losses and student gradients on the whole batch, in one process (no process group)."""
    assert not dist.is_initialized()
    out = {}
    for method in DISTILLERS:
        distiller, x, y = _distiller_case(method)
        _, losses = distiller(x, y, indices=torch.arange(8))
        torch.stack(list(losses.values())).sum().backward()
        out[method] = ({k: v.detach() for k, v in losses.items()}, [p.grad for p in distiller.parameters()
                                                                   if p.requires_grad])
    return out


def _check_distillers(rank: int, single: dict) -> None:
    """Each method's distiller under real DDP on this rank's shard vs the same distiller in one process."""
    for method in DISTILLERS:
        distiller, x, y = _distiller_case(method)
        b = x.shape[0] // WORLD
        mine = slice(rank * b, (rank + 1) * b)
        ddp = torch.nn.parallel.DistributedDataParallel(distiller)  # kept alive: its reducer averages in backward
        _, got = ddp(x[mine], y[mine], None, torch.arange(8))
        torch.stack(list(got.values())).sum().backward()
        want, grads = single[method]
        assert set(got) == set(want)
        for name, value in got.items():
            mean = distributed.all_reduce_sum(value.detach()) / WORLD  # per-sample terms: the mean of the shards
            assert_close(mean, want[name], f"{method}: {name} loss (mean over ranks) on rank {rank}")
            if name in RELATIONAL:  # relational terms: the global value on every rank
                assert_close(value.detach(), want[name], f"{method}: {name} loss on rank {rank}")
        trained = [(n, p) for n, p in distiller.named_parameters() if p.requires_grad]  # the student and CRD's heads
        for (pname, p), g in zip(trained, grads, strict=True):
            assert_close(p.grad, g, f"{method}: gradient of {pname} on rank {rank}")


def _check_average_grads(rank: int) -> None:
    """Gradients of several shapes become their mean over ranks; a parameter without one is left without."""
    params = [torch.nn.Parameter(torch.zeros(shape)) for shape in ((3,), (2, 4), (1, 1, 2))]
    for i, p in enumerate(params[:2]):
        p.grad = torch.arange(p.numel(), dtype=torch.float32).view_as(p) * (rank + 1) + i
    distributed.average_grads(params)
    mean_factor = sum(r + 1 for r in range(WORLD)) / WORLD
    for i, p in enumerate(params[:2]):
        assert_close(p.grad, torch.arange(p.numel(), dtype=torch.float32).view_as(p) * mean_factor + i,
                     f"averaged gradient {i} on rank {rank}")
    assert params[2].grad is None


def _worker(rank: int, folder: str) -> None:
    torch.set_num_threads(1)
    single = _single_process_distillers()  # before joining the group: then the gather is the identity
    dist.init_process_group("gloo", init_method=f"file://{folder}/store", rank=rank, world_size=WORLD)
    try:
        assert distributed.world_size() == WORLD and distributed.rank() == rank
        assert distributed.is_main() == (rank == 0)
        _check_losses(rank)
        _check_distillers(rank, single)
        _check_average_grads(rank)
    except Exception:  # the first rank to fail leaves its reason (the other one then fails on a lost connection)
        Path(folder, f"rank{rank}.err").write_text(traceback.format_exc())
        raise
    else:
        dist.barrier()  # both ranks done with every collective before the group goes (else gloo may abort at exit)
    finally:
        gc.collect()  # the DDP reducers of the checks go before their process group
        dist.destroy_process_group()


def test_global_batch_losses_and_gradients_equal_single_process(tmp_path):
    try:
        mp.spawn(_worker, args=(str(tmp_path),), nprocs=WORLD, join=True)
    except mp.ProcessRaisedException:
        errors = sorted(tmp_path.glob("rank*.err"), key=lambda p: "AssertionError" not in p.read_text())
        pytest.fail("\n".join(p.read_text() for p in errors))


def test_one_process_is_the_identity():
    x = torch.randn(4, 3, requires_grad=True)
    assert distributed.world_size() == 1 and distributed.is_main()
    assert distributed.global_batch(x) is x and distributed.gather_with_grad(x) is x


# ---------------------------------------------------------------------------------------------- torchrun


def torchrun(*args) -> subprocess.CompletedProcess:
    """``torchrun --standalone`` (a free port of its own) with 2 CPU processes."""
    cmd = [TORCHRUN, "--standalone", "--nproc-per-node", str(WORLD), "-m", "realdata", *map(str, args)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


def teacher_file(path: Path) -> Path:
    torch.manual_seed(1)
    atomic_save(model_checkpoint(build("resnet8", 10), "resnet8", 10, 3, 32, "cifar10"), path)
    return path


@pytest.mark.skipif(TORCHRUN is None, reason="no torchrun beside this python")
def test_torchrun_distill_then_evaluate(tmp_path, data_dir):
    teacher = teacher_file(tmp_path / "teacher.pt")
    out = tmp_path / "run"
    proc = torchrun("distill", "--teacher", teacher, "--student", "resnet8", "--method", "fkd", "--dataset", "cifar10",
                    "--data-dir", data_dir, "--epochs", 1, "--batch-size", 16, "--device", "cpu", "--out", out,
                    "--no-progress")
    assert proc.stdout.count("run folder") == 1, proc.stdout  # rank 0 alone prints
    assert proc.stderr.count("epoch 1/1 loss") == 1, proc.stderr
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1] and set(rows[0]["losses"]) == {"ce", "fkd", "reg"}
    assert json.loads((out / "environment.json").read_text())["world_size"] == WORLD
    r = CliRunner().invoke(main, ["evaluate", str(out / "last.pt"), "--data-dir", str(data_dir), "--device", "cpu"])
    assert r.exit_code == 0 and f"resnet8 on cifar10 test: {rows[0]['test_acc']:.2f}% top-1" in r.output, r.output


@pytest.mark.skipif(TORCHRUN is None, reason="no torchrun beside this python")
def test_torchrun_resumes_an_interrupted_run(tmp_path, data_dir):
    teacher = teacher_file(tmp_path / "teacher.pt")
    out = tmp_path / "run"
    config = TrainConfig(model="resnet8", dataset="cifar10", method="kd", teachers=(str(teacher),), epochs=2,
                         batch_size=16, data_dir=str(data_dir), device="cpu")
    train_until_killed(config, out)  # one process, killed after epoch 1
    torchrun("distill", "--teacher", teacher, "--student", "resnet8", "--method", "kd", "--dataset", "cifar10",
             "--data-dir", data_dir, "--epochs", 2, "--batch-size", 16, "--device", "cpu", "--out", out,
             "--no-progress", "--resume")
    assert [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    assert read_checkpoint(out / "last.pt")["epoch"] == 2
    env = json.loads((out / "environment.json").read_text())
    assert env["resumed"][0]["after_epoch"] == 1 and env["resumed"][0]["world_size"] == WORLD


@pytest.mark.skipif(TORCHRUN is None, reason="no torchrun beside this python")
def test_torchrun_runs_an_initialisation_stage(tmp_path, data_dir):
    """FSP's init stage trains outside DDP (its gradients averaged by hand), then the main stage under DDP."""
    teacher = teacher_file(tmp_path / "teacher.pt")
    out = tmp_path / "run"
    torchrun("distill", "--teacher", teacher, "--student", "resnet8", "--method", "fsp", "--param", "init_epochs=1",
             "--dataset", "cifar10", "--data-dir", data_dir, "--epochs", 1, "--batch-size", 16, "--device", "cpu",
             "--out", out, "--no-progress")
    init = [json.loads(line) for line in (out / "init.jsonl").read_text().splitlines()]
    assert [r["init_epoch"] for r in init] == [1] and init[0]["init_loss"] > 0
    assert [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [1]


def _children(pid: int) -> list[int]:
    """The process ids whose parent is ``pid`` (from /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


@pytest.mark.skipif(TORCHRUN is None or not Path("/proc/self/stat").is_file(), reason="needs torchrun and /proc")
def test_torchrun_restarts_a_killed_worker_and_the_run_ends_as_if_never_killed(tmp_path, data_dir):
    """One of two workers is killed (SIGKILL) after the first epoch; torchrun --max-restarts restarts both, they
    resume from last.pt by themselves, and the run ends with the weights of a run never killed."""
    import signal
    import time

    teacher = teacher_file(tmp_path / "teacher.pt")
    args = ["distill", "--teacher", teacher, "--student", "resnet8", "--method", "kd", "--dataset", "cifar10",
            "--data-dir", data_dir, "--epochs", 30, "--batch-size", 8, "--device", "cpu", "--no-progress"]
    torchrun(*args, "--out", tmp_path / "whole")
    out = tmp_path / "killed"
    cmd = [TORCHRUN, "--standalone", "--nproc-per-node", str(WORLD), "--max-restarts", "3", "-m", "realdata",
           *map(str, args), "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 120
    while time.time() < deadline and not ((out / "metrics.jsonl").is_file() and (out / "metrics.jsonl").read_text()):
        time.sleep(0.05)
    workers = _children(proc.pid)
    assert len(workers) == WORLD, workers
    os.kill(workers[-1], signal.SIGKILL)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    env = json.loads((out / "environment.json").read_text())
    assert env["resumed"] and env["resumed"][0]["world_size"] == WORLD  # the restarted workers resumed
    a, b = read_checkpoint(tmp_path / "whole" / "last.pt"), read_checkpoint(out / "last.pt")
    assert a["epoch"] == b["epoch"] == 30 and all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


@pytest.mark.skipif(TORCHRUN is None, reason="no torchrun beside this python")
def test_torchrun_streams_class_folders_each_rank_decoding_its_shard(tmp_path, monkeypatch):
    """The streaming path under torchrun: each rank's loader decodes its shard of every global batch; a teacher
    trains and a student distils (KD), and the run is evaluated from its folder."""
    from tiny_images import make_folders

    from realdata.data import stream

    root = make_folders(tmp_path / "imgs", n_train=16, n_val=4)
    common = ["--dataset", f"folder:{root}", "--stream", "--image-size", 16, "--data-workers", 1, "--epochs", 2,
              "--batch-size", 8, "--device", "cpu", "--no-progress"]
    torchrun("train", "--model", "resnet8", *common, "--out", tmp_path / "t")
    torchrun("distill", "--teacher", tmp_path / "t" / "last.pt", "--student", "resnet8", "--method", "kd", *common,
             "--out", tmp_path / "s")
    rows = [json.loads(line) for line in (tmp_path / "s" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2] and json.loads((tmp_path / "s" / "environment.json").read_text())[
        "world_size"] == WORLD
    shards = []  # what each rank's loader is asked for: disjoint halves of every global batch
    monkeypatch.setattr(stream, "_loader", lambda ds, keys, *a: shards.append(keys) or iter(()))
    order = torch.randperm(16)
    for rank in range(WORLD):
        list(stream.train_batches(stream.ImageFiles([f"{i}.png" for i in range(16)], 16), order, 5, 8, 1,
                                  shard=(rank, WORLD)))
    first = [sorted(i for i, _ in batch) for batch in (shards[0][0], shards[1][0])]
    assert len(first[0]) == len(first[1]) == 4 and sorted(first[0] + first[1]) == sorted(order[:8].tolist())
