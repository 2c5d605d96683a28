"""Test-wide settings: one intra-op thread. The tests' tensors are small, and with two threads a busy second core
makes every op wait for it (seen here: a 10x slowdown on a shared 2-core machine)."""

import torch

torch.set_num_threads(1)
