"""VGG nets with BatchNorm of the CRD zoo (Simonyan & Zisserman 2015, CIFAR variant): five blocks of 3x3 conv-BN-ReLU
layers, 2x2 max-pools after the first three, so at 32x32 input the blocks run at 32, 16, 8, 4 and 4 pixels, and
one linear layer on the pooled 512 channels. vgg8 is CRD's one-conv-per-block net.

Every downsampling is a floor-mode max-pool, so 28x28 inputs give 14, 7, 3 and a 3x3 final map.
"""

import torch.nn.functional as F
from torch import Tensor, nn

from realdata.models.base import ZooModel, kaiming_init

CONFIGS: dict[str, tuple[tuple[int, ...], ...]] = {  # name -> conv widths of each of the five blocks
    "vgg8": ((64,), (128,), (256,), (512,), (512,)),
    "vgg11": ((64,), (128,), (256, 256), (512, 512), (512, 512)),
    "vgg13": ((64, 64), (128, 128), (256, 256), (512, 512), (512, 512)),
    "vgg16": ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)),
    "vgg19": ((64, 64), (128, 128), (256, 256, 256, 256), (512, 512, 512, 512), (512, 512, 512, 512)),
}


def _block(in_planes: int, widths: tuple[int, ...]) -> nn.Sequential:
    """conv3x3(bias)-BN-ReLU per width, without the last ReLU (applied by the caller):
    (B, in_planes, H, W) -> (B, widths[-1], H, W)."""
    layers: list[nn.Module] = []
    for width in widths:
        layers += [nn.Conv2d(in_planes, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        in_planes = width
    return nn.Sequential(*layers[:-1])


class VGG(ZooModel):
    """A VGG by zoo name: (B, in_channels, H, W) -> fmap (B, 512, H / 8, W / 8)."""

    GIVES = frozenset({"pooled", "stages", "preact"})

    def __init__(self, arch: str, num_classes: int = 100, in_channels: int = 3) -> None:
        cfg = CONFIGS[arch]
        super().__init__(arch, cfg[4][-1])
        self.block0 = _block(in_channels, cfg[0])
        self.block1 = _block(cfg[0][-1], cfg[1])
        self.block2 = _block(cfg[1][-1], cfg[2])
        self.block3 = _block(cfg[2][-1], cfg[3])
        self.block4 = _block(cfg[3][-1], cfg[4])
        self.classifier = nn.Linear(cfg[4][-1], num_classes)
        kaiming_init(self)
        nn.init.normal_(self.classifier.weight, 0.0, 0.01)
        nn.init.zeros_(self.classifier.bias)

    def feature_stages(self, x: Tensor) -> list[Tensor]:
        out = []
        for block in (self.block0, self.block1, self.block2):
            out.append(block(x).relu())
            x = F.max_pool2d(out[-1], 2)
        return [*out, self.block4(self.block3(x).relu()).relu()]

    def preact_stages(self, x: Tensor) -> list[Tensor]:
        """The stages' maps before their last ReLU (what AB compares); ``relu`` of each is ``feature_stages``'s."""
        out = []
        for block in (self.block0, self.block1, self.block2):
            out.append(block(x))
            x = F.max_pool2d(out[-1].relu(), 2)
        return [*out, self.block4(self.block3(x).relu())]

    def preact_bns(self) -> list[nn.BatchNorm2d]:
        """The BatchNorm each pre-activation map comes out of (its block's last)."""
        return [block[-1] for block in (self.block0, self.block1, self.block2, self.block4)]

    def classify(self, pooled: Tensor) -> Tensor:
        return self.classifier(pooled)
