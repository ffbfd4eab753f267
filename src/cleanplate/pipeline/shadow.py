"""The subject's cast shadow, as a layer a compositor can multiply into a new background.

A matte says where the subject is; the shadow it casts on the floor is not subject (it must not
carry the old floor's colour into the comp) but losing it makes the subject float. With a clean
plate the shadow is measurable: outside the subject, the frame is the plate dimmed by the shadow,
``frame ≈ plate · (1 − shadow)``, so ``shadow = 1 − luma(frame) / luma(plate)``, clamped to [0, 1].

Definition of the layer: float in [0, 1], 0 = no shadow, 1 = full shadow (the background there is
black), and 0 inside the subject (scaled by 1 − alpha). Denoising: the ratio is averaged with a
Gaussian weighted by how much of each pixel is background (so the subject's own colours never
bleed into it), and values under the noise floor fade to 0 (a soft knee, so real shadows keep
their strength). ``--keep-shadow K`` composites ``fgr·α + bg·(1 − α)·(1 − K·shadow)``.
"""

from __future__ import annotations

import torch

from .controls import gaussian_blur

LUMA = (0.2126, 0.7152, 0.0722)  # Rec. 709
DARK = 0.02  # added to both lumas: the ratio of two near-black pixels is noise, not shadow
SIGMA = 1.5  # px, the denoising blur
FLOOR = 0.04  # shadow below this is noise (≈ 10/255 on a mid-grey floor); fades in up to 2×


def luma(rgb: torch.Tensor) -> torch.Tensor:
    w = torch.tensor(LUMA, device=rgb.device, dtype=rgb.dtype).view(1, 3, 1, 1)
    return (rgb * w).sum(1, keepdim=True)


def shadow_layer(
    src: torch.Tensor, plate: torch.Tensor, alpha: torch.Tensor, *, sigma: float = SIGMA, floor: float = FLOOR
) -> torch.Tensor:
    """(B, 1, H, W) shadow in [0, 1] from frames ``src`` (B, 3, H, W), their plates and mattes."""
    plate = plate.expand_as(src)
    ratio = (luma(src) + DARK) / (luma(plate) + DARK)
    raw = (1 - ratio).clamp(0, 1)
    weight = (1 - 2 * alpha).clamp(0, 1)  # pixels at least half subject say nothing about the floor
    num = gaussian_blur(raw * weight, sigma)
    den = gaussian_blur(weight, sigma)
    s = torch.where(den > 1e-3, num / den.clamp(min=1e-3), torch.zeros_like(num))
    if floor > 0:
        t = ((s - floor) / floor).clamp(0, 1)
        s = s * t * t * (3 - 2 * t)  # smoothstep knee from floor to 2·floor
    return (s * (1 - alpha)).clamp_(0, 1)


def shadow_composite(
    fgr: torch.Tensor, alpha: torch.Tensor, background: torch.Tensor, shadow: torch.Tensor, strength: float
) -> torch.Tensor:
    """``fgr·α + bg·(1 − α)·(1 − strength·shadow)``: the new background darkened where the shadow fell."""
    bg = background.expand_as(fgr) * (1 - strength * shadow)
    return torch.lerp(bg, fgr, alpha)
