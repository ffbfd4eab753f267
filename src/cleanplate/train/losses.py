"""The BGMv2 losses: alpha L1 + Sobel-gradient L1, foreground L1 where alpha > 0, error-map MSE."""

from __future__ import annotations

import torch
import torch.nn.functional as F

_SOBEL = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8


def sobel(x: torch.Tensor) -> torch.Tensor:
    """(gx, gy) stacked on the channel axis for a (B, 1, H, W) map."""
    k = torch.stack([_SOBEL, _SOBEL.t()]).unsqueeze(1).to(x)
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k)


def matting_terms(pha: torch.Tensor, fgr: torch.Tensor, pha_gt: torch.Tensor, fgr_gt: torch.Tensor) -> dict:
    mask = (pha_gt > 0).to(fgr.dtype)
    return {
        "pha_l1": F.l1_loss(pha, pha_gt),
        "pha_grad": F.l1_loss(sobel(pha), sobel(pha_gt)),
        "fgr_l1": F.l1_loss(fgr * mask, fgr_gt * mask),
    }


def error_term(err: torch.Tensor, pha: torch.Tensor, pha_gt: torch.Tensor) -> torch.Tensor:
    """The error head learns where the alpha it predicted is wrong (target is not differentiated)."""
    target = (pha.detach() - pha_gt).abs()
    return F.mse_loss(err, target)


def base_loss(outputs: tuple, pha_gt: torch.Tensor, fgr_gt: torch.Tensor) -> tuple[torch.Tensor, dict]:
    pha, fgr, err, _ = outputs
    terms = matting_terms(pha, fgr, pha_gt, fgr_gt)
    terms["err_mse"] = error_term(err, pha, pha_gt)
    return sum(terms.values()), terms


def refine_loss(outputs: tuple, pha_gt: torch.Tensor, fgr_gt: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """Refined outputs at full resolution plus the coarse ones at the backbone's resolution."""
    pha, fgr, pha_sm, fgr_sm, err_sm, _ = outputs
    size = pha_sm.shape[-2:]
    pha_gt_sm = F.interpolate(pha_gt, size, mode="bilinear", align_corners=False)
    fgr_gt_sm = F.interpolate(fgr_gt, size, mode="bilinear", align_corners=False)
    terms = matting_terms(pha, fgr, pha_gt, fgr_gt)
    coarse = matting_terms(pha_sm, fgr_sm, pha_gt_sm, fgr_gt_sm)
    terms.update({f"coarse_{k}": v for k, v in coarse.items()})
    terms["err_mse"] = error_term(err_sm, pha_sm, pha_gt_sm)
    return sum(terms.values()), terms
