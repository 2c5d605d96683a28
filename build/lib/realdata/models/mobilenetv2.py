"""CRD's MobileNetV2 (Sandler et al. 2018) at width 0.5 with expansion 6 ("mobile_half"): a stride-2 3x3 stem,
seven stages of inverted residual blocks, and a 1x1 conv to 1280 channels. At 32x32 input the stages run at 16, 16,
8, 4, 4, 2 and 2 pixels; every downsampling is a padded stride-2 3x3 conv, so 28x28 inputs end at 2x2 too."""

from torch import Tensor, nn

from realdata.models.base import ZooModel, kaiming_init

STEM = 16
# (expansion t, output width c, blocks n, stride of the first block s): the standard table at width 0.5
STAGES = ((1, 8, 1, 1), (6, 12, 2, 1), (6, 16, 3, 2), (6, 32, 4, 2), (6, 48, 3, 1), (6, 80, 3, 2), (6, 160, 1, 1))
LAST = 1280


class InvertedResidual(nn.Module):
    """1x1 expand-BN-ReLU, depthwise 3x3 (strided)-BN-ReLU, 1x1 project-BN, with a residual where the shape allows:
    (B, C_in, H, W) -> (B, C_out, H / stride, W / stride)."""

    def __init__(self, in_planes: int, out_planes: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = in_planes * expansion
        self.residual = stride == 1 and in_planes == out_planes
        self.conv = nn.Sequential(
            nn.Conv2d(in_planes, hidden, 1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, out_planes, 1, bias=False),
            nn.BatchNorm2d(out_planes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetV2(ZooModel):
    """(B, in_channels, H, W) -> fmap (B, 1280, H / 16, W / 16) -> logits (B, num_classes)."""

    def __init__(self, num_classes: int = 100, in_channels: int = 3) -> None:
        super().__init__("MobileNetV2", LAST)
        self.conv1 = nn.Sequential(
            nn.Conv2d(in_channels, STEM, 3, 2, 1, bias=False), nn.BatchNorm2d(STEM), nn.ReLU(inplace=True)
        )
        self.blocks = nn.ModuleList()
        width = STEM
        for t, c, n, s in STAGES:
            self.blocks.append(
                nn.Sequential(*(InvertedResidual(width if i == 0 else c, c, s if i == 0 else 1, t) for i in range(n)))
            )
            width = c
        self.conv2 = nn.Sequential(nn.Conv2d(width, LAST, 1, bias=False), nn.BatchNorm2d(LAST), nn.ReLU(inplace=True))
        head = nn.Linear(LAST, num_classes)
        self.classifier = nn.Sequential(head)
        kaiming_init(self)
        nn.init.normal_(head.weight, 0.0, 0.01)
        nn.init.zeros_(head.bias)

    def feature_stages(self, x: Tensor) -> list[Tensor]:
        x = self.conv1(x)
        out = []
        for stage in self.blocks:
            x = stage(x)
            out.append(x)
        return [*out, self.conv2(x)]

    def classify(self, pooled: Tensor) -> Tensor:
        return self.classifier(pooled)
