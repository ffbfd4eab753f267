"""The BGMv2 decoder: upsample, concatenate the skip feature, conv-BN-ReLU, four times."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Decoder(nn.Module):
    """``channels`` are the decoder widths (input first, output last); ``skips`` the skip widths.

    Every upsampling targets the exact size of the next skip feature, so odd input sizes work.
    """

    def __init__(self, channels: tuple[int, ...], skips: tuple[int, ...]) -> None:
        super().__init__()
        c, s = channels, skips
        self.conv1 = nn.Conv2d(c[0] + s[0], c[1], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c[1])
        self.conv2 = nn.Conv2d(c[1] + s[1], c[2], 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c[2])
        self.conv3 = nn.Conv2d(c[2] + s[2], c[3], 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(c[3])
        self.conv4 = nn.Conv2d(c[3] + s[3], c[4], 3, padding=1, bias=True)
        self.relu = nn.ReLU(inplace=True)

    @staticmethod
    def up_cat(x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """``x`` bilinearly resized to ``skip``'s size, then ``skip`` appended as channels."""
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return torch.cat([x, skip], dim=1)

    def trunk(self, x4: torch.Tensor, x3: torch.Tensor, x2: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        """Everything before the last stage: the features at half the output size (``c[3]`` channels).

        Public because the optimized path (:mod:`cleanplate.models.fast`) runs the trunk as is and
        replaces only :meth:`head`.
        """
        x = self.relu(self.bn1(self.conv1(self.up_cat(x4, x3))))
        x = self.relu(self.bn2(self.conv2(self.up_cat(x, x2))))
        return self.relu(self.bn3(self.conv3(self.up_cat(x, x1))))

    def head(self, x: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        """The last stage: upsample to ``x0``'s size, append ``x0`` (frame and plate), conv4."""
        return self.conv4(self.up_cat(x, x0))

    def forward(
        self, x4: torch.Tensor, x3: torch.Tensor, x2: torch.Tensor, x1: torch.Tensor, x0: torch.Tensor
    ) -> torch.Tensor:
        return self.head(self.trunk(x4, x3, x2, x1), x0)
