"""The classical difference keyer: a real baseline on a synthetic composite, and MattingRefine's interface."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from cleanplate.models.classical import ClassicalMatting, KeyerParams, fit_tone_curve, key_frame


def _scene(h: int = 160, w: int = 192, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(src, plate, alpha, fgr): a soft-edged disk subject on a textured background, both shots noisy."""
    rng = np.random.default_rng(seed)
    bg = cv2.GaussianBlur(rng.random((h, w, 3)).astype(np.float32), (0, 0), 3)
    bg = (bg - bg.min()) / (bg.max() - bg.min()) * 0.6 + 0.2  # blotchy texture in [0.2, 0.8]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.sqrt((yy - h / 2) ** 2 + (xx - w / 2) ** 2)
    alpha = np.clip(min(h, w) / 4 - r + 0.5, 0, 1).astype(np.float32)  # antialiased 1 px edge
    fgr = np.empty((h, w, 3), np.float32)
    fgr[:] = (0.85, 0.25, 0.3)
    fgr[..., 1] += 0.1 * np.sin(xx / 5)  # some texture on the subject too
    a = alpha[..., None]
    src = np.clip(a * fgr + (1 - a) * bg + rng.normal(0, 0.01, bg.shape), 0, 1).astype(np.float32)
    plate = np.clip(bg + rng.normal(0, 0.01, bg.shape), 0, 1).astype(np.float32)
    return src, plate, alpha, fgr


def _mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).mean())


def test_aligned_plate_gives_a_good_matte() -> None:
    src, plate, alpha, fgr = _scene()
    pred, fg, unc = key_frame(src, plate)
    trivial = _mad(np.zeros_like(alpha), alpha)  # ~0.16 of the frame is subject
    assert _mad(pred, alpha) < 0.01, _mad(pred, alpha)
    assert _mad(pred, alpha) < trivial / 15
    inside = alpha > 0.5
    assert np.abs(fg - fgr)[inside].mean() < 0.03
    assert unc.shape == alpha.shape and unc.min() >= 0 and unc.max() <= 1


def test_handheld_plate_is_registered_and_tone_matched() -> None:
    src, plate, alpha, _ = _scene(seed=1)
    h, w = alpha.shape
    m = cv2.getRotationMatrix2D((w / 2, h / 2), 0.5, 1.01)
    m[:, 2] += (2.5, -1.5)
    moved = cv2.warpAffine(plate, m, (w, h), borderMode=cv2.BORDER_REFLECT)
    moved = np.clip(moved * 1.08, 0, 1) ** 1.05  # exposure and gamma drift
    careful = _mad(key_frame(src, moved)[0], alpha)
    naive = _mad(key_frame(src, moved, KeyerParams(align=False, match_exposure=False))[0], alpha)
    assert careful < 0.03, careful
    assert careful < naive / 2, (careful, naive)


def test_tone_curve_recovers_a_gain_despite_the_subject() -> None:
    src, plate, alpha, _ = _scene(seed=2)
    darker = plate / 1.1
    lut = fit_tone_curve(src, darker)
    grid = np.linspace(0, 1, lut.shape[1])
    mid = (grid > 0.25) & (grid < 0.7)  # the range the background covers
    np.testing.assert_allclose(lut[:, mid], np.clip(grid[mid] * 1.1, 0, 1)[None].repeat(3, 0), atol=0.02)


def test_no_subject_gives_an_empty_matte() -> None:
    _, plate, _, _ = _scene(seed=3)
    rng = np.random.default_rng(4)
    src = np.clip(plate + rng.normal(0, 0.01, plate.shape), 0, 1).astype(np.float32)
    assert key_frame(src, plate)[0].mean() < 0.005


@pytest.mark.parametrize(("h", "w"), [(37, 53), (64, 48)])
def test_forward_has_mattingrefine_outputs_for_any_size(h: int, w: int) -> None:
    src, plate, alpha, _ = _scene(h, w)
    s = torch.from_numpy(src).permute(2, 0, 1)[None].repeat(2, 1, 1, 1)
    b = torch.from_numpy(plate).permute(2, 0, 1)[None].repeat(2, 1, 1, 1)
    pha, fgr, pha_sm, fgr_sm, err_sm, ref_sm = ClassicalMatting()(s, b)
    assert pha.shape == (2, 1, h, w) and fgr.shape == (2, 3, h, w)
    small = (h // 4, w // 4)
    assert pha_sm.shape == (2, 1, *small) and fgr_sm.shape == (2, 3, *small)
    assert err_sm.shape == (2, 1, *small) and ref_sm.shape == (2, 1, *small)
    assert not ref_sm.any()
    assert pha.min() >= 0 and pha.max() <= 1 and fgr.min() >= 0 and fgr.max() <= 1
    torch.testing.assert_close(pha[0], pha[1])  # each frame keyed on its own
    assert _mad(pha[0, 0].numpy(), alpha) < 0.05  # tiny frames still key


def test_constructor_takes_documented_parameters_only() -> None:
    assert ClassicalMatting(lo=0.02, align=False).params.lo == 0.02
    with pytest.raises(TypeError):
        ClassicalMatting(threshold=0.1)
    with pytest.raises(ValueError, match="shape"):
        ClassicalMatting()(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 9))


def test_loads_by_name() -> None:
    import cleanplate

    matter = cleanplate.load("classical", device="cpu")
    src, plate, alpha, _ = _scene()
    matte = matter.matte((src * 255).astype(np.uint8), (plate * 255).astype(np.uint8))
    assert _mad(matte.alpha, alpha) < 0.02


@pytest.mark.parametrize(("h", "w"), [(1, 1), (3, 5), (4, 200)])
def test_degenerate_sizes_do_not_crash(h: int, w: int) -> None:
    rng = np.random.default_rng(0)
    src, plate = rng.random((2, h, w, 3)).astype(np.float32)
    alpha, fgr, unc = key_frame(src, plate)
    assert alpha.shape == (h, w) and fgr.shape == (h, w, 3) and unc.shape == (h, w)
    assert np.isfinite(alpha).all() and np.isfinite(fgr).all()
