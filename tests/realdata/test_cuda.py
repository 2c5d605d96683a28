"""The fast paths: CUDA (marked ``cuda``, skipped without a GPU; run by benchmarks/device_check.sh) and the parts of
them that also run on the CPU (bf16 autocast, channels_last), so that CI exercises the code."""

from __future__ import annotations

import copy

import pytest
import torch
from interrupt import train_until_killed
from tiny_images import image_data, write_tiny_data
from tiny_sim import LOTTERY

from multiview.config import Config
from multiview.data import make_data
from multiview.experiment import distill_experiment, measure_population
from multiview.population import init_weights
from multiview.train import cross_entropy, train
from realdata.config import TrainConfig
from realdata.engine import Trainer, run_training
from realdata.methods import METHODS
from realdata.models import build

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
TINY = LOTTERY


def _distiller(method: str):
    torch.manual_seed(0)
    teachers = [build("resnet8", num_classes=10)] if METHODS[method].NEEDS.teacher else []
    return METHODS[method](build("resnet8", num_classes=10), teachers)


@pytest.mark.parametrize("method", list(METHODS))
def test_bf16_autocast_and_channels_last_on_cpu(method):
    """The distillers under bf16 autocast with channels_last inputs: the losses stay float32 and near fp32's."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(8, 3, 32, 32, generator=g), torch.randint(0, 10, (8,), generator=g)
    d = _distiller(method).eval()
    if hasattr(d, "build_heads"):
        d.build_heads(image_data(n_train=64))
        d.heads.eval()
    d_bf16 = copy.deepcopy(d)  # CRD's memory changes with every call
    strong = x.flip(-1) if d.NEEDS.views == 2 else None  # a second view for the two-view methods (MLKD)
    _, want = d(x, y, indices=torch.arange(8), strong_images=strong)
    d = d_bf16.to(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, got = d(x.contiguous(memory_format=torch.channels_last), y, indices=torch.arange(8),
                   strong_images=None if strong is None else strong.contiguous(memory_format=torch.channels_last))
    assert set(got) == set(want)
    for name, value in got.items():
        assert value.dtype == torch.float32 and torch.isfinite(value)
        assert float(value.detach()) == pytest.approx(float(want[name].detach()), rel=0.1, abs=0.05), name


@pytest.mark.cuda
@needs_cuda
def test_population_training_and_measurement_on_cuda():
    cfg = Config(**TINY)
    dev = torch.device("cuda")
    data = make_data(cfg, 0, dev)
    w, log = train(init_weights(cfg, [1, 2, 3], dev), data.train.x, data.train.y, cross_entropy(data.train.y), cfg)
    m = measure_population(cfg, data, w)
    assert w.device.type == "cuda" and all(f >= 0 for f in log.fit_step)
    assert all(r["multi_view_error"] < 0.05 for r in m["reports"])
    r = distill_experiment(cfg, [0], [0, 1], ["fkd", "kd"], dev, None)
    assert r.environment["device"].startswith("cuda") and len(r.students) == 4


@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize("compile_", [False, True])
@pytest.mark.parametrize("method", list(METHODS))
def test_distillation_step_on_cuda(method, compile_):
    """One step with bf16 autocast + channels_last (and torch.compile) on CUDA: finite named losses."""
    dev = torch.device("cuda")
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (16, 3, 32, 32), generator=g, dtype=torch.uint8)
    y = torch.randint(0, 10, (16,), generator=g)
    from realdata.data import ImageData

    data = ImageData("cifar10", x, y, x[:4], y[:4], 10, (0.5,) * 3, (0.25,) * 3).to(dev)
    d = _distiller(method)  # the trainer builds FitNet's regressors
    n_t = len(d.teachers)
    config = TrainConfig(model="resnet8", dataset="cifar10", method=method, teachers=("t",) * n_t,
                         teacher_archs=("resnet8",) * n_t, batch_size=8, compile=compile_, device="cuda")
    trainer = Trainer(config, d, data, device=dev)
    assert trainer.amp and trainer.memory_format == torch.channels_last
    row = trainer.train_step(data.train_x[:8], data.train_y[:8])
    assert all(torch.isfinite(v) for v in row.values())


@pytest.mark.cuda
@needs_cuda
def test_resume_on_cuda_matches_an_uninterrupted_run(tmp_path):
    """Two epochs in one go against one epoch, then a resumed second: on CUDA the weights agree to 1e-5 (cuDNN's
    convolution algorithms are not bit-deterministic by default; on the CPU the same check is bit-exact)."""
    data_dir = write_tiny_data(tmp_path / "data")
    common = dict(model="resnet8", dataset="cifar10", batch_size=16, data_dir=str(data_dir), device="cuda")
    run_training(TrainConfig(epochs=2, **common), tmp_path / "whole")
    train_until_killed(TrainConfig(epochs=2, **common), tmp_path / "part")
    run_training(TrainConfig(epochs=2, **common), tmp_path / "part", resume=True)
    a = torch.load(tmp_path / "whole" / "last.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "part" / "last.pt", weights_only=False)["model"]
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-5), k

