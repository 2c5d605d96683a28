"""Files a user gives us are data, never code; damaged run files, odd numbers, NaN weights and another run's
checkpoint: one line each, nothing written before lost or altered (issue 44's cases)."""

from __future__ import annotations

import json

import pytest
import torch
from tiny_sim import SMOKE

from fkdapp.errors import ConfigError, UserError
from fkdapp.jsonfile import read_json
from fkdapp.runtime import atomic_save
from fkdapp.settings import parse_overrides
from realdata.checkpoints import CheckpointError, RunError, load_model, model_checkpoint, read_checkpoint
from realdata.config import TrainConfig
from realdata.engine import NonFiniteLoss, run_training
from realdata.methods import CE, METHODS
from realdata.methods.plan import resolve
from realdata.models import build
from realdata.models.external import load_factory


def cfg(data_dir, **kw) -> TrainConfig:
    base = {"model": "resnet8", "dataset": "cifar10", "epochs": 1, "batch_size": 16, "data_dir": str(data_dir),
            "device": "cpu"}
    return TrainConfig(**{**base, **kw})


def one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text and len(text) < 400, text
    return text


def test_a_checkpoint_never_chooses_code_to_run(tmp_path, monkeypatch):
    """A checkpoint whose recorded arch is module:factory is refused before anything is imported."""
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "ran.txt"
    (tmp_path / "evil_model.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n"
                                            "def net(num_classes):\n    raise SystemExit\n")
    model = build("resnet8", num_classes=10)
    atomic_save(model_checkpoint(model, "evil_model:net", 10, 3, 32, "cifar10"), tmp_path / "t.pt")
    with pytest.raises(CheckpointError, match="a file never chooses code to run: name it yourself") as err:
        load_model(tmp_path / "t.pt")
    one_line(err)
    assert not marker.exists()


def test_non_finite_weights_are_named_at_load(tmp_path):
    model = build("resnet8", num_classes=10)
    state = model.state_dict()
    state["layer1.0.bn1.running_var"][0] = float("inf")
    state["fc.weight"][0, 0] = float("nan")
    atomic_save({**model_checkpoint(model, "resnet8", 10, 3, 32, "cifar10"), "model": state}, tmp_path / "t.pt")
    with pytest.raises(CheckpointError, match=r"t.pt holds NaN or infinite values in 2 tensor\(s\) \(e.g. "
                                              r"layer1.0.bn1.running_var\)") as err:
        load_model(tmp_path / "t.pt")
    one_line(err)


def test_a_users_module_that_fails_at_import_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "broken_syntax.py").write_text("def net(:\n")
    (tmp_path / "raises_at_import.py").write_text("raise RuntimeError('no GPU here')\n")
    with pytest.raises(ValueError, match=r"importing broken_syntax failed \(line 1\): SyntaxError") as err:
        load_factory("broken_syntax:net")
    one_line(err)
    with pytest.raises(ValueError, match="importing raises_at_import failed: RuntimeError: no GPU here"):
        load_factory("raises_at_import:net")


@pytest.mark.parametrize(("text", "match"), [
    ("[" * 100_000 + "]" * 100_000, "nests deeper than 64 levels"),
    ('{"a": ' * 70 + "1" + "}" * 70, "nests deeper than 64 levels"),
    ('{"seed": ' + "9" * 5000 + "}", "holds an integer of 5000 digits"),
    (b'{"lr": "\xff"}', "not UTF-8 text"),
    ("[1, 2]", "holds list, not a JSON object"),
    ('{"lr": 0.1', "not valid JSON"),
])
def test_one_reader_for_every_json_file(tmp_path, text, match):
    path = tmp_path / "f.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(UserError, match=match) as err:
        read_json(path, "config file")
    assert str(path) in one_line(err)


def test_config_values_that_cannot_be_used_are_refused_up_front(tmp_path, data_dir):
    with pytest.raises(ConfigError, match="lr must be a finite number in .* that float32 holds, got 1e"):
        cfg(data_dir, lr=1e39)
    with pytest.raises(ConfigError, match="seed must be an integer >= 0"):
        cfg(data_dir, seed=2**70)
    with pytest.raises(ConfigError) as err:
        resolve(TrainConfig.from_dict({"model": "resnet8", "dataset": "cifar10", "method": "x" * 20_000_000}))
    assert len(one_line(err)) < 300
    with pytest.raises(ConfigError, match="an integer of 5000 digits"):
        parse_overrides(["seed=" + "9" * 5000])
    (tmp_path / "deep.json").write_text('{"a": ' * 100 + "1" + "}" * 100)
    with pytest.raises(ConfigError, match="nests deeper"):
        TrainConfig.load(tmp_path / "deep.json")


def test_damaged_run_files_on_resume_are_one_line_and_change_nothing(tmp_path, data_dir):
    out = tmp_path / "run"
    run_training(cfg(data_dir, epochs=1), out)
    before = (out / "last.pt").read_bytes()
    (out / "environment.json").write_text('{"python": "3.11", "torch')  # torn
    with pytest.raises(RunError, match=r"environment.json is not valid JSON .*move it aside") as err:
        run_training(cfg(data_dir, epochs=1), out, resume=True)
    one_line(err)
    (out / "environment.json").write_text("[1, 2]")
    with pytest.raises(RunError, match="holds list, not a JSON object"):
        run_training(cfg(data_dir, epochs=1), out, resume=True)
    assert (out / "last.pt").read_bytes() == before
    (out / "config.json").write_bytes(b'{"model": "\xff"}')
    with pytest.raises(RunError, match="holds an unreadable run .*not UTF-8"):
        run_training(cfg(data_dir, epochs=1), out, resume=True)


