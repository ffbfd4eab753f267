"""The BGMv2 refiner: recompute only the 4x4 full-resolution patches the base network doubts.

Patches are addressed by ``(batch, row, col)`` on the quarter-resolution grid. Each selected
patch is predicted from an 8x8 window at half resolution (hidden features, coarse outputs,
frame and plate), then from an 8x8 window of the full-resolution frame and plate.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..options import CROP_METHODS, KERNEL_SIZES, REFINE_MODES, REPLACE_METHODS

HIDDEN_CHANNELS = 32


def crop_patches(x: torch.Tensor, idx: tuple[torch.Tensor, ...], size: int, pad: int) -> torch.Tensor:
    """Windows of ``size + 2*pad`` around grid cells ``idx`` of a ``size``-strided grid: (N, C, k, k).

    Zero padding outside the image, so border patches see zeros like the original.
    """
    if pad:
        x = F.pad(x, (pad, pad, pad, pad))
    k = size + 2 * pad
    windows = x.unfold(2, k, size).unfold(3, k, size)  # (B, C, h, w, k, k), a view
    b, y, xs = idx
    return windows[b, :, y, xs]


def replace_patches(x: torch.Tensor, patches: torch.Tensor, idx: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Write 4x4 ``patches`` (N, C, 4, 4) into ``x`` (B, C, H, W) at grid cells ``idx``, in place."""
    b, c, h, w = x.shape
    grid = x.view(b, c, h // 4, 4, w // 4, 4).permute(0, 2, 4, 1, 3, 5)
    grid[idx] = patches.to(x.dtype)
    return x


def select_sampling(err: torch.Tensor, count: int, prevent_oversampling: bool) -> torch.Tensor:
    """0/1 map (B, 1, h, w) of the ``count`` largest errors per image (minus exact zeros)."""
    b, _, h, w = err.shape
    flat = err.reshape(b, h * w)
    # The original fails when the image has fewer patches than requested; refine them all instead.
    top = flat.topk(min(count, h * w), dim=1, sorted=False).indices
    ref = torch.zeros_like(flat).scatter_(1, top, 1.0)
    if prevent_oversampling:
        ref = ref * (flat > 0).to(ref.dtype)
    return ref.view(b, 1, h, w)


def select_threshold(err: torch.Tensor, threshold: float) -> torch.Tensor:
    return (err > threshold).to(err.dtype)


class Refiner(nn.Module):
    def __init__(
        self,
        mode: str = "sampling",
        sample_pixels: int = 80_000,
        threshold: float = 0.1,
        kernel_size: int = 3,
        prevent_oversampling: bool = True,
        patch_crop_method: str = "unfold",
        patch_replace_method: str = "scatter_nd",
    ) -> None:
        super().__init__()
        _check_choice("refine_mode", mode, REFINE_MODES)
        _check_choice("refine_kernel_size", kernel_size, KERNEL_SIZES)
        _check_choice("refine_patch_crop_method", patch_crop_method, CROP_METHODS)
        _check_choice("refine_patch_replace_method", patch_replace_method, REPLACE_METHODS)
        if int(sample_pixels) < 16:
            raise ValueError(f"refine_sample_pixels must be >= 16, got {sample_pixels}")
        self.mode = mode
        self.sample_pixels = int(sample_pixels)
        self.threshold = float(threshold)
        self.kernel_size = kernel_size
        self.prevent_oversampling = bool(prevent_oversampling)
        self.patch_crop_method = patch_crop_method
        self.patch_replace_method = patch_replace_method
        k = kernel_size
        self.conv1 = nn.Conv2d(HIDDEN_CHANNELS + 6 + 4, 24, k, bias=False)
        self.bn1 = nn.BatchNorm2d(24)
        self.conv2 = nn.Conv2d(24, 16, k, bias=False)
        self.bn2 = nn.BatchNorm2d(16)
        self.conv3 = nn.Conv2d(16 + 6, 12, k, bias=False)
        self.bn3 = nn.BatchNorm2d(12)
        self.conv4 = nn.Conv2d(12, 4, k, bias=True)
        self.relu = nn.ReLU(inplace=True)

    # The two halves of the refiner network, shared by the patch and the dense path.
    def _stage1(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(x)))

    def _stage2(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv4(self.relu(self.bn3(self.conv3(x))))

    def select(self, err: torch.Tensor) -> torch.Tensor:
        """Refinement map (B, 1, H/4, W/4) from the quarter-resolution error map."""
        if self.mode == "sampling":
            return select_sampling(err, self.sample_pixels // 16, self.prevent_oversampling)
        return select_threshold(err, self.threshold)

    def forward(
        self,
        src: torch.Tensor,
        bgr: torch.Tensor,
        pha: torch.Tensor,
        fgr: torch.Tensor,
        err: torch.Tensor,
        hid: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return full-resolution alpha, foreground residual (both unclamped) and the refine map."""
        h, w = src.shape[-2:]
        half, quarter = (h // 2, w // 2), (h // 4, w // 4)
        src_bgr = torch.cat([src, bgr], dim=1)
        if self.mode == "full":
            return (*self._dense(src_bgr, pha, fgr, hid, (h, w), half), src.new_ones((src.shape[0], 1, *quarter)))

        err = F.interpolate(err, quarter, mode="bilinear", align_corners=False)
        ref = self.select(err)
        idx = tuple(torch.nonzero(ref.squeeze(1), as_tuple=True))
        coarse = F.interpolate(torch.cat([pha, fgr], dim=1), (h, w), mode="bilinear", align_corners=False)
        if idx[0].numel() > 0:
            patches = self._refine_patches(src_bgr, pha, fgr, hid, idx, half)
            coarse = replace_patches(coarse, patches, idx)
        return coarse[:, :1], coarse[:, 1:], ref

    def _refine_patches(
        self,
        src_bgr: torch.Tensor,
        pha: torch.Tensor,
        fgr: torch.Tensor,
        hid: torch.Tensor,
        idx: tuple[torch.Tensor, ...],
        half: tuple[int, int],
    ) -> torch.Tensor:
        three = self.kernel_size == 3
        x = F.interpolate(torch.cat([hid, pha, fgr], dim=1), half, mode="bilinear", align_corners=False)
        y = F.interpolate(src_bgr, half, mode="bilinear", align_corners=False)
        x = crop_patches(x, idx, 2, 3 if three else 0)
        y = crop_patches(y, idx, 2, 3 if three else 0)
        x = self._stage1(torch.cat([x, y], dim=1))
        x = F.interpolate(x, size=(8, 8) if three else (4, 4), mode="nearest")
        y = crop_patches(src_bgr, idx, 4, 2 if three else 0)
        return self._stage2(torch.cat([x, y], dim=1))

    def _dense(
        self,
        src_bgr: torch.Tensor,
        pha: torch.Tensor,
        fgr: torch.Tensor,
        hid: torch.Tensor,
        full: tuple[int, int],
        half: tuple[int, int],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        three = self.kernel_size == 3
        x = F.interpolate(torch.cat([hid, pha, fgr], dim=1), half, mode="bilinear", align_corners=False)
        y = F.interpolate(src_bgr, half, mode="bilinear", align_corners=False)
        if three:
            x, y = F.pad(x, (3, 3, 3, 3)), F.pad(y, (3, 3, 3, 3))
        x = self._stage1(torch.cat([x, y], dim=1))
        grow = 4 if three else 0
        x = F.interpolate(x, (full[0] + grow, full[1] + grow), mode="nearest")
        y = F.pad(src_bgr, (2, 2, 2, 2)) if three else src_bgr
        x = self._stage2(torch.cat([x, y], dim=1))
        return x[:, :1], x[:, 1:]


def _check_choice(name: str, value: object, choices: tuple) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(str, choices))}; got {value!r}")
