"""ImageNet's standard distillation pairs (ResNet34 -> ResNet18, ResNet50 -> MobileNetV1): the models with the state
dict entries of their reference definitions, so published weights load with ``strict=True``.

``resnet18``, ``resnet34``, ``resnet50``: He et al. 2016 as torchvision defines them (a 7x7 stride-2 stem and a 3x3
max-pool; basic blocks or bottlenecks with the stride on the 3x3 conv; ``downsample`` a 1x1 conv and BN; ``fc``), so
torchvision's published ImageNet weights (a bare state dict, ``resnet34-333f7ec4.pth`` and the like) load as they are
(``--teacher FILE:resnet34``). ``MobileNetV1``: Howard et al. 2017 as mdistiller's ImageNet recipe defines it (``model``
a sequence of 14 conv / depthwise-separable blocks, ``fc``). The entry names and shapes of the reference definitions
are pinned as data in the tests (tests/data/imagenet_entries.json) and checked against these models.

Not to be confused with the CIFAR zoo's ``ResNet50`` (CRD's: a 3x3 stem, no max-pool). Every model is a
:class:`~realdata.models.base.ZooModel`: the maps after every stage (after ``layer1``..``layer4``; MobileNetV1: after
blocks 3, 5, 11 and 13, mdistiller's stages) reach the stage methods; pooling is adaptive, so any input size that
survives the downsampling works (224 is the recipe's).
"""

from __future__ import annotations

from torch import Tensor, nn

from realdata.models.base import ZooModel, kaiming_init
from realdata.models.resnet import BasicBlock


def _downsample(in_planes: int, out_planes: int, stride: int) -> nn.Sequential | None:
    if stride == 1 and in_planes == out_planes:
        return None
    return nn.Sequential(nn.Conv2d(in_planes, out_planes, 1, stride, bias=False), nn.BatchNorm2d(out_planes))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand by 4, each with BN, plus the shortcut."""

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.downsample = _downsample(in_planes, planes * 4, stride)

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn1(self.conv1(x)).relu()
        out = self.bn2(self.conv2(out)).relu()
        out = self.bn3(self.conv3(out))
        return (out + (x if self.downsample is None else self.downsample(x))).relu()


#: name -> (block, its output width over its inner width, blocks per stage). The basic block is the CIFAR zoo's
#: (:class:`realdata.models.resnet.BasicBlock`): the same convolutions, the same entry names (``downsample.0/.1``).
CONFIGS: dict[str, tuple[type[nn.Module], int, tuple[int, int, int, int]]] = {
    "resnet18": (BasicBlock, 1, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, 1, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, 4, (3, 4, 6, 3)),
}


class ImageNetResNet(ZooModel):
    """(B, in_channels, H, W) -> stages at H/4 .. H/32 -> logits (B, num_classes); torchvision's entry names."""

    def __init__(self, name: str, num_classes: int = 1000, in_channels: int = 3) -> None:
        block, expansion, blocks = CONFIGS[name]
        super().__init__(name, 512 * expansion)
        self.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        layers, in_planes = [], 64
        for i, (planes, n) in enumerate(zip((64, 128, 256, 512), blocks, strict=True)):
            stage = []
            for j in range(n):
                stage.append(block(in_planes, planes, 2 if j == 0 and i > 0 else 1))
                in_planes = planes * expansion
            layers.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.fc = nn.Linear(self.penultimate_dim, num_classes)
        kaiming_init(self)  # as the reference definitions start (their convolutions have no bias)

    def feature_stages(self, x: Tensor) -> list[Tensor]:
        out = [self.layer1(self.maxpool(self.bn1(self.conv1(x)).relu()))]
        for layer in (self.layer2, self.layer3, self.layer4):
            out.append(layer(out[-1]))
        return out

    def classify(self, pooled: Tensor) -> Tensor:
        return self.fc(pooled)


#: MobileNetV1's blocks: (output channels, stride), the first a full 3x3 conv, the others depthwise-separable.
MOBILENET_V1 = ((32, 2), (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1), (512, 1),
                (512, 1), (512, 1), (1024, 2), (1024, 1))
#: The blocks whose outputs are MobileNetV1's four stages (mdistiller's).
MOBILENET_V1_STAGES = (3, 5, 11, 13)


class MobileNetV1(ZooModel):
    """(B, in_channels, H, W) -> stages at H/4 .. H/32 -> logits (B, num_classes); mdistiller's entry names."""

    def __init__(self, num_classes: int = 1000, in_channels: int = 3) -> None:
        super().__init__("MobileNetV1", 1024)
        blocks, channels = [], in_channels
        for i, (out, stride) in enumerate(MOBILENET_V1):
            if i == 0:
                blocks.append(nn.Sequential(nn.Conv2d(channels, out, 3, stride, 1, bias=False), nn.BatchNorm2d(out),
                                            nn.ReLU(inplace=True)))
            else:
                blocks.append(nn.Sequential(
                    nn.Conv2d(channels, channels, 3, stride, 1, groups=channels, bias=False), nn.BatchNorm2d(channels),
                    nn.ReLU(inplace=True), nn.Conv2d(channels, out, 1, bias=False), nn.BatchNorm2d(out),
                    nn.ReLU(inplace=True)))
            channels = out
        self.model = nn.Sequential(*blocks)
        self.fc = nn.Linear(1024, num_classes)  # PyTorch's default initialisation, as the reference leaves it

    def feature_stages(self, x: Tensor) -> list[Tensor]:
        out, start = [], 0
        for end in MOBILENET_V1_STAGES:
            x = self.model[start: end + 1](x)
            out.append(x)
            start = end + 1
        return out

    def classify(self, pooled: Tensor) -> Tensor:
        return self.fc(pooled)
