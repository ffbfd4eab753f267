"""The training losses' foreground options: alpha-weighted coarse targets and the partial-alpha term."""

from __future__ import annotations

import torch

from cleanplate.train.losses import edge_fgr_term, premultiplied_down, refine_loss, soft_alpha_term


def _edge_case() -> tuple[torch.Tensor, torch.Tensor]:
    """A red subject whose outline (and a band of partial alpha) crosses the working cells; the
    foreground is 0 where alpha is, as the data pipeline writes it."""
    pha = torch.zeros(1, 1, 16, 16)
    pha[..., :, :7] = 1.0
    pha[..., :, 7] = 0.5
    pha[..., :, 8] = 0.25  # the outline ends inside a working cell (columns 8-9 at factor 2)
    fgr = torch.zeros(1, 3, 16, 16)
    fgr[:, 0] = (pha[:, 0] > 0).float()
    return pha, fgr


def test_premultiplied_targets_keep_the_subjects_colour_in_cells_the_outline_crosses() -> None:
    pha, fgr = _edge_case()
    plain = torch.nn.functional.interpolate(fgr, (8, 8), mode="bilinear", align_corners=False)
    weighted = premultiplied_down(fgr, pha, (8, 8))
    inside = torch.nn.functional.interpolate(pha, (8, 8), mode="bilinear", align_corners=False) > 0
    cells = inside[0, 0]
    assert torch.allclose(weighted[0, 0][cells], torch.ones(int(cells.sum())), atol=1e-4)  # red, at full strength
    assert plain[0, 0][cells].min() < 0.8  # the plain average darkens the outline's cells


def _outputs(fgr_sm: torch.Tensor, pha: torch.Tensor) -> tuple:
    pha_sm = torch.nn.functional.interpolate(pha, fgr_sm.shape[-2:], mode="bilinear", align_corners=False)
    fgr_full = torch.nn.functional.interpolate(fgr_sm, pha.shape[-2:], mode="bilinear", align_corners=False)
    return pha, fgr_full, pha_sm, fgr_sm, torch.zeros_like(pha_sm), torch.zeros_like(pha_sm)


def test_edge_fgr_term_reads_only_partial_alpha_and_is_off_by_default() -> None:
    pha, fgr = _edge_case()
    right = torch.zeros(1, 3, 8, 8)
    right[:, 0] = 1.0  # the subject's red, carried past its outline (the coarse colour is free there)
    assert edge_fgr_term(right, fgr, pha) < 1e-6
    wrong = right.clone()
    wrong[:, 1] = 1.0  # green everywhere: every partial-alpha pixel is off by 1 in one channel of three
    assert abs(float(edge_fgr_term(wrong, fgr, pha)) - 1 / 3) < 1e-5
    interior_only = right.clone()
    interior_only[..., :2] = 0.0  # cells whose upsampled colour reaches no partial-alpha pixel
    assert torch.isclose(edge_fgr_term(interior_only, fgr, pha), edge_fgr_term(right, fgr, pha))
    _, terms = refine_loss(_outputs(right, pha), pha, fgr)
    assert "edge_fgr" not in terms
    total, terms = refine_loss(_outputs(wrong, pha), pha, fgr, premultiplied_targets=True, edge_fgr=0.5)
    assert abs(float(terms["edge_fgr"]) - 0.5 * float(edge_fgr_term(wrong, fgr, pha))) < 1e-6
    assert torch.isclose(total, sum(terms.values()))


def test_soft_alpha_term_counts_only_partial_alpha_pixels_and_is_off_by_default() -> None:
    pha, fgr = _edge_case()  # 16 of 256 pixels are 0.5, 16 are 0.25
    solid_wrong = pha.clone()
    solid_wrong[..., :, :7] = 0.0  # error only where the truth is solid
    assert float(soft_alpha_term(solid_wrong, pha)) == 0.0
    soft_wrong = pha.clone()
    soft_wrong[..., :, 7:9] = 1.0  # error 0.5 and 0.75 over the two partial columns
    assert abs(float(soft_alpha_term(soft_wrong, pha)) - (16 * 0.5 + 16 * 0.75) / 256) < 1e-6
    fine = torch.zeros(1, 3, 8, 8)
    outputs = (soft_wrong,) + _outputs(fine, pha)[1:]
    _, terms = refine_loss(outputs, pha, fgr)
    assert "soft_alpha" not in terms
    total, terms = refine_loss(outputs, pha, fgr, soft_alpha=2.0)
    assert torch.isclose(terms["soft_alpha"], 2.0 * soft_alpha_term(soft_wrong, pha))
    assert torch.isclose(total, sum(terms.values()))
