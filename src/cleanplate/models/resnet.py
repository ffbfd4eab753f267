"""ResNet-50/101 encoder with the parameter names of the official BGMv2 checkpoints.

The last stage is dilated instead of strided (output stride 16), as DeepLabV3 does, so
the ASPP sees a finer grid. The first convolution takes 6 channels (frame + plate).
"""

from __future__ import annotations

import torch
from torch import nn

_DEPTHS = {"resnet50": (3, 4, 6, 3), "resnet101": (3, 4, 23, 3)}


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided or dilated), 1x1 expand ×4, plus a projected shortcut."""

    expansion = 4

    def __init__(self, cin: int, width: int, stride: int, dilation: int, project: bool) -> None:
        super().__init__()
        cout = width * self.expansion
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)) if project else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + skip)


class ResNetEncoder(nn.Module):
    """Returns features at strides (16, 8, 4, 2, 1): deepest first, the input itself last."""

    def __init__(self, in_channels: int = 6, variant: str = "resnet50") -> None:
        super().__init__()
        depths = _DEPTHS[variant]
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self._cin = 64
        self.layer1 = self._stage(64, depths[0], stride=1, dilation=1)
        self.layer2 = self._stage(128, depths[1], stride=2, dilation=1)
        self.layer3 = self._stage(256, depths[2], stride=2, dilation=1)
        # Dilated last stage: its first block keeps dilation 1, the rest use 2.
        self.layer4 = self._stage(512, depths[3], stride=1, dilation=2, first_dilation=1)
        self.out_channels = (2048, 512, 256, 64, in_channels)

    def _stage(
        self, width: int, blocks: int, stride: int, dilation: int, first_dilation: int | None = None
    ) -> nn.Sequential:
        layers = []
        for i in range(blocks):
            cin = self._cin
            project = i == 0 and (stride != 1 or cin != width * Bottleneck.expansion)
            d = (first_dilation or dilation) if i == 0 else dilation
            layers.append(Bottleneck(cin, width, stride if i == 0 else 1, d, project))
            self._cin = width * Bottleneck.expansion
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x0 = x
        x1 = self.relu(self.bn1(self.conv1(x)))
        x2 = self.layer1(self.maxpool(x1))
        x3 = self.layer2(x2)
        x4 = self.layer4(self.layer3(x3))
        return x4, x3, x2, x1, x0
