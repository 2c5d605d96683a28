"""The benchmark's standard pairs as data: every (pair, method) config builds a valid run, the suites name known
pairs and methods, and every published number names its source and epoch (issue 35)."""

import json
from pathlib import Path

import pytest

from realdata.config import TrainConfig
from realdata.methods.plan import resolve

ROOT = Path(__file__).resolve().parents[2] / "configs" / "realdata" / "cifar100"
SUITES = json.loads((ROOT / "suites.json").read_text())


@pytest.mark.parametrize("path", sorted(ROOT.glob("*/*.json")), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_pair_config_is_a_valid_run(path):
    fields = json.loads(path.read_text())
    teacher, student = path.parent.name.split("-", 1)
    assert fields["teacher_archs"] == [teacher] and fields["model"] == student and fields["dataset"] == "cifar100"
    config = TrainConfig(**{**fields, "teachers": ("teacher.pth",), "teacher_archs": tuple(fields["teacher_archs"])})
    assert resolve(config).method.NAME == config.method
    small = ("MobileNetV2", "ShuffleV1", "ShuffleV2")
    recipe = 0.01 if student in small else 0.05  # the recipe's learning rate per student; MLKD's own for MLKD
    mlkd = recipe if student in small or path.parent.name == "ResNet50-vgg8" else 0.025
    assert config.lr == (mlkd if config.method == "mlkd" else recipe)
    assert config.strong_view == (config.method == "mlkd")
    assert path.stem in SUITES["methods"] and SUITES["methods"][path.stem]["method"] == config.method


def test_the_per_pair_settings_of_the_published_configs():
    def params(pair, key):
        return json.loads((ROOT / pair / f"{key}.json").read_text()).get("params", {})

    assert params("vgg13-vgg8", "dkd") == {"beta": 6.0} and params("resnet56-resnet20", "dkd") == {"beta": 2.0}
    assert params("resnet32x4-resnet8x4", "dkd") == {}  # mdistiller's default beta 8
    assert params("resnet32x4-ShuffleV2", "reviewkd") == {"reviewkd_weight": 8.0}
    assert json.loads((ROOT / "vgg13-vgg8" / "kd-dot.json").read_text())["optimizer"] == "dot"
    assert not (ROOT / "ResNet50-vgg8" / "reviewkd.json").exists()  # ResNet50 gives no pre-activation maps here
    assert (ROOT / "wrn_40_2-wrn_16_2" / "ofd.json").exists()  # OFD: pre-activation maps on both sides
    assert not any((ROOT / p / "ofd.json").exists() for p in ("vgg13-MobileNetV2", "resnet32x4-ShuffleV1"))
    assert not (ROOT / "resnet32x4-ShuffleV1" / "fsp.json").exists()  # FSP needs equal stage channels
    # logit standardisation: the LS logs' base temperature and weight; DKD's alpha W and beta BETA x W
    assert params("vgg13-vgg8", "dkd-ls") == {"logit_stand": 1.0, "temperature": 2.0, "alpha": 15.0, "beta": 30.0}
    assert params("resnet32x4-resnet8x4", "dkd-ls")["beta"] == 72.0  # no BETA in the log: the pair's 8
    assert params("vgg13-vgg8", "mlkd-ls") == {"logit_stand": 1.0, "temperature": 2.0, "kd_weight": 6.0}


@pytest.mark.parametrize("key", sorted(SUITES["methods"]))
def test_every_column_runs_on_a_pair_of_the_users(key):
    """A pair no suite lists takes the column's own settings, and they make a valid run."""
    from studies.reproduce import pair_config

    fields = pair_config(key, "resnet32", "resnet8")
    teachers = {} if fields["method"] == "ce" else {"teachers": ("t.pth",), "teacher_archs": ("resnet32",)}
    config = TrainConfig(model="resnet8", dataset="cifar100", **teachers, **fields)
    assert config.method == SUITES["methods"][key]["method"]


def test_suites_and_published_numbers():
    for name in ("fkd", "crd"):
        suite = SUITES[name]
        assert set(suite["methods"]) <= set(SUITES["methods"])
        for pair in suite["pairs"]:
            assert (ROOT / pair.replace("->", "-")).is_dir(), pair
    published = json.loads((ROOT / "published.json").read_text())
    cells = published["cells"]
    for c in cells + published["other_cells"]:  # every number says where it is from and which epoch it is
        assert c["epoch"] in ("last", "best", "not stated") and c["source"] and 50 < c["top1"] < 90, c
        assert c["pair"] in SUITES["crd"]["pairs"] + SUITES["fkd"]["pairs"], c
    assert {c["method"] for c in cells} <= set(SUITES["methods"]) | {"teacher"}
    assert len({(c["pair"], c["method"], c["source"]) for c in cells}) == len(cells)
    fkd = {(c["pair"], c["method"]): c["top1"] for c in cells if c["source"].startswith("He & Ozay")}
    assert fkd[("resnet32x4->resnet8x4", "fkd")] == 75.57
