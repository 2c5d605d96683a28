"""ImageNet's standard pairs (issue 45): the models match their reference definitions' state-dict entries (pinned
as data from torchvision's and mdistiller's sources), published weights in torchvision's bare format load strictly,
and every ImageNet config trains at tiny size: a teacher from the student-alone recipe, then its students."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tiny_images import make_folders

from realdata.checkpoints import CheckpointError, load_model
from realdata.config import TrainConfig
from realdata.engine import run_training
from realdata.methods.plan import resolve
from realdata.models import build

ROOT = Path(__file__).parents[2]
PINNED = json.loads((ROOT / "tests" / "data" / "imagenet_entries.json").read_text())
CONFIGS = ROOT / "configs" / "realdata" / "imagenet"


@pytest.mark.parametrize("name", sorted(PINNED["entries"]))
def test_the_models_have_their_reference_entries_in_order(name):
    got = {k: list(v.shape) for k, v in build(name, num_classes=PINNED["num_classes"]).state_dict().items()}
    assert list(got.items()) == list(PINNED["entries"][name].items())


def test_torchvisions_bare_state_dict_loads_strictly_when_named(tmp_path):
    torch.manual_seed(0)
    reference = build("resnet18", num_classes=1000).eval()
    torch.save(reference.state_dict(), tmp_path / "resnet18-5c106cde.pth")  # the published files' format
    loaded = load_model(tmp_path / "resnet18-5c106cde.pth", "resnet18")
    assert (loaded.num_classes, loaded.in_channels, loaded.arch) == (1000, 3, "resnet18")
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded.model.eval()(x), reference(x))
    with pytest.raises(CheckpointError, match="does not record its architecture"):
        load_model(tmp_path / "resnet18-5c106cde.pth")
    with pytest.raises(CheckpointError, match="missing entries"):
        load_model(tmp_path / "resnet18-5c106cde.pth", "resnet34")


def test_every_imagenet_config_is_the_recipe_and_resolves():
    files = sorted(CONFIGS.glob("*/*.json"))
    assert {f.parent.name for f in files} == {"resnet34-resnet18", "resnet50-MobileNetV1"} and len(files) == 12
    for f in files:
        fields = json.loads(f.read_text())
        teachers = tuple(f"{a}.pth" for a in fields.get("teacher_archs", ()))
        config = resolve(TrainConfig.from_dict({**fields, "teachers": teachers})).config
        assert (config.epochs, config.milestones, config.weight_decay, config.image_size) == (100, (30, 60, 90), 1e-4,
                                                                                              224)
        assert config.stream and config.lr / config.batch_size == pytest.approx(0.1 / 256), f


def tiny(path: Path, tmp_path: Path, **changes) -> TrainConfig:
    """An ImageNet config at tiny size: 1 epoch on generated class folders at 72 x 72 (the RandomResizedCrop path)."""
    fields = {**json.loads(path.read_text()), "dataset": f"folder:{tmp_path / 'imgs'}", "epochs": 1, "milestones": [],
              "batch_size": 8, "lr": 0.01, "image_size": 72, "data_workers": 0, "eval_batch_size": 16,
              "device": "cpu", "data_dir": str(tmp_path)}
    return TrainConfig.from_dict({**fields, **changes})


@pytest.mark.slow
def test_the_imagenet_configs_train_a_teacher_and_distil_students_at_tiny_size(tmp_path):
    make_folders(tmp_path / "imgs", n_train=8, n_val=4, size=80)
    r34 = CONFIGS / "resnet34-resnet18"
    run_training(tiny(r34 / "ce.json", tmp_path, model="resnet34"), tmp_path / "r34")
    bare = tmp_path / "resnet34.pth"  # the teacher in torchvision's format, as the published weights come
    torch.save(torch.load(tmp_path / "r34" / "last.pt", weights_only=True)["model"], bare)
    for method in ("kd", "dkd", "at", "crd", "fkd"):
        summary = run_training(tiny(r34 / f"{method}.json", tmp_path, teachers=[str(bare)]), tmp_path / method)
        assert summary["last_acc"] is not None, method
    run_training(tiny(CONFIGS / "resnet50-MobileNetV1" / "ce.json", tmp_path, model="resnet50"), tmp_path / "r50")
    summary = run_training(tiny(CONFIGS / "resnet50-MobileNetV1" / "kd.json", tmp_path,
                                teachers=[str(tmp_path / "r50" / "last.pt")]), tmp_path / "mv1")
    assert summary["last_acc"] is not None


def test_the_published_imagenet_numbers_are_data_with_their_sources():
    published = json.loads((CONFIGS / "published.json").read_text())
    cells = published["cells"]
    assert {c["pair"] for c in cells} == {"resnet34->resnet18", "resnet50->MobileNetV1"}
    for c in cells:
        assert isinstance(c["top1"], float) and 50 < c["top1"] < 90 and "@" in c["source"], c
    have = {(c["pair"], c["method"]) for c in cells}
    for pair in ("resnet34->resnet18", "resnet50->MobileNetV1"):  # every method with a config here has its number
        assert {(pair, m) for m in ("teacher", "student", "kd", "crd", "dkd")} <= have, pair
