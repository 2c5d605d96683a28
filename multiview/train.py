"""One gradient-descent loop for populations of teachers and students; the objective is a function passed in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from multiview.config import Config
from multiview.population import evaluate, features, logits

#: objective(h (M, B, km), logits (M, B, k), index (B,)) -> per-network loss (M,). ``index`` says which training
#: samples form the batch (all of them for full-batch GD), so targets precomputed on the training set line up.
Objective = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def cross_entropy(y: torch.Tensor) -> Objective:
    """Plain softmax cross-entropy on labels y (N,), per network."""

    def objective(h: torch.Tensor, f: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        logp = torch.log_softmax(f, dim=-1)
        return -logp.gather(-1, y[index].expand(f.shape[0], -1)[..., None]).squeeze(-1).mean(-1)

    return objective


@dataclass
class TrainLog:
    """Per network: the step it first fitted its training set (-1: never) and the number of steps it took."""

    fit_step: list[int]
    steps: list[int]

    @property
    def capped(self) -> list[bool]:
        return [f < 0 for f in self.fit_step]


def train(
    w: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    objective: Objective,
    cfg: Config,
    min_steps: int = 0,
    generator: torch.Generator | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[torch.Tensor, TrainLog]:
    """Gradient descent on a population (M, k, m, d); returns the trained weights and a log.

    Each network stops ``cfg.patience`` steps after it first fits its training set (training accuracy 100%), but not
    before ``min_steps`` steps (students: ``cfg.student_steps``); all stop at ``cfg.max_steps``.
    Full-batch unless ``cfg.batch_size`` > 0 (then batches come from ``generator``).
    """
    w = w.detach().clone().requires_grad_(True)
    M, n = w.shape[0], x.shape[0]
    full = cfg.batch_size == 0 or cfg.batch_size >= n
    fit_step = torch.full((M,), -1, dtype=torch.long, device=w.device)
    n_steps = torch.zeros(M, dtype=torch.long, device=w.device)
    active = torch.ones(M, dtype=torch.bool, device=w.device)
    everything = torch.arange(n, device=x.device)
    for step in range(cfg.max_steps):
        index = everything if full else torch.randint(n, (cfg.batch_size,), generator=generator).to(x.device)
        h = features(w, x if full else x[index], cfg)
        f = logits(h, cfg)
        loss = objective(h, f, index).sum()
        (grad,) = torch.autograd.grad(loss, w)
        with torch.no_grad():
            fitted = _fits(w, x, y, f, full, cfg)
            fit_step = torch.where((fit_step < 0) & fitted, step, fit_step)
            active &= (fit_step < 0) | (step < fit_step + cfg.patience) | (step < min_steps)
            w -= cfg.lr * grad * active.view(M, 1, 1, 1).to(grad.dtype)
            n_steps += active
        if progress is not None:
            progress(1)
        if not bool(active.any()):
            break
    if progress is not None:  # progress counts steps against the cap: the unused ones count as done
        progress(cfg.max_steps - 1 - step)
    return w.detach(), TrainLog(fit_step.tolist(), n_steps.tolist())


def _fits(w: torch.Tensor, x: torch.Tensor, y: torch.Tensor, f: torch.Tensor, full: bool, cfg: Config) -> torch.Tensor:
    """(M,) whether each network classifies the whole training set correctly (before this step's update)."""
    if not full:
        f = evaluate(w, x, cfg)[1]
    return (f.argmax(-1) == y).all(-1)
