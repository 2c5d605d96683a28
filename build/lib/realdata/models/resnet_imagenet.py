"""CRD's "ResNet50" for CIFAR: the ImageNet bottleneck ResNet-50 (He et al. 2016) with a 3x3 stride-1 stem and no
max-pool, so at 32x32 input its four stages run at 32, 16, 8 and 4 pixels."""

from torch import Tensor, nn

from realdata.models.base import ZooModel, kaiming_init

EXPANSION = 4  # a bottleneck's output width over its inner width
STAGES = ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2))  # (inner width, blocks, stride of the first block)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand, each with BN, plus a shortcut (a 1x1 conv-BN where the shape
    changes): (B, C_in, H, W) -> (B, 4 * planes, H / stride, W / stride)."""

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        out_planes = EXPANSION * planes
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != out_planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, out_planes, 1, stride, bias=False), nn.BatchNorm2d(out_planes)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn1(self.conv1(x)).relu()
        out = self.bn2(self.conv2(out)).relu()
        return (self.bn3(self.conv3(out)) + self.shortcut(x)).relu()


def _stage(in_planes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    """`blocks` bottlenecks, the first one strided: (B, in_planes, H, W) -> (B, 4 * planes, H / stride, W / stride)."""
    return nn.Sequential(
        *(
            Bottleneck(in_planes if i == 0 else EXPANSION * planes, planes, stride if i == 0 else 1)
            for i in range(blocks)
        )
    )


class ResNet50(ZooModel):
    """(B, in_channels, H, W) -> fmap (B, 2048, H / 8, W / 8) -> logits (B, num_classes)."""

    def __init__(self, num_classes: int = 100, in_channels: int = 3) -> None:
        super().__init__("ResNet50", EXPANSION * STAGES[-1][0])
        self.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.layer1 = _stage(64, *STAGES[0])
        self.layer2 = _stage(EXPANSION * STAGES[0][0], *STAGES[1])
        self.layer3 = _stage(EXPANSION * STAGES[1][0], *STAGES[2])
        self.layer4 = _stage(EXPANSION * STAGES[2][0], *STAGES[3])
        self.linear = nn.Linear(self.penultimate_dim, num_classes)
        kaiming_init(self)

    def feature_stages(self, x: Tensor) -> list[Tensor]:
        out = [self.layer1(self.bn1(self.conv1(x)).relu())]
        for layer in (self.layer2, self.layer3, self.layer4):
            out.append(layer(out[-1]))
        return out

    def classify(self, pooled: Tensor) -> Tensor:
        return self.linear(pooled)
