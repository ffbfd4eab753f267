"""MattingBase and MattingRefine: the BGMv2 networks, same constructor, forward and outputs.

``MattingBase(src, bgr) -> (pha, fgr, err, hid)`` at the input resolution.
``MattingRefine(src, bgr) -> (pha, fgr, pha_sm, fgr_sm, err_sm, ref_sm)``.
Inputs are (B, 3, H, W) RGB in [0, 1]; ``bgr`` is the clean plate.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from ..options import BACKBONES
from .aspp import ASPP
from .decoder import Decoder
from .mobilenet import MobileNetV2Encoder
from .refiner import Refiner
from .resnet import ResNetEncoder

BASE_CHANNELS = 1 + 3 + 1 + 32  # alpha, foreground residual, error, hidden


class Base(nn.Module):
    """Encoder → ASPP → decoder, returning the raw 37 output channels."""

    def __init__(self, backbone: str, in_channels: int = 6, out_channels: int = BASE_CHANNELS) -> None:
        super().__init__()
        if backbone not in BACKBONES:
            raise InputError(f"unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")
        self.backbone_name = backbone
        if backbone == "mobilenetv2":
            self.backbone = MobileNetV2Encoder(in_channels)
        else:
            self.backbone = ResNetEncoder(in_channels, backbone)
        deep, *skips = self.backbone.out_channels
        self.aspp = ASPP(deep, (3, 6, 9))
        self.decoder = Decoder((256, 128, 64, 48, out_channels), tuple(skips))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        deep, *skips = self.backbone(x)
        return self.decoder(self.aspp(deep), *skips)


def split_base_output(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(alpha clamped, foreground residual raw, error clamped, hidden ReLU'd)."""
    return x[:, 0:1].clamp(0, 1), x[:, 1:4], x[:, 4:5].clamp(0, 1), x[:, 5:].relu()


def _check_pair(src: torch.Tensor, bgr: torch.Tensor) -> None:
    if src.ndim != 4 or src.shape[1] != 3:
        raise InputError(f"src must be (B, 3, H, W); got {tuple(src.shape)}")
    if src.shape != bgr.shape:
        raise InputError(f"src {tuple(src.shape)} and bgr {tuple(bgr.shape)} must have the same shape")


class MattingBase(Base):
    def forward(self, src: torch.Tensor, bgr: torch.Tensor) -> tuple[torch.Tensor, ...]:
        _check_pair(src, bgr)
        pha, res, err, hid = split_base_output(self.features(torch.cat([src, bgr], dim=1)))
        return pha, (res + src).clamp(0, 1), err, hid


class MattingRefine(MattingBase):
    def __init__(
        self,
        backbone: str,
        backbone_scale: float = 1 / 4,
        refine_mode: str = "sampling",
        refine_sample_pixels: int = 80_000,
        refine_threshold: float = 0.1,
        refine_kernel_size: int = 3,
        refine_prevent_oversampling: bool = True,
        refine_patch_crop_method: str = "unfold",
        refine_patch_replace_method: str = "scatter_nd",
    ) -> None:
        if not 0 < backbone_scale <= 0.5:
            raise InputError(f"backbone_scale must be in (0, 1/2]; got {backbone_scale}")
        super().__init__(backbone)
        self.backbone_scale = float(backbone_scale)
        self.refiner = Refiner(
            refine_mode,
            refine_sample_pixels,
            refine_threshold,
            refine_kernel_size,
            refine_prevent_oversampling,
            refine_patch_crop_method,
            refine_patch_replace_method,
        )

    def forward(self, src: torch.Tensor, bgr: torch.Tensor) -> tuple[torch.Tensor, ...]:
        _check_pair(src, bgr)
        h, w = src.shape[-2:]
        if h % 4 or w % 4:
            raise InputError(f"MattingRefine needs height and width divisible by 4; got {h}x{w}")
        sm = F.interpolate(
            torch.cat([src, bgr], dim=1),
            scale_factor=self.backbone_scale,
            mode="bilinear",
            align_corners=False,
            recompute_scale_factor=True,
        )
        pha_sm, res_sm, err_sm, hid_sm = split_base_output(self.features(sm))
        pha, res, ref_sm = self.refiner(src, bgr, pha_sm, res_sm, err_sm, hid_sm)
        fgr_sm = (sm[:, :3] + res_sm).clamp(0, 1)
        return pha.clamp(0, 1), (res + src).clamp(0, 1), pha_sm, fgr_sm, err_sm, ref_sm
