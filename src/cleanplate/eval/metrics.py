"""Matting error metrics as defined by the alphamatting.com benchmark (Rhemann et al., CVPR 2009).

All functions are pure numpy. ``pred`` and ``gt`` are alpha mattes, float HxW in [0, 1] (not 0..255:
the benchmark's MATLAB code divides by 255 first, we expect that done). ``mask`` selects the pixels
that count (the trimap's unknown region in the benchmark; ``None`` means the whole image); any
non-zero value counts.

Units, as the matting literature reports them:

- :func:`sad`, :func:`gradient_error` and :func:`connectivity_error` are *sums* over the counted
  pixels, returned divided by 1000 (the customary scale, e.g. "SAD 12.3").
- :func:`mse`, :func:`mad` and :func:`foreground_mse` are *means* over the counted pixels, returned
  as is (tables usually print them multiplied by 1000).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

__all__ = [
    "METRICS",
    "connectivity_error",
    "edge_band",
    "edge_foreground_mse",
    "foreground_mse",
    "gaussian_gradient",
    "gaussian_gradient_kernel",
    "gradient_error",
    "mad",
    "mse",
    "sad",
    "unknown_region",
]


def _pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in shape")
    return pred, gt


def _weights(mask: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    """The mask as 0/1 float64 of ``shape`` (broadcast over trailing channels), or None for all pixels."""
    if mask is None:
        return None
    m = np.asarray(mask) != 0
    if m.shape != shape[: m.ndim]:
        raise ValueError(f"mask {m.shape} does not match image {shape}")
    while m.ndim < len(shape):
        m = m[..., None]
    return np.broadcast_to(m, shape).astype(np.float64)


def _masked_sum(values: np.ndarray, mask: np.ndarray | None) -> float:
    w = _weights(mask, values.shape)
    return float(values.sum() if w is None else (values * w).sum())


def _masked_mean(values: np.ndarray, mask: np.ndarray | None) -> float:
    """Mean over counted pixels; 0.0 when the mask counts none (nothing to get wrong)."""
    w = _weights(mask, values.shape)
    if w is None:
        return float(values.mean()) if values.size else 0.0
    n = w.sum()
    return float((values * w).sum() / n) if n else 0.0


def unknown_region(trimap: np.ndarray) -> np.ndarray:
    """The unknown region of a trimap (uint8 0/128/255 or float 0/0.5/1): neither sure background nor foreground."""
    t = np.asarray(trimap, dtype=np.float64)
    if t.max(initial=0.0) > 1.0:
        t = t / 255.0
    return (t > 0.01) & (t < 0.99)


def sad(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Sum of absolute differences, divided by 1000."""
    pred, gt = _pair(pred, gt)
    return _masked_sum(np.abs(pred - gt), mask) / 1000.0


