"""Turn a batch of mattes into output images on the inference device (one small kernel per kind).

Kept on the device so only uint8 results cross back to the host: 4 bytes per pixel instead of
the 16 of float alpha + foreground.
"""

from __future__ import annotations

import torch

from .shadow import shadow_composite


def render(
    kind: str,
    alpha: torch.Tensor,
    fgr: torch.Tensor,
    background: torch.Tensor | None = None,
    *,
    shadow: torch.Tensor | None = None,
    keep_shadow: float = 0.0,
    sample: str = "uint8",
) -> torch.Tensor:
    """(B, H, W, C) for ``kind``: rgba (C=4), alpha (1), fgr (3), comp (3, needs ``background``), shadow (1).

    ``alpha`` (B, 1, H, W), ``fgr`` (B, 3, H, W) and ``background`` ((B or 1), 3, H, W) are float
    in [0, 1]; the foreground is straight, so comp = fgr·α + bg·(1 − α), or with ``keep_shadow``
    K > 0 and a ``shadow`` layer, fgr·α + bg·(1 − α)·(1 − K·shadow). ``sample``: ``uint8``
    (rounded), or ``float`` (float32 in [0, 1], straight, for 16-bit PNG and EXR writers).
    """
    if kind == "rgba":
        x = torch.cat([fgr, alpha], 1)
    elif kind == "alpha":
        x = alpha
    elif kind == "fgr":
        x = fgr
    elif kind == "shadow":
        if shadow is None:
            raise ValueError("shadow output needs the shadow layer")
        x = shadow
    elif kind == "comp":
        if background is None:
            raise ValueError("comp needs a background")
        if keep_shadow > 0 and shadow is not None:
            x = shadow_composite(fgr, alpha, background, shadow, keep_shadow)
        else:
            x = torch.lerp(background.expand_as(fgr), fgr, alpha)  # bg + α·(fgr − bg), one pass
    else:
        raise ValueError(f"unknown output kind {kind!r}")
    if sample != "uint8":
        return x.float().clamp(0, 1).permute(0, 2, 3, 1).contiguous()
    # +0.5 then truncate = round (half up); 30 % cheaper than round_() at 1080p
    x = x.mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8)
    return x.permute(0, 2, 3, 1).contiguous()


def to_device(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """(B, H, W, 3) uint8 → (B, 3, H, W) float in [0, 1] on ``device`` (async from pinned memory).

    Made contiguous (NCHW) while still uint8: the network runs measurably slower on the
    channels-last strides a bare permute leaves (1.8 vs 2.3 CPU-s for a 480p frame).
    """
    x = images.to(device, non_blocking=device.type == "cuda")
    return x.permute(0, 3, 1, 2).contiguous().float().div_(255)
