"""A user's own images as class folders (issue 45): generated PNG and JPEG files, mixed modes, a teacher trained and a
student distilled from them, and every bad input one line naming the file."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from tiny_images import CLASSES, make_folders

from realdata.config import ConfigError, TrainConfig
from realdata.data import DataError, load_dataset
from realdata.engine import run_training


def test_class_folders_load_with_their_classes_and_mixed_modes(tmp_path):
    root = make_folders(tmp_path / "imgs", modes=("RGB", "L", "RGBA", "P"))
    data = load_dataset(f"folder:{root}", "unused")
    assert data.classes == CLASSES and data.num_classes == 3
    assert tuple(data.train_x.shape) == (24, 3, 16, 16) and tuple(data.test_x.shape) == (12, 3, 16, 16)
    assert data.train_y.tolist() == [0] * 8 + [1] * 8 + [2] * 8 and len(data.mean) == 3
    assert (root / ".fkd_stats.json").is_file() and load_dataset(f"folder:{root}", "x").mean == data.mean  # cached
    grey = load_dataset(f"folder:{make_folders(tmp_path / 'grey', modes=('L',))}", "x")
    assert grey.in_channels == 1


def test_a_teacher_and_a_student_train_on_class_folders(tmp_path):
    root = make_folders(tmp_path / "imgs")
    base = {"dataset": str(root), "epochs": 1, "batch_size": 8, "device": "cpu", "data_dir": str(tmp_path)}
    config = TrainConfig(model="resnet8", **base)
    assert config.dataset == f"folder:{root}"
    run_training(config, tmp_path / "teacher")
    classes = json.loads((tmp_path / "teacher" / "classes.json").read_text())
    assert classes["classes"] == list(CLASSES) and classes["image_size"] == 16 and classes["skipped"] == []
    student = TrainConfig(model="resnet8", method="fkd", teachers=(str(tmp_path / "teacher" / "last.pt"),), **base)
    summary = run_training(student, tmp_path / "student")
    assert summary["last_acc"] is not None


def test_bad_class_folders_are_one_line_each(tmp_path):
    def error(root, **kw):
        with pytest.raises(DataError) as e:
            load_dataset(f"folder:{root}", "x", **kw)
        assert "\n" not in str(e.value)
        return str(e.value)

    root = make_folders(tmp_path / "a")
    (root / "train" / "cat" / "2.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    assert "2.png is not a readable image" in error(root) and "--skip-bad-images" in error(root)
    data = load_dataset(f"folder:{root}", "x", skip_bad=True)
    assert len(data.train_y) == 23 and data.skipped[0].endswith("2.png")
    (root / "train" / "cat" / "notes.txt").write_text("hello")
    assert "notes.txt is not an image" in error(root)
    root = make_folders(tmp_path / "b")
    (root / "val" / "emu").rename(root / "val" / "ostrich")
    assert "train/ and val/ hold different classes (emu, ostrich in one only)" in error(root)
    root = make_folders(tmp_path / "c")
    (root / "train" / "fox").mkdir()
    (root / "val" / "fox").mkdir()
    assert "fox is an empty class" in error(root)
    root = make_folders(tmp_path / "d")
    Image.fromarray(np.zeros((20, 12, 3), np.uint8)).save(root / "train" / "dog" / "odd.png")
    assert "2 sizes (16x16, 20x12...); give --image-size" in error(root)
    assert tuple(load_dataset(f"folder:{root}", "x", image_size=8).train_x.shape[-2:]) == (8, 8)
    assert "has no val/ folder" in error(_no_val(tmp_path / "f"))
    with pytest.raises(ConfigError, match="unknown data set 'nowhere'.*folder:PATH"):
        TrainConfig(model="resnet8", dataset="nowhere")


def _no_val(root):
    make_folders(root)
    import shutil

    shutil.rmtree(root / "val")
    return root


def test_a_users_dataset_factory_trains_and_bad_ones_are_one_line(tmp_path):
    base = {"epochs": 1, "batch_size": 8, "device": "cpu", "data_dir": str(tmp_path)}
    run_training(TrainConfig(model="resnet8", dataset="user_models:tiny_datasets", **base), tmp_path / "t")
    data = load_dataset("user_models:tiny_datasets", "x")
    assert data.num_classes == 2 and tuple(data.train_x.shape) == (16, 3, 8, 8)
    for spec, says in (("user_models:not_datasets", "returned a str; return (train, val)"),
                       ("user_models:bad_items", "train[0]: the image is int"),
                       ("user_models:nothing", "user_models has no 'nothing'")):
        with pytest.raises(DataError) as err:
            load_dataset(spec, "x")
        assert says in str(err.value) and "\n" not in str(err.value)


def test_a_folder_too_large_for_memory_is_refused_before_decoding(tmp_path, monkeypatch):
    import fkdapp.runtime

    root = make_folders(tmp_path / "imgs")
    monkeypatch.setattr(fkdapp.runtime, "available_memory", lambda: 1000)
    with pytest.raises(DataError, match=r"36 images of 16x16 need about .* GiB and this machine has 0.0 GiB free"):
        load_dataset(f"folder:{root}", "x")


def test_the_documented_folder_check_is_the_benchmarks_record():
    """docs/usage.md quotes benchmarks/results/folders_cpu.json (made by benchmarks/bench_folders.py)."""
    from pathlib import Path

    root = Path(__file__).parents[2]
    r = json.loads((root / "benchmarks" / "results" / "folders_cpu.json").read_text())
    doc = " ".join((root / "docs" / "usage.md").read_text().split())
    for x in r["runs"]:
        assert f"{x['folder']:.2f}% against {x['builtin']:.2f}% (seed {x['seed']})" in doc
        assert f"{x['streamed']:.2f}% against {x['builtin']:.2f}% (seed {x['seed']})" in doc
    assert f"the seeds differ by {r['builtin_seed_to_seed']:.2f} points" in doc
    assert f"{r['load_ratio_folder_over_builtin']:.1f}x the built-in loader's time" in doc