def mse(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean squared error over the counted pixels."""
    pred, gt = _pair(pred, gt)
    return _masked_mean((pred - gt) ** 2, mask)


def mad(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean absolute difference over the counted pixels."""
    pred, gt = _pair(pred, gt)
    return _masked_mean(np.abs(pred - gt), mask)


def gaussian_gradient_kernel(sigma: float = 1.4, epsilon: float = 1e-2) -> np.ndarray:
    """The x-derivative kernel of the benchmark: Gaussian along y times its first derivative along x.

    The half-size is where the Gaussian falls below ``epsilon`` of its peak density (4 for sigma 1.4,
    so 9x9), and the kernel is scaled to unit L2 norm. The y kernel is its transpose.
    """
    half = math.ceil(sigma * math.sqrt(-2.0 * math.log(math.sqrt(2.0 * math.pi) * sigma * epsilon)))
    u = np.arange(-half, half + 1, dtype=np.float64)
    gauss = np.exp(-(u**2) / (2 * sigma**2)) / (sigma * math.sqrt(2 * math.pi))
    dgauss = -u * gauss / sigma**2
    kernel = np.outer(gauss, dgauss)  # rows: y (smoothing), columns: x (derivative)
    return kernel / math.sqrt((kernel**2).sum())


def gaussian_gradient(image: np.ndarray, sigma: float = 1.4) -> tuple[np.ndarray, np.ndarray]:
    """(gx, gy) of ``image`` by first-order Gaussian derivative filters, replicated borders.

    Convolution, as MATLAB's ``imfilter(..., 'conv')``: the sign matches d/dx, and the magnitude is
    what the metric uses anyway.
    """
    kx = gaussian_gradient_kernel(sigma)
    img = np.asarray(image, dtype=np.float64)
    # filter2D correlates; flipping the kernel makes it a convolution.
    gx = cv2.filter2D(img, cv2.CV_64F, kx[::-1, ::-1].copy(), borderType=cv2.BORDER_REPLICATE)
    gy = cv2.filter2D(img, cv2.CV_64F, kx.T[::-1, ::-1].copy(), borderType=cv2.BORDER_REPLICATE)
    return gx, gy


def gradient_error(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None, sigma: float = 1.4) -> float:
    """Sum of squared differences of gradient magnitudes, divided by 1000.

    Penalises mattes whose edges are blurrier or noisier than the truth, which SAD barely sees.
    """
    pred, gt = _pair(pred, gt)
    pmag = np.hypot(*gaussian_gradient(pred, sigma))
    gmag = np.hypot(*gaussian_gradient(gt, sigma))
    return _masked_sum((pmag - gmag) ** 2, mask) / 1000.0


def _largest_component(binary: np.ndarray) -> np.ndarray:
    """The largest 4-connected component of ``binary`` (all False when it is empty)."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary.astype(np.uint8), connectivity=4)
    if count <= 1:
        return np.zeros(binary.shape, dtype=bool)
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return labels == biggest


def connectivity_error(
    pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None, step: float = 0.1, theta: float = 0.15
) -> float:
    """Connectivity error, divided by 1000: how much alpha sits in blobs cut off from the main subject.

    For thresholds t = step, 2*step, ..., 1, the largest 4-connected component of
    ``(pred >= t) & (gt >= t)`` is the part still connected to the subject; a pixel's level ``l`` is
    the last threshold before it dropped out of that component (1 if it never does). With
    ``d = alpha - l``, ``phi = 1 - d * (d >= theta)``; the error sums ``|phi_pred - phi_gt|``.
    """
    pred, gt = _pair(pred, gt)
    steps = int(round(1.0 / step))
    level = np.full(pred.shape, -1.0)
    for i in range(1, steps + 1):
        t = i / steps  # i/10 is exactly the double nearest 0.i, unlike i*0.1
        connected = _largest_component((pred >= t) & (gt >= t))
        level[(level == -1) & ~connected] = (i - 1) / steps
    level[level == -1] = 1.0
    d_pred = pred - level
    d_gt = gt - level
    phi_pred = 1.0 - d_pred * (d_pred >= theta)
    phi_gt = 1.0 - d_gt * (d_gt >= theta)
    return _masked_sum(np.abs(phi_pred - phi_gt), mask) / 1000.0


def foreground_mse(
    pred_fgr: np.ndarray, gt_fgr: np.ndarray, gt_pha: np.ndarray, mask: np.ndarray | None = None
) -> float:
    """Mean squared foreground-colour error (HxWx3 in [0, 1]) over pixels where the true alpha is > 0.

    Where alpha is 0 the foreground colour is undefined, so those pixels never count; ``mask``
    restricts further.
    """
    pred_fgr, gt_fgr = _pair(pred_fgr, gt_fgr)
    where = np.asarray(gt_pha) > 0
    if mask is not None:
        where &= np.asarray(mask) != 0
    return _masked_mean((pred_fgr - gt_fgr) ** 2, where)


def edge_band(gt_pha: np.ndarray, radius: int = 6) -> np.ndarray:
    """Pixels within ``radius`` px of the subject's boundary or soft alpha (bool HxW).

    Where hair, fur and edges are: the old background shows through there, and a halo of it in
    the predicted foreground is what a composite over a new colour gives away.
    """
    gt = np.asarray(gt_pha, dtype=np.float32)
    soft = ((gt > 0.01) & (gt < 0.99)).astype(np.uint8)
    hard = (gt > 0.5).astype(np.uint8)
    size = 2 * radius + 1
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    boundary = cv2.dilate(hard, kernel) != cv2.erode(hard, kernel)
    return boundary | (cv2.dilate(soft, kernel) > 0)


def edge_foreground_mse(pred_fgr: np.ndarray, gt_fgr: np.ndarray, gt_pha: np.ndarray, radius: int = 6) -> float:
    """Alpha-weighted squared foreground error in the :func:`edge_band`: sum a (F - F_gt)^2 / sum a.

    Weighted by the true alpha because a pixel's colour counts in a composite as much as it is
    opaque; 0.0 when the band holds no foreground.
    """
    pred_fgr, gt_fgr = _pair(pred_fgr, gt_fgr)
    a = np.asarray(gt_pha, dtype=np.float64) * edge_band(gt_pha, radius)
    total = a.sum()
    if total <= 0:
        return 0.0
    return float((((pred_fgr - gt_fgr) ** 2).mean(axis=-1) * a).sum() / total)


# name -> function(pred, gt, mask) for the alpha metrics, in the order tables print them
METRICS = {"sad": sad, "mse": mse, "mad": mad, "grad": gradient_error, "conn": connectivity_error}
