"""Test-wide settings: one intra-op thread. The tests' tensors are small, and with two threads a busy second core
makes every op wait for it (seen here: a 10x slowdown on a shared 2-core machine).

Hypothesis runs without its per-example deadline (200 ms by default): on a loaded CI machine a slow example is not
a failure, and a deadline miss that does not repeat on replay ends a run as "Flaky"."""

import torch
from hypothesis import settings

torch.set_num_threads(1)
settings.register_profile("ci", deadline=None)
settings.load_profile("ci")
