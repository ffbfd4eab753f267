"""MobileNetV2 encoder with the parameter names of the official BGMv2 checkpoints.

The 1280-channel head is dropped and the last strided block runs at stride 1 with the
following blocks dilated, so the output stride is 16 like the ResNet encoders.
"""

from __future__ import annotations

import torch
from torch import nn

# (expansion, output channels, repeats, first stride) per stage, as in the paper.
_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
_UNSTRIDED = 14  # the block whose stride 2 becomes 1
_DILATED_FROM = 15  # blocks from here on use dilation 2


def _conv_bn_relu6(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, dilation: int = 1) -> nn.Sequential:
    pad = (k - 1) // 2 * dilation
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, pad, dilation=dilation, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU6(inplace=True),
    )


class InvertedResidual(nn.Module):
    """Expand (1x1), depthwise (3x3), project (1x1, linear); residual when shapes allow."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int, dilation: int, residual: bool) -> None:
        super().__init__()
        hidden = cin * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(_conv_bn_relu6(cin, hidden, 1))
        layers += [
            _conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden, dilation=dilation),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)
        self.use_res_connect = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return x + y if self.use_res_connect else y


class MobileNetV2Encoder(nn.Module):
    """Returns features at strides (16, 8, 4, 2, 1): deepest first, the input itself last."""

    def __init__(self, in_channels: int = 6) -> None:
        super().__init__()
        blocks: list[nn.Module] = [_conv_bn_relu6(in_channels, 32, 3, stride=2)]
        cin = 32
        for expand, cout, repeats, first_stride in _STAGES:
            for i in range(repeats):
                index = len(blocks)
                stride = first_stride if i == 0 else 1
                # The residual decision is taken at the nominal stride (the unstrided block keeps none).
                residual = stride == 1 and cin == cout
                if index == _UNSTRIDED:
                    stride = 1
                dilation = 2 if index >= _DILATED_FROM else 1
                blocks.append(InvertedResidual(cin, cout, stride, expand, dilation, residual))
                cin = cout
        self.features = nn.Sequential(*blocks)
        self.out_channels = (320, 32, 24, 16, in_channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        f = self.features
        x0 = x
        x1 = f[1](f[0](x))
        x2 = f[3](f[2](x1))
        x3 = f[6](f[5](f[4](x2)))
        x4 = x3
        for block in f[7:]:
            x4 = block(x4)
        return x4, x3, x2, x1, x0
