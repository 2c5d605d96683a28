"""A user's own architecture in realdata: ``package.module:factory`` called with ``num_classes`` (and
``in_channels`` where it takes it: 1 for Fashion-MNIST's 1x28x28 images, 3 for CIFAR's 3x32x32), given the zoo's
interface (logits, pooled features and a feature map from one pass) by a forward hook on one of its layers."""

from __future__ import annotations

import importlib
import inspect
import os
import re
import sys
from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor, nn

from fkd.module import FeatureTap

SPEC = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def is_spec(name: str) -> bool:
    """Whether ``name`` is a ``package.module:factory`` spec (not a zoo name)."""
    return bool(SPEC.match(name))


def load_factory(spec: str) -> Callable[..., nn.Module]:
    """The factory named by ``spec`` (its module importable from the environment or the current folder); a
    ValueError (one line) where it does not import or is not callable."""
    module, _, attr = spec.partition(":")
    if os.getcwd() not in sys.path:  # as `python -m` would: a module in the current folder imports
        sys.path.append(os.getcwd())
    try:
        factory = getattr(importlib.import_module(module), attr)
    except ImportError as e:
        raise ValueError(f"model {spec!r}: cannot import {module} ({type(e).__name__}: {str(e)[:80]})") from None
    except AttributeError:
        raise ValueError(f"model {spec!r}: {module} has no {attr!r}") from None
    except Exception as e:  # the user's module failed as it ran (a SyntaxError, an exception at import)
        where = f" (line {e.lineno})" if isinstance(e, SyntaxError) and e.lineno else ""
        raise ValueError(f"model {spec!r}: importing {module} failed{where}: {type(e).__name__}: "
                         f"{str(e)[:80]}; fix that module") from None
    if not callable(factory):
        raise ValueError(f"model {spec!r}: {attr} is not callable")
    return factory


def _takes(factory: Callable[..., nn.Module], name: str) -> bool:
    """Whether ``factory`` accepts the keyword ``name`` (or any keyword)."""
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def _last_linear(net: nn.Module) -> str | None:
    names = [n for n, m in net.named_modules() if isinstance(m, nn.Linear)]
    return names[-1] if names else None


class ExternalModel(nn.Module):
    """``spec``'s model (images -> logits) with ``forward_features``: logits, pooled (B, D) and fmap (B, C, H, W).

    The features are read at ``feature_layer`` (default: the input of the model's last ``nn.Linear``, its
    penultimate features): a 4-d output is the map and its spatial mean the pooled features; a 2-d output is the
    pooled features (and a 1x1 map). Its state dict is the model's, under ``net.``.
    """

    def __init__(self, spec: str, num_classes: int, in_channels: int = 3, feature_layer: str | None = None) -> None:
        super().__init__()
        self.arch, self.in_channels, self.feature_layer = spec, in_channels, feature_layer
        factory = load_factory(spec)
        kwargs = {"num_classes": num_classes}
        if _takes(factory, "in_channels"):  # image channels: 1 for Fashion-MNIST (1x28x28), 3 for CIFAR (3x32x32)
            kwargs["in_channels"] = in_channels
        try:
            net = factory(**kwargs)
        except Exception as e:  # the user's code may fail in any way; one line says where
            raise ValueError(f"model {spec!r} did not build with num_classes={num_classes}: {type(e).__name__}: "
                             f"{str(e)[:80]}") from None
        if not isinstance(net, nn.Module):
            raise ValueError(f"model {spec!r} returned a {type(net).__name__}, not an nn.Module")
        self.net = net
        layer = feature_layer or _last_linear(net)
        if layer is None:
            raise ValueError(f"model {spec!r} has no nn.Linear head to read features before; give --feature-layer")
        # kept outside the module tree, so the state dict holds the model's weights once
        object.__setattr__(self, "_tap", FeatureTap(net, layer, input=feature_layer is None, flatten=False))

    def forward_features(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        logits, h = self._tap(x)
        if h.dim() == 4:
            return logits, F.adaptive_avg_pool2d(h, 1).flatten(1), h
        pooled = h.flatten(1)
        return logits, pooled, pooled[:, :, None, None]

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
