"""The CIFAR zoo: CRD checkpoints' state dicts load strictly, parameter counts and widths match the recorded spec,
and every model runs on 32x32 RGB and 28x28 grey inputs."""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from realdata.models import MODELS, ZooModel, build

SPEC: dict[str, dict] = json.loads((Path(__file__).parents[1] / "data" / "zoo_spec.json").read_text())
NAMES = list(SPEC)


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Batch-2 forwards are fastest on one thread, and a shared machine's busy cores make more threads spin."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def spec_state_dict(name: str) -> dict[str, torch.Tensor]:
    """Random tensors with the spec's entry names and shapes, as a CRD checkpoint's `model` entry would hold."""
    return {
        key: torch.zeros((), dtype=torch.long) if key.endswith("num_batches_tracked") else torch.randn(shape)
        for key, shape in SPEC[name]["state_dict"].items()
    }


def test_registry_is_the_zoo() -> None:
    """The CIFAR zoo of the spec, and ImageNet's pairs (their entries: tests/realdata/test_imagenet.py)."""
    imagenet = json.loads((Path(__file__).parents[1] / "data" / "imagenet_entries.json").read_text())["entries"]
    assert sorted(MODELS) == sorted([*NAMES, *imagenet])


@pytest.mark.parametrize("name", NAMES)
def test_checkpoint_loads_strictly(name: str) -> None:
    model = build(name)
    sd = spec_state_dict(name)
    model.load_state_dict(sd, strict=True)
    assert isinstance(model, ZooModel) and model.arch == name
    assert sum(p.numel() for p in model.parameters()) == SPEC[name]["params"]
    assert model.penultimate_dim == SPEC[name]["penultimate_dim"]
    assert all(torch.equal(value, sd[key]) for key, value in model.state_dict().items())


@pytest.mark.parametrize("name", NAMES)
@torch.no_grad()
def test_cifar_shapes_and_forward(name: str) -> None:
    model = build(name).eval()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    logits, pooled, fmap = model.forward_features(x)
    assert logits.shape == (2, 100) and pooled.shape == (2, model.penultimate_dim)
    assert fmap.ndim == 4 and fmap.shape[:2] == (2, model.penultimate_dim)
    torch.testing.assert_close(pooled, fmap.mean(dim=(2, 3)))
    torch.testing.assert_close(model(x), logits, rtol=0, atol=0)


@pytest.mark.parametrize("name", NAMES)
@torch.no_grad()
def test_fashion_mnist_shapes(name: str) -> None:
    model = build(name, num_classes=10, in_channels=1).eval()
    logits, pooled, fmap = model.forward_features(torch.randn(2, 1, 28, 28))
    assert logits.shape == (2, 10) and pooled.shape == (2, model.penultimate_dim) and fmap.ndim == 4
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", ["resnet8", "wrn_16_1", "vgg8", "MobileNetV2", "ShuffleV1", "ShuffleV2"])
def test_in_channels_changes_only_the_first_conv(name: str) -> None:
    rgb, grey = build(name).state_dict(), build(name, in_channels=1).state_dict()
    changed = [key for key in rgb if rgb[key].shape != grey[key].shape]
    assert len(changed) == 1 and grey[changed[0]].shape[1] == 1


@pytest.mark.parametrize("name", NAMES)
def test_trains_in_place(name: str) -> None:
    """A training-mode backward pass runs (in-place ReLUs are safe) and reaches the first layer."""
    model = build(name).train()
    model(torch.randn(2, 3, 32, 32)).square().mean().backward()
    first = next(model.parameters())
    assert first.grad is not None and first.grad.abs().sum() > 0


def test_unknown_name() -> None:
    with pytest.raises(ValueError, match=r"unknown model 'x'; choose one of \[.*'resnet8'"):
        build("x")


@pytest.mark.parametrize("arch", ["resnet8", "resnet32x4", "vgg8", "vgg13", "wrn_16_2"])
def test_pre_activation_stages_are_the_stages_before_their_relu(arch):
    torch.manual_seed(0)
    model = build(arch, num_classes=10).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        pre, post = model.preact_stages(x), model.feature_stages(x)
    assert [p.shape for p in pre] == [p.shape for p in post]
    pairs = list(zip(pre, post, strict=True))[-1:] if arch.startswith("wrn") else zip(pre, post, strict=True)
    assert all(torch.allclose(a.relu(), b, atol=1e-6) for a, b in pairs)  # a WRN's earlier stages end in a conv
    assert any((p < 0).any() for p in pre)


def test_a_users_factory_that_takes_in_channels_gets_the_datas():
    from realdata.models import build

    grey = build("user_models:any_channels_cnn", num_classes=10, in_channels=1)
    assert grey.net[0].in_channels == 1
    assert build("user_models:small_cnn", num_classes=10, in_channels=1).net.body.conv.in_channels == 3  # as it is
