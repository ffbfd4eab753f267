"""The BGMv2 losses: alpha L1 + Sobel-gradient L1, foreground L1 where alpha > 0, error-map MSE.

Three options of :func:`refine_loss` (stage settings ``premultiplied_targets``, ``edge_fgr`` and ``soft_alpha``)
aim at the foreground colour that the plate-guided model's edge step reads (its coarse
foreground, upsampled): the coarse target averaged with alpha weights (a plain average of a
foreground that is 0 where alpha is 0 darkens every cell the outline crosses, most of all in
hair), and an L1 term on that upsampled colour over the pixels of partial alpha, where the
compositing equation turns a colour error into an alpha error. The third weighs the alpha error
of those pixels more: they are a few percent of a frame and carry most of a hairy subject's error
(wide manes and crowns answered solid), which the plain mean lets the network neglect.
"""

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


def premultiplied_down(fgr: torch.Tensor, pha: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``fgr`` resampled to ``size`` with alpha weights: the subject's colour in each cell, not its
    mix with the zeros outside it."""
    down = lambda x: F.interpolate(x, size, mode="bilinear", align_corners=False)  # noqa: E731
    return down(fgr * pha) / down(pha).clamp_min(1e-4)


def _partial(pha_gt: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """1 where the true alpha is strictly between 0 and 1 (edges, hair), else 0."""
    return ((pha_gt > 0) & (pha_gt < 1)).to(dtype)


def edge_fgr_term(fgr_sm: torch.Tensor, fgr_gt: torch.Tensor, pha_gt: torch.Tensor) -> torch.Tensor:
    """L1 of the coarse foreground, upsampled as the edge step reads it, over the partial-alpha pixels."""
    soft = _partial(pha_gt, fgr_sm.dtype)
    up = F.interpolate(fgr_sm, size=fgr_gt.shape[-2:], mode="bilinear", align_corners=False)
    return ((up - fgr_gt).abs() * soft).sum() / (3 * soft.sum()).clamp_min(1.0)


def soft_alpha_term(pha: torch.Tensor, pha_gt: torch.Tensor) -> torch.Tensor:
    """Alpha L1 over the partial-alpha pixels only, divided by all pixels: added with weight w, it
    counts their error (1 + w) times in the full-resolution alpha loss."""
    return ((pha - pha_gt).abs() * _partial(pha_gt, pha.dtype)).mean()


def refine_loss(
    outputs: tuple,
    pha_gt: torch.Tensor,
    fgr_gt: torch.Tensor,
    *,
    premultiplied_targets: bool = False,
    edge_fgr: float = 0.0,
    soft_alpha: float = 0.0,
) -> tuple[torch.Tensor, dict]:
    """Refined outputs at full resolution plus the coarse ones at the backbone's resolution."""
    pha, fgr, pha_sm, fgr_sm, err_sm, _ = outputs
    size = pha_sm.shape[-2:]
    pha_gt_sm = F.interpolate(pha_gt, size, mode="bilinear", align_corners=False)
    if premultiplied_targets:
        fgr_gt_sm = premultiplied_down(fgr_gt, pha_gt, size)
    else:
        fgr_gt_sm = F.interpolate(fgr_gt, size, mode="bilinear", align_corners=False)
    terms = matting_terms(pha, fgr, pha_gt, fgr_gt)
    coarse = matting_terms(pha_sm, fgr_sm, pha_gt_sm, fgr_gt_sm)
    terms.update({f"coarse_{k}": v for k, v in coarse.items()})
    terms["err_mse"] = error_term(err_sm, pha_sm, pha_gt_sm)
    if edge_fgr:
        terms["edge_fgr"] = edge_fgr * edge_fgr_term(fgr_sm, fgr_gt, pha_gt)
    if soft_alpha:
        terms["soft_alpha"] = soft_alpha * soft_alpha_term(pha, pha_gt)
    return sum(terms.values()), terms
