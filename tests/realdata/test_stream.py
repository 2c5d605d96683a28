"""The streaming path (issue 45): class folders read image by image by DataLoader workers. A batch is a function of
the seed, the epoch and the order only: the same with 0 or 2 workers, and a run stopped mid-epoch resumes to the
weights of a run never stopped; a teacher trains and every kind of method distils on it; bad files are one line."""

from __future__ import annotations

import random
import signal

import numpy as np
import pytest
import torch
from interrupt import sigint_after_steps
from PIL import Image
from tiny_images import make_folders

from realdata.checkpoints import read_checkpoint
from realdata.config import ConfigError, TrainConfig
from realdata.data import DataError, load_dataset
from realdata.data.stream import ImageFiles, _resized_crop_box, eval_view, train_view
from realdata.engine import Interrupted, run_training
from realdata.evaluate import evaluate_checkpoint
from realdata.methods.plan import resolve


def base(tmp_path, root, size, **kw):
    return dict(dataset=f"folder:{root}", epochs=2, batch_size=8, device="cpu", data_dir=str(tmp_path), stream=True,
                image_size=size, **kw)


def weights(folder):
    return read_checkpoint(folder / "last.pt")["model"]


def same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


def test_views_are_functions_of_their_seed_and_keep_the_reference_geometry(tmp_path):
    big = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (90, 120, 3), np.uint8)).save(big)
    a, b = train_view(str(big), 64, random.Random("7:3")), train_view(str(big), 64, random.Random("7:3"))
    assert a.shape == (3, 64, 64) and a.dtype == torch.uint8 and torch.equal(a, b)
    assert not torch.equal(a, train_view(str(big), 64, random.Random("8:3")))
    assert eval_view(str(big), 64).shape == (3, 64, 64)
    rng = random.Random(0)
    for _ in range(200):  # RandomResizedCrop's box: inside the image, area 8-100%, ratio 3/4-4/3 (or the fallback)
        left, top, w, h = _resized_crop_box(120, 90, rng)
        assert 0 <= left and left + w <= 120 and 0 <= top and top + h <= 90 and w * h <= 120 * 90


def test_files_stand_in_for_a_tensor_through_subsets_and_splits(tmp_path):
    root = make_folders(tmp_path / "imgs")
    data = load_dataset(f"folder:{root}", "x", image_size=16, stream=True)
    assert data.streamed and isinstance(data.train_x, ImageFiles) and tuple(data.train_x.shape) == (24, 3, 16, 16)
    assert data.classes == ("cat", "dog", "emu") and len(data.mean) == 3
    from realdata.data import split_pool

    split, _ = split_pool(data, train_size=12, val_size=6)
    assert len(split.train_x) == 12 and len(split.val_x) == 6 and split.val_y.tolist().count(0) == 2
    assert not set(split.train_x.index) & set(split.val_x.index)


@pytest.mark.slow
def test_a_teacher_and_every_kind_of_method_train_streamed_and_workers_change_nothing(tmp_path):
    root = make_folders(tmp_path / "imgs", n_train=16, n_val=6, size=20)
    teacher = TrainConfig(model="resnet8", data_workers=0, **base(tmp_path, root, 80))
    run_training(teacher, tmp_path / "t0")
    run_training(teacher.with_updates(data_workers=2), tmp_path / "t2")
    assert same(weights(tmp_path / "t0"), weights(tmp_path / "t2"))  # the loader's workers decide nothing
    t = (str(tmp_path / "t0" / "last.pt"),)
    for method in ("kd", "fkd", "mlkd", "crd", "at"):  # logits, kernels, two views, a memory, stage maps
        summary = run_training(TrainConfig(model="resnet8", method=method, teachers=t, data_workers=1,
                                           **base(tmp_path, root, 80)), tmp_path / method)
        assert summary["last_acc"] is not None, method
    result = evaluate_checkpoint(tmp_path / "t0" / "last.pt", device="cpu")
    assert result["test_acc"] == pytest.approx(read_checkpoint(tmp_path / "t0" / "last.pt")["metrics_row"]["test_acc"])