def test_another_runs_checkpoint_is_named_and_orphans_are_removed(tmp_path, data_dir):
    run_training(cfg(data_dir, epochs=1), tmp_path / "a")
    run_training(cfg(data_dir, epochs=1, seed=1), tmp_path / "b")
    assert read_checkpoint(tmp_path / "a" / "last.pt")["run_identity"] == resolve(cfg(data_dir)).config.digest()
    env = json.loads((tmp_path / "a" / "environment.json").read_text())
    assert env["effective"] == {"amp": False, "channels_last": False}  # asked for, but a CPU run has neither
    assert env["data_source"].startswith(str(data_dir.resolve()))  # the folder the images came from
    (tmp_path / "a" / "last.pt").write_bytes((tmp_path / "b" / "last.pt").read_bytes())
    with pytest.raises(RunError, match="last.pt is another run's checkpoint") as err:
        run_training(cfg(data_dir, epochs=1), tmp_path / "a", resume=True)
    one_line(err)
    from click.testing import CliRunner

    from realdata.cli import main as realdata_main

    res = CliRunner().invoke(realdata_main, ["evaluate", str(tmp_path / "a" / "last.pt"), "--device", "cpu"])
    assert res.exit_code == 1 and "is another run's checkpoint than" in res.output
    orphan = tmp_path / "b" / ".last.pt.abc123.tmp"
    orphan.write_bytes(b"x" * 1000)
    run_training(cfg(data_dir, epochs=1, seed=1), tmp_path / "b", resume=True)
    assert not orphan.exists() and read_checkpoint(tmp_path / "b" / "last.pt")["epoch"] == 1


def test_non_finite_weights_stop_the_run_before_they_are_saved(tmp_path, data_dir, monkeypatch):
    """A finite loss can leave NaN in the weights (a BN variance blown up): the epoch's checkpoints are not written,
    the last good one stays."""
    class BlowsUpInEpoch2(CE):
        NAME = "blowup_test"
        calls = 0

        def forward(self, images, labels, *args):
            type(self).calls += 1
            if type(self).calls == 3:  # epoch 2's first step (2 steps per epoch)
                with torch.no_grad():
                    self.student.layer1[0].bn1.running_var.fill_(float("inf"))
            return super().forward(images, labels)

    monkeypatch.setitem(METHODS, "blowup_test", BlowsUpInEpoch2)
    out = tmp_path / "run"
    with pytest.raises(NonFiniteLoss, match=r"epoch 2 ended with NaN or infinite weights in 1 tensor\(s\) \(e.g. "
                                            r"layer1.0.bn1.running_var\); not saved; last good checkpoint: .*epoch 1"):
        run_training(cfg(data_dir, method="blowup_test", epochs=3), out)
    last = read_checkpoint(out / "last.pt")
    assert last["epoch"] == 1 and all(torch.isfinite(v).all() for v in last["model"].values() if v.is_floating_point())
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1


def test_multiview_results_and_sizes(tmp_path):
    from click.testing import CliRunner

    from multiview.cli import main

    (tmp_path / "r.json").write_text('{"config": ' * 80 + "{}" + "}" * 80)
    res = CliRunner().invoke(main, ["report", str(tmp_path / "r.json")])
    assert res.exit_code != 0 and "nests deeper than 64 levels" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(main, ["simulate", "--set", "n_train=1000000000000", "--out", str(tmp_path / "o")])
    assert res.exit_code != 0 and "GiB per seed" in res.output and not (tmp_path / "o").exists()


def test_a_foreign_file_in_the_teacher_pool_is_retrained(tmp_path):
    from multiview.config import Config
    from multiview.experiment import distill_experiment

    tiny = Config(**{**SMOKE, "k": 3, "d": 16, "n_train": 30, "n_test": 30, "patience": 5})  # smaller still
    pool = tmp_path / "pool"
    pool.mkdir()
    torch.save([1, 2, 3], pool / "seed0.pt")  # a list, not a pool file
    r = distill_experiment(tiny, [0], [0, 1], ["fkd"], torch.device("cpu"), tmp_path / "o", pool=pool)
    assert len(r.teachers) == 1 and json.loads(json.dumps(torch.load(pool / "seed0.pt")["fit_step"])) is not None


def test_an_early_error_leaves_no_empty_run_folder(tmp_path):
    from realdata.data import DataError

    with pytest.raises(DataError):
        run_training(TrainConfig(model="resnet8", dataset="cifar100", data_dir=str(tmp_path), device="cpu"),
                     tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_config_file_never_chooses_code_to_run(tmp_path, monkeypatch):
    """A --config file (or a run folder's config.json) naming package.module:factory is read without importing it,
    and the run refuses until the command line names it too."""
    from click.testing import CliRunner

    from realdata.cli import main as realdata_main

    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "ran.txt"
    (tmp_path / "evil_data.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\ndef make():\n    return 1\n")
    (tmp_path / "c.json").write_text(json.dumps({"model": "resnet8", "dataset": "evil_data:make"}))
    res = CliRunner().invoke(realdata_main, ["train", "--config", str(tmp_path / "c.json"), "--device", "cpu",
                                             "--out", str(tmp_path / "run")])
    assert res.exit_code == 1 and "names code to import ('evil_data:make'); a file never chooses code" in res.output
    run = tmp_path / "old"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"model": "evil_data:make", "dataset": "cifar10"}))
    res = CliRunner().invoke(realdata_main, ["report", str(run)])  # reading a run's config imports nothing
    assert "Traceback" not in res.output
    assert TrainConfig.load(run / "config.json").model == "evil_data:make" and not marker.exists()
