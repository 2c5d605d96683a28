"""CRD's ShuffleNet V2 1x (Ma et al. 2018) for CIFAR: a 1x1 stem to 24 channels (no stride, no max-pool), three
stages (a downsampling block, then 3, 7 and 3 basic blocks) at 116, 232 and 464 channels, and a 1x1 conv to 1024.
At 32x32 input the stages run at 16, 8 and 4 pixels (28x28: 14, 7 and 4). PyTorch's default initialisation, as in
CRD."""

import torch
from torch import Tensor, nn

from realdata.models.base import ZooModel, channel_shuffle

STEM = 24
STAGES = ((116, 3), (232, 7), (464, 3))  # (width, basic blocks after the downsampling block)
LAST = 1024


class BasicBlock(nn.Module):
    """Keeps the first half of the channels and passes the second half through 1x1-BN-ReLU, depthwise 3x3-BN,
    1x1-BN-ReLU, then concatenates and shuffles: (B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, planes: int) -> None:
        super().__init__()
        half = planes // 2
        self.conv1 = nn.Conv2d(half, half, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(half)
        self.conv2 = nn.Conv2d(half, half, 3, 1, 1, groups=half, bias=False)
        self.bn2 = nn.BatchNorm2d(half)
        self.conv3 = nn.Conv2d(half, half, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(half)

    def forward(self, x: Tensor) -> Tensor:
        keep, x = x.chunk(2, dim=1)
        out = self.bn2(self.conv2(self.bn1(self.conv1(x)).relu()))
        out = self.bn3(self.conv3(out)).relu()
        return channel_shuffle(torch.cat([keep, out], 1), 2)


class DownBlock(nn.Module):
    """Two stride-2 branches, each ending at out_planes / 2 channels, concatenated and shuffled. Left: depthwise
    3x3-BN, 1x1-BN-ReLU; right: 1x1-BN-ReLU, depthwise 3x3-BN, 1x1-BN-ReLU. (B, C_in, H, W) -> (B, C_out, H/2, W/2)."""

    def __init__(self, in_planes: int, out_planes: int) -> None:
        super().__init__()
        mid = out_planes // 2
        self.conv1 = nn.Conv2d(in_planes, in_planes, 3, 2, 1, groups=in_planes, bias=False)
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv2 = nn.Conv2d(in_planes, mid, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(in_planes, mid, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(mid)
        self.conv4 = nn.Conv2d(mid, mid, 3, 2, 1, groups=mid, bias=False)
        self.bn4 = nn.BatchNorm2d(mid)
        self.conv5 = nn.Conv2d(mid, mid, 1, bias=False)
        self.bn5 = nn.BatchNorm2d(mid)

    def forward(self, x: Tensor) -> Tensor:
        left = self.bn2(self.conv2(self.bn1(self.conv1(x)))).relu()
        right = self.bn4(self.conv4(self.bn3(self.conv3(x)).relu()))
        right = self.bn5(self.conv5(right)).relu()
        return channel_shuffle(torch.cat([left, right], 1), 2)


def _stage(in_planes: int, planes: int, blocks: int) -> nn.Sequential:
    """(B, in_planes, H, W) -> (B, planes, H / 2, W / 2)."""
    return nn.Sequential(DownBlock(in_planes, planes), *(BasicBlock(planes) for _ in range(blocks)))


class ShuffleV2(ZooModel):
    """(B, in_channels, H, W) -> fmap (B, 1024, H / 8, W / 8) -> logits (B, num_classes)."""

    def __init__(self, num_classes: int = 100, in_channels: int = 3) -> None:
        super().__init__("ShuffleV2", LAST)
        self.conv1 = nn.Conv2d(in_channels, STEM, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(STEM)
        self.layer1 = _stage(STEM, *STAGES[0])
        self.layer2 = _stage(STAGES[0][0], *STAGES[1])
        self.layer3 = _stage(STAGES[1][0], *STAGES[2])
        self.conv2 = nn.Conv2d(STAGES[-1][0], LAST, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(LAST)
        self.linear = nn.Linear(LAST, num_classes)

    def feature_stages(self, x: Tensor) -> list[Tensor]:
        f1 = self.layer1(self.bn1(self.conv1(x)).relu())
        f2 = self.layer2(f1)
        return [f1, f2, self.bn2(self.conv2(self.layer3(f2))).relu()]

    def classify(self, pooled: Tensor) -> Tensor:
        return self.linear(pooled)
