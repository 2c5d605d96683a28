"""CRD's ShuffleNet V1 (Zhang et al. 2018) for CIFAR, 3 groups: a 1x1 stem to 24 channels (no stride, no max-pool)
and three stages of 4, 8 and 4 bottlenecks ending at 240, 480 and 960 channels. Each stage starts with a stride-2
block, so at 32x32 input the stages run at 16, 8 and 4 pixels (28x28: 14, 7 and 4; both branches of a stride-2
block are padded 3x3 windows and agree on every size). PyTorch's default initialisation, as in CRD."""

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from realdata.models.base import ZooModel, channel_shuffle

STEM = 24
GROUPS = 3
STAGES = ((240, 4), (480, 8), (960, 4))  # (output width, blocks)


class Bottleneck(nn.Module):
    """Grouped 1x1 reduce-BN-ReLU, channel shuffle, depthwise 3x3-BN-ReLU, grouped 1x1 expand-BN, then ReLU of the
    sum with the input (stride 1) or of the concatenation with a 3x3 average pool of it (stride 2):
    (B, C_in, H, W) -> (B, out_planes (+ C_in at stride 2), H / stride, W / stride)."""

    def __init__(self, in_planes: int, out_planes: int, stride: int, reduce_groups: int) -> None:
        super().__init__()
        mid = out_planes // 4
        self.stride = stride
        self.reduce_groups = reduce_groups
        self.conv1 = nn.Conv2d(in_planes, mid, 1, groups=reduce_groups, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, out_planes, 1, groups=GROUPS, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)

    def forward(self, x: Tensor) -> Tensor:
        out = channel_shuffle(self.bn1(self.conv1(x)).relu(), self.reduce_groups)
        out = self.bn3(self.conv3(self.bn2(self.conv2(out)).relu()))
        if self.stride == 2:
            return torch.cat([out, F.avg_pool2d(x, 3, 2, 1)], 1).relu()
        return (out + x).relu()


def _stage(in_planes: int, out_planes: int, blocks: int) -> nn.Sequential:
    """A stride-2 block whose new channels complete the pooled input to out_planes, then stride-1 blocks:
    (B, in_planes, H, W) -> (B, out_planes, H / 2, W / 2). The network's first 1x1 conv is ungrouped."""
    first = Bottleneck(in_planes, out_planes - in_planes, 2, 1 if in_planes == STEM else GROUPS)
    return nn.Sequential(first, *(Bottleneck(out_planes, out_planes, 1, GROUPS) for _ in range(blocks - 1)))


class ShuffleV1(ZooModel):
    """(B, in_channels, H, W) -> fmap (B, 960, H / 8, W / 8) -> logits (B, num_classes)."""

    def __init__(self, num_classes: int = 100, in_channels: int = 3) -> None:
        super().__init__("ShuffleV1", STAGES[-1][0])
        self.conv1 = nn.Conv2d(in_channels, STEM, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(STEM)
        self.layer1 = _stage(STEM, *STAGES[0])
        self.layer2 = _stage(STAGES[0][0], *STAGES[1])
        self.layer3 = _stage(STAGES[1][0], *STAGES[2])
        self.linear = nn.Linear(STAGES[-1][0], num_classes)

    def feature_stages(self, x: Tensor) -> list[Tensor]:
        f1 = self.layer1(self.bn1(self.conv1(x)).relu())
        f2 = self.layer2(f1)
        return [f1, f2, self.layer3(f2)]

    def classify(self, pooled: Tensor) -> Tensor:
        return self.linear(pooled)
