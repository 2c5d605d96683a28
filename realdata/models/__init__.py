"""The standard CIFAR model zoo of the CRD benchmark (Tian et al. 2020) and ImageNet's standard pairs
(:mod:`.imagenet`: torchvision's resnet18 / resnet34 / resnet50 and mdistiller's MobileNetV1), a name -> builder
registry.

Every model's state dict matches CRD's published checkpoints entry for entry (`{'model': state_dict}` files load
with `strict=True`), and every model is a `ZooModel`: `forward(x)` gives logits, `forward_features(x)` gives
(logits, pooled penultimate feature, last feature map) from one pass.
"""

from collections.abc import Callable
from functools import partial

from realdata.models import imagenet, resnet, vgg, wrn
from realdata.models.base import ZooModel
from realdata.models.external import ExternalModel, is_spec, load_factory
from realdata.models.mobilenetv2 import MobileNetV2
from realdata.models.resnet_imagenet import ResNet50
from realdata.models.shufflenetv1 import ShuffleV1
from realdata.models.shufflenetv2 import ShuffleV2

MODELS: dict[str, Callable[..., ZooModel]] = {
    **{name: partial(resnet.CifarResNet, name) for name in resnet.CONFIGS},
    **{name: partial(wrn.WideResNet, name) for name in wrn.CONFIGS},
    **{name: partial(vgg.VGG, name) for name in vgg.CONFIGS},
    "MobileNetV2": MobileNetV2,
    "ShuffleV1": ShuffleV1,
    "ShuffleV2": ShuffleV2,
    "ResNet50": ResNet50,
    **{name: partial(imagenet.ImageNetResNet, name) for name in imagenet.CONFIGS},
    "MobileNetV1": imagenet.MobileNetV1,
}


def build(name: str, num_classes: int = 100, in_channels: int = 3,
          feature_layer: str | None = None) -> ZooModel | ExternalModel:
    """The zoo model `name` for `num_classes` classes and `in_channels`-channel images (1 changes the first conv),
    or a user's model given as ``package.module:factory`` (features read at `feature_layer`: :class:`ExternalModel`)."""
    if is_spec(name):
        return ExternalModel(name, num_classes, in_channels, feature_layer)
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {list(MODELS)}")
    return MODELS[name](num_classes=num_classes, in_channels=in_channels)


def known(name: str) -> bool:
    """A zoo name or a ``package.module:factory`` spec that imports (a ValueError, one line, where it does not)."""
    if is_spec(name):
        load_factory(name)
        return True
    return name in MODELS


__all__ = ["MODELS", "ExternalModel", "ZooModel", "build", "known"]
