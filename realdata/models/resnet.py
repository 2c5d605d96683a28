"""CIFAR ResNets of the CRD zoo (He et al. 2016, section 4.2): a 3x3 stem and three stages of basic blocks.

resnetN has (N - 2) / 6 blocks per stage with widths 16, 32, 64; the "x4" variants widen the stem to 32 and the
stages to 64, 128, 256. At 32x32 input the stages run at 32, 16 and 8 pixels.
"""

from torch import Tensor, nn

from realdata.models.base import ZooModel, kaiming_init

# name -> (depth, (stem width, stage-1 width, stage-2 width, stage-3 width))
CONFIGS: dict[str, tuple[int, tuple[int, int, int, int]]] = {
    "resnet8": (8, (16, 16, 32, 64)),
    "resnet14": (14, (16, 16, 32, 64)),
    "resnet20": (20, (16, 16, 32, 64)),
    "resnet32": (32, (16, 16, 32, 64)),
    "resnet44": (44, (16, 16, 32, 64)),
    "resnet56": (56, (16, 16, 32, 64)),
    "resnet110": (110, (16, 16, 32, 64)),
    "resnet8x4": (8, (32, 64, 128, 256)),
    "resnet32x4": (32, (32, 64, 128, 256)),
}


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers plus a shortcut (a 1x1 conv-BN where the shape changes): (B, C_in, H, W) ->
    (B, C_out, H / stride, W / stride)."""

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def preact(self, x: Tensor) -> Tensor:
        """The block's output before its last ReLU."""
        out = self.bn1(self.conv1(x)).relu()
        return self.bn2(self.conv2(out)) + self.downsample(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.preact(x).relu()


class CifarResNet(ZooModel):
    """A CIFAR ResNet by zoo name: (B, in_channels, H, W) -> fmap (B, widths[3], H / 4, W / 4)."""

    GIVES = frozenset({"pooled", "stages", "preact"})

    def __init__(self, arch: str, num_classes: int = 100, in_channels: int = 3) -> None:
        depth, widths = CONFIGS[arch]
        super().__init__(arch, widths[3])
        blocks = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.layer1 = self._stage(widths[0], widths[1], blocks, 1)
        self.layer2 = self._stage(widths[1], widths[2], blocks, 2)
        self.layer3 = self._stage(widths[2], widths[3], blocks, 2)
        self.fc = nn.Linear(widths[3], num_classes)
        kaiming_init(self)

    @staticmethod
    def _stage(in_planes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
        return nn.Sequential(
            *(BasicBlock(in_planes if i == 0 else planes, planes, stride if i == 0 else 1) for i in range(blocks))
        )

    def feature_stages(self, x: Tensor) -> list[Tensor]:
        x = self.bn1(self.conv1(x)).relu()
        f1 = self.layer1(x)
        f2 = self.layer2(f1)
        return [f1, f2, self.layer3(f2)]

    def preact_stages(self, x: Tensor) -> list[Tensor]:
        """The stages' maps before their last ReLU (what AB compares); ``relu`` of each is ``feature_stages``'s."""
        x, out = self.bn1(self.conv1(x)).relu(), []
        for layer in (self.layer1, self.layer2, self.layer3):
            out.append(layer[-1].preact(layer[:-1](x)))
            x = out[-1].relu()
        return out

    def preact_bns(self) -> list[nn.BatchNorm2d]:
        """The BatchNorm of each pre-activation map (its last block's second; the residual is added after it)."""
        return [layer[-1].bn2 for layer in (self.layer1, self.layer2, self.layer3)]

    def classify(self, pooled: Tensor) -> Tensor:
        return self.fc(pooled)
