"""Wide ResNets of the CRD zoo (Zagoruyko & Komodakis 2016): wrn_D_K has depth D, widening factor K, and three
stages of (D - 4) / 6 pre-activation blocks with widths 16K, 32K, 64K running at 32, 16 and 8 pixels at 32x32 input
(dropout rate 0, as in CRD)."""

from torch import Tensor, nn

from realdata.models.base import ZooModel, kaiming_init

CONFIGS: dict[str, tuple[int, int]] = {  # name -> (depth, widening factor)
    "wrn_16_1": (16, 1),
    "wrn_16_2": (16, 2),
    "wrn_40_1": (40, 1),
    "wrn_40_2": (40, 2),
}


class BasicBlock(nn.Module):
    """BN-ReLU-conv3x3 twice plus a shortcut: the identity, or, where the width changes, a 1x1 conv of the
    pre-activated input: (B, C_in, H, W) -> (B, C_out, H / stride, W / stride)."""

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.convShortcut = None if in_planes == planes else nn.Conv2d(in_planes, planes, 1, stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.after_bn1(x, self.bn1(x))

    def after_bn1(self, x: Tensor, normed: Tensor) -> Tensor:
        """The block on ``x`` given its first BatchNorm's output ``normed`` (the stage's pre-activation map)."""
        pre = normed.relu()
        out = self.conv2(self.bn2(self.conv1(pre)).relu())
        return out + (x if self.convShortcut is None else self.convShortcut(pre))


class NetworkBlock(nn.Module):
    """One stage, `blocks` blocks with the first one strided: (B, C_in, H, W) -> (B, C_out, H / stride, W / stride)."""

    def __init__(self, in_planes: int, planes: int, blocks: int, stride: int) -> None:
        super().__init__()
        self.layer = nn.Sequential(
            *(BasicBlock(in_planes if i == 0 else planes, planes, stride if i == 0 else 1) for i in range(blocks))
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.layer(x)


class WideResNet(ZooModel):
    """A Wide ResNet by zoo name: (B, in_channels, H, W) -> fmap (B, 64K, H / 4, W / 4) after a final BN-ReLU."""

    GIVES = frozenset({"pooled", "stages", "preact"})

    def __init__(self, arch: str, num_classes: int = 100, in_channels: int = 3) -> None:
        depth, k = CONFIGS[arch]
        super().__init__(arch, 64 * k)
        blocks = (depth - 4) // 6
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.block1 = NetworkBlock(16, 16 * k, blocks, 1)
        self.block2 = NetworkBlock(16 * k, 32 * k, blocks, 2)
        self.block3 = NetworkBlock(32 * k, 64 * k, blocks, 2)
        self.bn1 = nn.BatchNorm2d(64 * k)
        self.fc = nn.Linear(64 * k, num_classes)
        kaiming_init(self)
        nn.init.zeros_(self.fc.bias)

    def feature_stages(self, x: Tensor) -> list[Tensor]:
        f1 = self.block1(self.conv1(x))
        f2 = self.block2(f1)
        return [f1, f2, self.bn1(self.block3(f2)).relu()]

    def preact_stages(self, x: Tensor) -> list[Tensor]:
        """The stages' maps as the next ReLU sees them (the next block's BN of them; the final BN for the last), as
        the CRD benchmark reads a WRN's pre-activations for AB; one pass (each BatchNorm runs once)."""
        f1 = self.block1(self.conv1(x))
        p1 = self.block2.layer[0].bn1(f1)
        f2 = self.block2.layer[1:](self.block2.layer[0].after_bn1(f1, p1))
        p2 = self.block3.layer[0].bn1(f2)
        return [p1, p2, self.bn1(self.block3.layer[1:](self.block3.layer[0].after_bn1(f2, p2)))]

    def preact_bns(self) -> list[nn.BatchNorm2d]:
        """The BatchNorm each pre-activation map comes out of."""
        return [self.block2.layer[0].bn1, self.block3.layer[0].bn1, self.bn1]

    def classify(self, pooled: Tensor) -> Tensor:
        return self.fc(pooled)
