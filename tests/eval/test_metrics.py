"""Matting metrics against tiny cases computed by hand (the arithmetic is in the comments)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cleanplate.eval import metrics as M

# 3x3: the prediction misses a full pixel and a half pixel.
GT = np.array([[0, 1, 0], [0, 0.5, 0], [0, 0, 0]], dtype=np.float32)
ZERO = np.zeros((3, 3), np.float32)


def test_sad_mse_mad_by_hand() -> None:
    # |diff| = 1 + 0.5 = 1.5 over 9 px; squared = 1 + 0.25 = 1.25
    assert M.sad(ZERO, GT) == pytest.approx(1.5 / 1000)
    assert M.mad(ZERO, GT) == pytest.approx(1.5 / 9)
    assert M.mse(ZERO, GT) == pytest.approx(1.25 / 9)


def test_mask_counts_only_selected_pixels() -> None:
    centre = np.zeros((3, 3), bool)
    centre[1, 1] = True
    # only the 0.5 pixel counts: SAD 0.5/1000, MSE 0.25, MAD 0.5
    assert M.sad(ZERO, GT, centre) == pytest.approx(0.5 / 1000)
    assert M.mse(ZERO, GT, centre) == pytest.approx(0.25)
    assert M.mad(ZERO, GT, centre) == pytest.approx(0.5)
    assert M.mad(ZERO, GT, np.zeros((3, 3), bool)) == 0.0  # nothing counted, nothing wrong


def test_unknown_region_of_a_trimap() -> None:
    trimap = np.array([[0, 128, 255]], dtype=np.uint8)
    assert M.unknown_region(trimap).tolist() == [[False, True, False]]
    assert M.unknown_region(trimap / 255.0).tolist() == [[False, True, False]]


def test_gradient_kernel_size_and_norm() -> None:
    # half = ceil(1.4 * sqrt(-2 ln(sqrt(2 pi) * 1.4 * 0.01))) = ceil(1.4 * sqrt(6.6995)) = ceil(3.624) = 4 -> 9x9
    k = M.gaussian_gradient_kernel(1.4)
    assert k.shape == (9, 9)
    assert (k**2).sum() == pytest.approx(1.0)
    np.testing.assert_allclose(k, -k[:, ::-1], atol=1e-15)  # odd in x
    np.testing.assert_allclose(k, k[::-1, :], atol=1e-15)  # even in y


def test_gradient_of_a_ramp_by_hand() -> None:
    # gt(x) = c*x. Convolution: gx = sum_k K(k) * c * (x - kx) = -c * sum K(ky, kx) * kx  (sum K = 0), with
    # K = G(ky) * (-kx G(kx) / s^2) / n  ->  gx = c * sum_ky G(ky) * sum_kx kx^2 G(kx) / (s^2 n); gy = 0.
    s, c = 1.4, 0.01
    u = np.arange(-4, 5, dtype=np.float64)
    g = np.exp(-(u**2) / (2 * s * s)) / (s * math.sqrt(2 * math.pi))
    n = math.sqrt(((np.outer(g, -u * g / s**2)) ** 2).sum())
    expected_gx = c * g.sum() * (u * u * g).sum() / (s * s * n)
    h, w = 20, 30
    ramp = np.tile(np.arange(w) * c, (h, 1))
    gx, gy = M.gaussian_gradient(ramp)
    interior = (slice(5, -5), slice(5, -5))
    np.testing.assert_allclose(gx[interior], expected_gx, rtol=1e-9)
    np.testing.assert_allclose(gy[interior], 0.0, atol=1e-12)
    mask = np.zeros((h, w), bool)
    mask[interior] = True
    # pred = 0 has no gradient: error = sum over the 10x20 interior of gx^2, / 1000
    assert M.gradient_error(np.zeros((h, w)), ramp, mask) == pytest.approx(200 * expected_gx**2 / 1000, rel=1e-9)


def _block() -> np.ndarray:
    a = np.zeros((5, 5), np.float32)
    a[:2, :2] = 1.0  # a 2x2 subject in the corner
    return a


def test_connectivity_missing_blob_by_hand() -> None:
    gt = _block()
    gt[4, 4] = 1.0  # an isolated blob the prediction misses
    pred = _block()
    # the intersection at every threshold is the 2x2 block: l = 1 there, 0 elsewhere (dropped at t = 0.1).
    # blob: d_gt = 1 - 0 = 1 >= 0.15 -> phi_gt = 0; d_pred = 0 -> phi_pred = 1. error = 1 -> 1/1000
    assert M.connectivity_error(pred, gt) == pytest.approx(1 / 1000)


def test_connectivity_spurious_blob_by_hand() -> None:
    gt = _block()
    pred = _block()
    pred[4, 4] = 0.6
    # blob: l = 0, d_pred = 0.6 -> phi_pred = 0.4; d_gt = 0 -> phi_gt = 1. error = 0.6 -> 0.6/1000
    assert M.connectivity_error(pred, gt) == pytest.approx(0.6 / 1000)
    assert M.connectivity_error(gt, pred) == pytest.approx(0.6 / 1000)  # symmetric


def test_connectivity_weak_pixel_inside_by_hand() -> None:
    gt = _block()
    pred = _block()
    pred[1, 1] = 0.35
    # (1,1) leaves the intersection at t = 0.4 -> l = 0.3. d_pred = 0.05 < 0.15 -> phi_pred = 1;
    # d_gt = 0.7 -> phi_gt = 0.3. error = 0.7 -> 0.7/1000
    assert M.connectivity_error(pred, gt) == pytest.approx(0.7 / 1000)


def test_foreground_mse_by_hand() -> None:
    pha = np.array([[0.0, 1.0], [0.5, 0.0]], np.float32)
    gt = np.zeros((2, 2, 3), np.float32)
    pred = gt.copy()
    pred[0, 1] += 0.1  # alpha 1: counts, squared error 0.01
    pred[1, 0] += 0.2  # alpha 0.5: counts, 0.04
    pred[0, 0] += 1.0  # alpha 0: colour undefined, ignored
    assert M.foreground_mse(pred, gt, pha) == pytest.approx((0.01 + 0.04) / 2)


@pytest.mark.parametrize("name", list(M.METRICS))
def test_perfect_prediction_scores_zero_and_metrics_are_symmetric(name: str) -> None:
    rng = np.random.default_rng(0)
    gt = np.clip(rng.normal(0.5, 0.4, (24, 24)), 0, 1)
    pred = np.clip(gt + rng.normal(0, 0.1, gt.shape), 0, 1)
    fn = M.METRICS[name]
    assert fn(gt, gt) == 0.0
    assert fn(pred, gt) > 0.0
    assert fn(pred, gt) == pytest.approx(fn(gt, pred))


@pytest.mark.parametrize("name", ["sad", "mse", "mad", "grad"])
def test_error_grows_with_the_deviation(name: str) -> None:
    yy, xx = np.mgrid[0:32, 0:32]
    gt = ((yy - 16) ** 2 + (xx - 16) ** 2 < 100).astype(np.float64)
    bump = np.random.default_rng(1).normal(0, 1, gt.shape)
    scores = [M.METRICS[name](gt + k * bump, gt) for k in (0.01, 0.05, 0.2)]
    assert scores[0] < scores[1] < scores[2]


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="shape"):
        M.sad(np.zeros((3, 3)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="mask"):
        M.mad(np.zeros((3, 3)), np.zeros((3, 3)), np.zeros((2, 2)))


def test_edge_band_covers_boundary_and_soft_alpha_only() -> None:
    pha = np.zeros((40, 40), np.float32)
    pha[10:30, 10:30] = 1.0
    pha[5, 5] = 0.5  # an isolated soft pixel (a hair)
    band = M.edge_band(pha, radius=2)
    assert band[10, 20] and band[9, 20] and band[11, 20]  # around the edge
    assert not band[20, 20]  # deep inside
    assert not band[38, 38]  # far background
    assert band[5, 5] and band[6, 6]


def test_edge_foreground_mse_weights_by_alpha_in_the_band() -> None:
    pha = np.zeros((40, 40), np.float32)
    pha[10:30, 10:30] = 1.0
    gt = np.zeros((40, 40, 3), np.float32)
    pred = gt.copy()
    pred[20, 20] = 1.0  # interior error: outside the band, ignored
    assert M.edge_foreground_mse(pred, gt, pha, radius=2) == 0.0
    pred[10, 20] = 0.3  # on the edge, alpha 1: counts
    band_weight = (pha * M.edge_band(pha, radius=2)).sum()
    assert M.edge_foreground_mse(pred, gt, pha, radius=2) == pytest.approx(0.09 / band_weight)
    pred[9, 20] = 1.0  # in the band but alpha 0: a colour there never shows
    assert M.edge_foreground_mse(pred, gt, pha, radius=2) == pytest.approx(0.09 / band_weight)
    assert M.edge_foreground_mse(pred, gt, np.zeros_like(pha)) == 0.0
