"""DOT, the distillation-oriented optimiser (Zhao et al., ICCV 2023): SGD whose momentum differs for the two
gradients of a distillation step, momentum - delta for the task loss's and momentum + delta for the distillation
loss's, so the distillation gradient's direction accumulates for longer.

One step, as the reference trainer (mdistiller's DOT): ``loss_kd.backward(retain_graph=True)``, ``opt.step_kd()``
(keeps those gradients), ``opt.zero_grad()``, ``loss_ce.backward()``, ``opt.step()``. Weight decay goes with the
task gradient only. A parameter with one of the two gradients only moves with the plain ``momentum`` (weight decay
included); the reference skips weight decay on the first step of a distillation-only parameter, this does not.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from fkd._checks import check_number


class DOT(torch.optim.Optimizer):
    """SGD with separate momenta for the task and the distillation gradients (``delta`` apart, about ``momentum``)."""

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float, momentum: float = 0.9, delta: float = 0.075,
                 weight_decay: float = 0.0) -> None:
        check_number(lr, "lr", positive=True)
        check_number(weight_decay, "weight_decay")
        check_number(delta, "delta")
        if not (0 <= momentum - delta and momentum + delta < 1):
            raise ValueError(f"DOT needs 0 <= momentum - delta and momentum + delta < 1, got momentum {momentum} and "
                             f"delta {delta}")
        super().__init__(params, {"lr": lr, "momentum": momentum, "delta": delta, "weight_decay": weight_decay})
        self._kd_grads: dict[torch.nn.Parameter, torch.Tensor] = {}

    @torch.no_grad()
    def step_kd(self) -> None:
        """Keep the gradients now in ``.grad`` as the distillation loss's (call before zeroing them for the task
        loss's backward)."""
        self._kd_grads = {p: p.grad.clone() for g in self.param_groups for p in g["params"] if p.grad is not None}

    @staticmethod
    def _momentum(state: dict, key: str, grad: torch.Tensor, m: float) -> torch.Tensor:
        if key not in state:
            state[key] = grad.clone()
        else:
            state[key].mul_(m).add_(grad)
        return state[key]

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        """Apply the task gradients (in ``.grad``) and the distillation gradients kept by :meth:`step_kd`."""
        for g in self.param_groups:
            lr, wd, m, delta = g["lr"], g["weight_decay"], g["momentum"], g["delta"]
            for p in g["params"]:
                task, kd = p.grad, self._kd_grads.get(p)
                if task is None and kd is None:
                    continue
                state = self.state[p]
                if task is not None and kd is not None:
                    p.sub_(self._momentum(state, "task_buffer", task.add(p, alpha=wd), m - delta), alpha=lr)
                    p.sub_(self._momentum(state, "kd_buffer", kd, m + delta), alpha=lr)
                else:
                    grad = (task if task is not None else kd).add(p, alpha=wd)
                    p.sub_(self._momentum(state, "momentum_buffer", grad, m), alpha=lr)
        self._kd_grads = {}
        return None
