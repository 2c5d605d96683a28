"""FKD in your own training loop: the loss as an ``nn.Module`` and the features of any model by layer name.

    tap = FeatureTap(student, "layer4")          # or "avgpool", "layer4.1.relu", ...
    with torch.no_grad():
        _, h_t = FeatureTap(teacher, "avgpool")(x)
    logits, h_s = tap(x)
    losses = FKDLoss(weight=100, feature_reg=1e-4)(h_s, h_t)
    loss = F.cross_entropy(logits, y) + losses.total
"""

from __future__ import annotations

import difflib
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from fkd._checks import check_feature_pair, check_features, check_number
from fkd.kernels import DEFAULT_EPS, feature_regularizer
from fkd.relational import Features, fkd_loss


class FKDTerms(NamedTuple):
    """The weighted terms of :class:`FKDLoss`: ``total`` = ``kernel`` + ``reg``, each (...) (the leading dims)."""

    total: Tensor
    kernel: Tensor
    reg: Tensor


class FKDLoss(nn.Module):
    """Feature Kernel Distillation as a loss module: ``weight * D(rho_S, rho_T) + feature_reg * mean ||h_S||^p``.

    ``forward(h_student, h_teachers)``: (B, D_s) student features and one teacher's (B, D_t) or a list of
    them (an ensemble, combined by ``ensemble``: "mean" of the normalised kernels, or "concat" of the features);
    widths may differ. Returns :class:`FKDTerms` (total and its named parts), computed in float32 under autocast.
    ``reg_power`` 2 is the squared norm (the method's form), 1 the norm. The teachers' features are detached.
    """

    def __init__(self, weight: float = 100.0, feature_reg: float = 1e-4, ensemble: str = "mean",
                 eps: float = DEFAULT_EPS, reg_power: int = 2) -> None:
        super().__init__()
        for name, value in (("weight", weight), ("feature_reg", feature_reg), ("eps", eps)):
            check_number(value, f"FKDLoss {name}")
        if ensemble not in ("mean", "concat"):
            raise ValueError(f"FKDLoss ensemble must be 'mean' or 'concat', got {ensemble!r}")
        if reg_power not in (1, 2):
            raise ValueError(f"FKDLoss reg_power must be 1 or 2, got {reg_power!r}")
        self.weight, self.feature_reg, self.ensemble, self.eps, self.reg_power = (
            float(weight), float(feature_reg), ensemble, float(eps), reg_power)

    def forward(self, h_student: Tensor, h_teachers: Features) -> FKDTerms:
        check_features(h_student, "h_student")
        if h_student.ndim == 3:  # in a training loop a 3-d tensor is tokens or a map, not M students
            raise ValueError(f"FKDLoss takes (B, D) features, got h_student of shape {tuple(h_student.shape)}: pool "
                             "(B, T, D) tokens over T (x.mean(1)); for M students at once, (M, B, D), use fkd.fkd_loss")
        given = list(h_teachers) if isinstance(h_teachers, (list, tuple)) else [h_teachers]
        for i, t in enumerate(given):
            name = f"h_teachers[{i}]" if isinstance(h_teachers, (list, tuple)) else "h_teachers"
            check_features(t, name)
            check_feature_pair(h_student, t, ("h_student", name))
        teachers = [t.detach() for t in h_teachers] if isinstance(h_teachers, (list, tuple)) else h_teachers.detach()
        with torch.autocast(h_student.device.type, enabled=False):
            kernel = self.weight * fkd_loss(h_student, teachers, ensemble=self.ensemble, eps=self.eps)
            reg = self.feature_reg * feature_regularizer(h_student, self.reg_power) if self.feature_reg else \
                torch.zeros_like(kernel)
        return FKDTerms(kernel + reg, kernel, reg)

    def extra_repr(self) -> str:
        return (f"weight={self.weight:g}, feature_reg={self.feature_reg:g}, ensemble={self.ensemble!r}, "
                f"reg_power={self.reg_power}")


class FeatureTap(nn.Module):
    """A model's output and one named layer's output, flattened to (B, D), from one forward pass.

    ``FeatureTap(model, "layer4.1.relu")(x)`` -> ``(model(x), features)``: the layer is found by its name in
    ``model.named_modules()`` (for a DDP- or compile-wrapped model, with or without the wrapper's prefix) and read by
    a forward hook (``input=True``: the layer's input instead, e.g. the penultimate features that enter the last
    ``nn.Linear``). A name the model does not have is a one-line ValueError with the closest names. The hook lives
    while the tap does; ``remove()`` (or leaving a ``with`` block) takes it off. Works under ``torch.no_grad``.
    """

    def __init__(self, model: nn.Module, layer: str, input: bool = False,  # noqa: A002 - reads well
                 flatten: bool = True) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"FeatureTap model must be an nn.Module, got {type(model).__name__}")
        if not isinstance(layer, str):
            raise TypeError(f"FeatureTap layer must be a layer name (a str, e.g. 'layer4'), got {type(layer).__name__}")
        self.model, self.layer, self.input, self.flatten = model, layer, input, flatten
        target = _find_layer(model, layer)
        self._seen: list[Tensor] = []
        if input:
            self._handle = target.register_forward_pre_hook(lambda _m, args: self._keep(args[0]))
        else:
            self._handle = target.register_forward_hook(lambda _m, _args, out: self._keep(out))

    def _keep(self, value: Any) -> None:
        if isinstance(value, (tuple, list)):
            value = value[0]
        if not isinstance(value, Tensor):
            raise TypeError(f"layer {self.layer!r} gives a {type(value).__name__}, not a tensor; tap another layer")
        self._seen.append(value)

    def forward(self, *args: Any, **kwargs: Any) -> tuple[Any, Tensor]:
        """The model's output and the layer's (B, D) features (the last call of the layer in this pass; as the
        layer gave them with ``flatten=False``)."""
        if self._handle is None:
            raise RuntimeError("this FeatureTap was removed; make a new one")
        self._seen.clear()
        try:
            out = self.model(*args, **kwargs)
            if not self._seen:
                raise RuntimeError(f"layer {self.layer!r} did not run in the model's forward pass; tap a layer "
                                   "that it calls")
            feats = self._seen[-1]
        finally:
            self._seen = []
        return out, feats.flatten(1) if self.flatten else feats

    def remove(self) -> None:
        """Take the hook off the model (the tap can no longer be called)."""
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def __enter__(self) -> FeatureTap:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def layer_names(model: nn.Module) -> list[str]:
    """The names a layer of ``model`` can be tapped by (without a DDP/compile wrapper's prefix)."""
    return [n for n, _ in _unwrap(model).named_modules() if n]


def _unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DDP (``.module``) or torch.compile (``._orig_mod``) wrapper."""
    for attr in ("module", "_orig_mod"):
        inner = getattr(model, attr, None)
        if isinstance(inner, nn.Module) and type(model).__name__ in ("DistributedDataParallel", "DataParallel",
                                                                      "OptimizedModule"):
            return _unwrap(inner)
    return model


def _find_layer(model: nn.Module, name: str) -> nn.Module:
    modules = dict(model.named_modules())
    if name in modules and name:
        return modules[name]
    inner = dict(_unwrap(model).named_modules())
    if name in inner and name:
        return inner[name]
    names = [n for n in inner if n]
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    more = ", ..." if len(names) > 6 else ""
    hint = f"closest: {', '.join(close)}" if close else f"it has: {', '.join(names[:6])}{more}"
    raise ValueError(f"{type(_unwrap(model)).__name__} has no layer {name!r}; {hint}")