def test_a_stop_mid_epoch_resumes_to_the_weights_of_a_run_never_stopped(tmp_path, monkeypatch):
    root = make_folders(tmp_path / "imgs", n_train=16, n_val=4)
    config = TrainConfig(model="resnet8", data_workers=2, **{**base(tmp_path, root, 16), "epochs": 3})
    run_training(config, tmp_path / "whole")
    sigint_after_steps(monkeypatch, 8)
    with pytest.raises(Interrupted, match="epoch 2, step 2/6"):
        run_training(config, tmp_path / "cut")
    monkeypatch.undo()
    assert read_checkpoint(tmp_path / "cut" / "last.pt")["partial"]["epoch_seed"] is not None
    run_training(config.with_updates(data_workers=0), tmp_path / "cut", resume=True)
    assert same(weights(tmp_path / "whole"), weights(tmp_path / "cut"))


def test_bad_streamed_input_is_one_line(tmp_path):
    root = make_folders(tmp_path / "imgs")
    with pytest.raises(DataError, match="needs --image-size"):
        load_dataset(f"folder:{root}", "x", stream=True)
    with pytest.raises(ConfigError, match="--stream reads a folder of class folders"):
        TrainConfig(model="resnet8", dataset="cifar10", stream=True)
    (root / "train" / "dog" / "2.png").write_bytes(b"\x89PNG\r\n\x1a\n cut short")
    config = TrainConfig(model="resnet8", data_workers=1, **base(tmp_path, root, 16))
    with pytest.raises(DataError) as err:
        run_training(resolve(config).config, tmp_path / "run")
    assert "2.png is not a readable image" in str(err.value) and "\n" not in str(err.value)
    data = load_dataset(f"folder:{root}", "x", image_size=16, stream=True, skip_bad=True)
    assert len(data.train_x) == 23 and data.skipped[0].endswith("2.png")


def test_the_documented_feeding_ratios_are_the_benchmarks_record():
    """docs/usage.md quotes benchmarks/results/feeding_cpu.json (made by benchmarks/bench_feeding.py)."""
    import json
    from pathlib import Path

    root = Path(__file__).parents[2]
    r = json.loads((root / "benchmarks" / "results" / "feeding_cpu.json").read_text())
    doc = " ".join((root / "docs" / "usage.md").read_text().split())
    for path in ("resident", "streamed"):
        for what in ("train", "eval"):
            v = [r["rows"][m][f"{path}_over_baseline_{what}"] for m in ("ce", "kd", "fkd")]
            assert f"{min(v):.2f}-{max(v):.2f}x" in doc, (path, what)
    assert f"{r['device']} CPU, one compute thread and {r['workers']} loader worker" in doc


@pytest.mark.slow
def test_ctrl_c_to_the_whole_process_group_stops_a_streamed_run_after_its_step(tmp_path):
    """A terminal's Ctrl-C reaches the loader's workers too: they leave it to the run, which stops after the step
    (exit 130, "Stopped: ...") and resumes."""
    import os
    import subprocess
    import sys
    import time

    root = make_folders(tmp_path / "imgs", n_train=40, n_val=4)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "realdata", "train", "--model", "resnet8", "--dataset", f"folder:{root}", "--stream",
           "--image-size", "16", "--data-workers", "1", "--epochs", "40", "--batch-size", "8", "--device", "cpu",
           "--data-dir", str(tmp_path), "--no-progress", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 120
    while time.time() < deadline and not ((out / "metrics.jsonl").is_file() and (out / "metrics.jsonl").read_text()):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal sends it: to every process of the group
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1].startswith("Stopped: ")


class _DiesInWorker(torch.utils.data.Dataset):
    def __getitem__(self, batch):
        import os

        os._exit(9)  # as a worker killed for memory ends


def test_a_loader_worker_that_dies_is_one_line():
    from realdata.data.stream import _loader

    with pytest.raises(DataError) as err:
        list(_loader(_DiesInWorker(), [[0], [1]], workers=1, pin=False))
    assert "a data loader worker died" in str(err.value) and "\n" not in str(err.value)
