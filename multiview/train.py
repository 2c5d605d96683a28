"""One gradient-descent loop for populations of teachers and students; the objective is a function passed in."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from multiview.config import Config
from multiview.population import evaluate, features, logits, view_correlations

#: objective(h (M, B, km), logits (M, B, k), index (B,)) -> per-network loss (M,). ``index`` says which training
#: samples form the batch (all of them for full-batch GD), so targets precomputed on the training set line up.
Objective = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class PartedObjective:
    """An objective made of CE and a distillation term per network: calling it returns their sum (M,) and keeps
    the two parts of the last call in ``last_parts``. The training loop calls :meth:`set_step` before each call;
    ``balance`` (M,) then holds each network's gradient-balance factor c (0: none), or is None when no network of
    the population is balanced at this step."""

    def __init__(self) -> None:
        self.step = 0
        self.balance: torch.Tensor | None = None
        self.last_parts: tuple[torch.Tensor, torch.Tensor] | None = None

    def set_step(self, step: int) -> None:
        self.step = step

    def parts(self, h: torch.Tensor, f: torch.Tensor, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def __call__(self, h: torch.Tensor, f: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        self.last_parts = self.parts(h, f, index)
        return self.last_parts[0] + self.last_parts[1]


def cross_entropy(y: torch.Tensor) -> Objective:
    """Plain softmax cross-entropy on labels y (N,), per network; samples labelled -1 (the transfer set) are left
    out of it (the mean runs over the labelled samples of the batch)."""
    if bool((y < 0).any()):
        def masked(h: torch.Tensor, f: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
            yb = y[index]
            labelled = (yb >= 0).to(f.dtype)
            logp = torch.log_softmax(f, dim=-1)
            nll = -logp.gather(-1, yb.clamp_min(0).expand(f.shape[0], -1)[..., None]).squeeze(-1)
            return (nll * labelled).sum(-1) / labelled.sum().clamp_min(1.0)

        return masked

    def objective(h: torch.Tensor, f: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        logp = torch.log_softmax(f, dim=-1)
        return -logp.gather(-1, y[index].expand(f.shape[0], -1)[..., None]).squeeze(-1).mean(-1)

    return objective


@dataclass
class TrainLog:
    """Per network: the step it first fitted its training set (-1: never), the number of steps it took, and the
    probes of its training: the steps probed, at each the ratio of the distillation term's gradient norm to CE's
    and the view correlations max_r <w_{j,r}, v_{j,l}> (k, 2). A network is probed only while it trains."""

    fit_step: list[int]
    steps: list[int]
    probe_steps: list[list[int]] = field(default_factory=list)  # [network][probe]
    grad_ratio: list[list[float]] = field(default_factory=list)  # [network][probe]
    view_corr: list[list] = field(default_factory=list)  # [network][probe][class][view]

    @property
    def capped(self) -> list[bool]:
        return [f < 0 for f in self.fit_step]

    @classmethod
    def concat(cls, logs: Sequence[TrainLog]) -> TrainLog:
        """One log of the networks of ``logs``, in order."""
        return cls(*([x for log in logs for x in getattr(log, f)] for f in
                     ("fit_step", "steps", "probe_steps", "grad_ratio", "view_corr")))


def train(
    w: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    objective: Objective,
    cfg: Config,
    min_steps: int = 0,
    generator: torch.Generator | None = None,
    progress: Callable[[int], None] | None = None,
    probe_steps: Sequence[int] = (),
    views: torch.Tensor | None = None,
) -> tuple[torch.Tensor, TrainLog]:
    """Gradient descent on a population (M, k, m, d); returns the trained weights and a log.

    Each network stops ``cfg.patience`` steps after it first fits its training set (training accuracy 100%), but not
    before ``min_steps`` steps (students: ``cfg.student_steps``); all stop at ``cfg.max_steps``.
    Full-batch unless ``cfg.batch_size`` > 0 (then batches come from ``generator``).

    An objective with parts (a :class:`PartedObjective`: CE and a distillation term per network) can be probed:
    at ``probe_steps`` the log records each network's gradient-norm ratio of the two terms and its view
    correlations (``views`` (2k, d)), without changing the update. Networks whose ``balance`` c is > 0 are updated
    with the distillation gradient rescaled to c times the norm of CE's gradient, every step.
    """
    w = w.detach().clone().requires_grad_(True)
    M, n = w.shape[0], x.shape[0]
    full = cfg.batch_size == 0 or cfg.batch_size >= n
    fit_step = torch.full((M,), -1, dtype=torch.long, device=w.device)
    n_steps = torch.zeros(M, dtype=torch.long, device=w.device)
    active = torch.ones(M, dtype=torch.bool, device=w.device)
    everything = torch.arange(n, device=x.device)
    log = TrainLog([], [], [[] for _ in range(M)], [[] for _ in range(M)], [[] for _ in range(M)])
    probes = set(probe_steps)
    parted = isinstance(objective, PartedObjective)
    for step in range(cfg.max_steps):
        index = everything if full else torch.randint(n, (cfg.batch_size,), generator=generator).to(x.device)
        h = features(w, x if full else x[index], cfg)
        f = logits(h, cfg)
        if parted:
            objective.set_step(step)
        balance = objective.balance if parted else None  # decided on the host: no device sync per step
        balanced = balance is not None
        loss = objective(h, f, index).sum()
        if balanced or (parted and step in probes):
            ce, extra = objective.last_parts
            (g_ce,) = torch.autograd.grad(ce.sum(), w, retain_graph=True)
            g_x = None
            if extra.requires_grad:  # a group of CE-only students has no distillation term
                (g_x,) = torch.autograd.grad(extra.sum(), w, retain_graph=not balanced, allow_unused=True)
            g_x = torch.zeros_like(w) if g_x is None else g_x
            n_ce, n_x = g_ce.flatten(1).norm(dim=1), g_x.flatten(1).norm(dim=1)
            if step in probes:
                ratio = (n_x / n_ce.clamp_min(1e-30)).tolist()
                corr = view_correlations(w.detach(), views, cfg).tolist() if views is not None else None
                for i in range(M):
                    log.probe_steps[i].append(step)
                    log.grad_ratio[i].append(ratio[i])
                    if corr is not None:
                        log.view_corr[i].append(corr[i])
            if balanced:
                scale = torch.where(balance > 0, balance * n_ce / n_x.clamp_min(1e-30), torch.ones_like(balance))
                grad = g_ce + scale.view(M, 1, 1, 1) * g_x
            else:
                (grad,) = torch.autograd.grad(loss, w)
        else:
            (grad,) = torch.autograd.grad(loss, w)
        with torch.no_grad():
            fitted = _fits(w, x, y, f, full, cfg)
            fit_step = torch.where((fit_step < 0) & fitted, step, fit_step)
            active &= (fit_step < 0) | (step < fit_step + cfg.patience) | (step < min_steps)
            w -= cfg.lr * grad * active.view(M, 1, 1, 1).to(grad.dtype)
            n_steps += active
        if progress is not None:
            progress(M)
        if not bool(active.any()):
            break
    if progress is not None:  # progress counts network-steps against the cap: the unused ones count as done
        progress(M * (cfg.max_steps - 1 - step))
    log.fit_step, log.steps = fit_step.tolist(), n_steps.tolist()
    return w.detach(), log


def _fits(w: torch.Tensor, x: torch.Tensor, y: torch.Tensor, f: torch.Tensor, full: bool, cfg: Config) -> torch.Tensor:
    """(M,) whether each network classifies the whole training set correctly (before this step's update); samples
    labelled -1 (unlabelled) do not count."""
    if not full:
        f = evaluate(w, x, cfg)[1]
    return ((f.argmax(-1) == y) | (y < 0)).all(-1)
