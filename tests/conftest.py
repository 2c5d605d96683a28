"""Test-wide settings: one intra-op thread. The tests' tensors are small, and with two threads a busy second core
makes every op wait for it (seen here: a 10x slowdown on a shared 2-core machine).

Hypothesis runs without its per-example deadline (200 ms by default): on a loaded CI machine a slow example is not
a failure, and a deadline miss that does not repeat on replay ends a run as "Flaky".

The folders mirror the packages (fkd/, fkdapp/, multiview/, realdata/, studies/); e2e/ holds the tests that run
subprocesses, torchrun, kills and scripts, all marked ``slow`` here, so ``pytest -m "not slow"`` (``make test-fast``)
is the quick inner loop. The shared helpers (tiny_sim: the simulation's tiny problems, SMOKE and LOTTERY;
tiny_images: tiny data sets, class folders of generated images; tiny_models: seeded resnets and a method around
them; interrupt; user_models) live beside this file, the shared fixtures (data_dir) here;
tests/realdata/conftest.py holds the image-method tests' teachers."""

import sys
from pathlib import Path

import pytest
import torch
from hypothesis import settings

sys.path.insert(0, str(Path(__file__).parent))
torch.set_num_threads(1)
settings.register_profile("ci", deadline=None)
settings.load_profile("ci")

E2E = Path(__file__).parent / "e2e"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if E2E in Path(item.path).parents:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """Tiny CIFAR-10 and Fashion-MNIST files in their official formats (tests/tiny_images.py), one folder per test
    module."""
    from tiny_images import write_tiny_data

    return write_tiny_data(tmp_path_factory.mktemp("data"))


@pytest.fixture(autouse=True)
def _float_settings_restored():
    """The commands set the simulation's numerics for their process (denormals flushed to zero:
    multiview.engine.set_numerics); a command run in this process by CliRunner must not leave them to the next test
    (hypothesis cannot draw floats with denormals flushed), so every test ends with the settings it began with."""
    flushing = float(torch.tensor([1e-39]) * 1.0) == 0.0
    yield
    torch.set_flush_denormal(flushing)
