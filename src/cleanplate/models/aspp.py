"""Atrous spatial pyramid pooling (DeepLabV3), with the official checkpoint's names."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _branch(cin: int, cout: int, k: int, dilation: int = 1) -> nn.Sequential:
    pad = 0 if k == 1 else dilation
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, padding=pad, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class ImagePooling(nn.Sequential):
    """Global average → 1x1 conv → broadcast back to the feature size."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        return F.interpolate(super().forward(x), size=size, mode="bilinear", align_corners=False)


class ASPP(nn.Module):
    def __init__(self, cin: int, rates: tuple[int, ...] = (3, 6, 9), cout: int = 256) -> None:
        super().__init__()
        branches = [_branch(cin, cout, 1)] + [_branch(cin, cout, 3, r) for r in rates]
        self.convs = nn.ModuleList([*branches, ImagePooling(cin, cout)])
        n = len(self.convs)
        self.project = nn.Sequential(
            nn.Conv2d(n * cout, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True), nn.Dropout(0.5)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([branch(x) for branch in self.convs], dim=1))
