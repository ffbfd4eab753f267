"""A careful classical difference keyer: the baseline every trained network must clearly beat.

No learning. Per frame, against its clean plate:

1. **Registration** (``align``): ORB features + RANSAC give an affine warp of the plate onto the
   frame; ECC then refines it on background pixels only (both from :mod:`cleanplate.plate.geometry`,
   which every alignment in cleanplate shares). A warp must pass its plausibility checks and line
   the background up better than the plate as it is; one that moves nothing by more than a quarter
   pixel is dropped, so aligned plates are used untouched.
2. **Tone match** (``match_exposure``): a per-channel quadratic curve maps plate colours to frame
   colours, fitted by robust (Tukey) regression over background pixels. It absorbs exposure, gamma
   and white-balance drift between the two shots.
3. **Colour distance** in an opponent space (luma weighted by ``luma_weight``), after blurring the
   sharper of frame and plate to the other's focus (``match_blur``), lightly denoised, and taken
   as the minimum over plate pixels within ``search_radius`` (sub-pixel to 1 px residual drift).
4. **Soft threshold**: distance below ``lo`` is background, above ``hi`` foreground, smoothstep in
   between. ``lo`` rises to ``noise_factor`` times the measured background distance on noisy
   footage, and, per pixel, with the plate's local gradient times how much background edges still
   light up (``edge_tolerance``: residual misalignment shows only at edges). Blobs smaller than
   ``min_blob`` of the frame are dropped and enclosed holes smaller than ``max_hole`` filled.
5. **Edges**: near the boundary the matte is re-estimated from the compositing equation,
   ``alpha = <I - B, F - B> / |F - B|^2``, with B the (matched) plate and F the subject's colour
   propagated from the sure-foreground interior (push-pull fill). That recovers fractional alpha
   (hair, motion blur) that a threshold cannot. A guided filter with the frame as guide feathers it.
6. **Foreground colour**: solve ``I = aF + (1-a)B`` for F per pixel, regularised towards the
   propagated interior colour where alpha is small and the division would amplify noise.

``forward(src, bgr)`` takes and returns what :class:`~cleanplate.models.MattingRefine` does, so it
drops into every pipeline: ``(pha, fgr, pha_sm, fgr_sm, err_sm, ref_sm)``, any H and W.

One module of ~580 lines on purpose: it is one algorithm, read top to bottom in the six steps
above; what is not specific to it (features, fits, plausibility checks, warping) is
:mod:`cleanplate.plate.geometry`'s.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import nn

from ..plate import geometry as geo

__all__ = ["ClassicalMatting", "KeyerParams", "key_frame"]


@dataclass(frozen=True)
class KeyerParams:
    """Knobs of :func:`key_frame`; distances are in RGB units (0..1 per channel)."""

    lo: float = 0.012
    hi: float = 0.04
    noise_factor: float = 2.0
    luma_weight: float = 1.0
    search_radius: int = 1
    denoise_sigma: float = 0.8
    match_blur: bool = True
    edge_tolerance: float = 1.0
    align: bool = True
    match_exposure: bool = True
    min_blob: float = 1e-3
    max_hole: float = 1e-3
    edge_projection: bool = True
    edge_band: int = 3
    min_contrast: float = 0.08
    max_residual: float = 0.08
    guided_radius: int = 0
    guided_eps: float = 1e-4
    fg_prior: float = 0.02


# ---------------------------------------------------------------------------------------------
# small pure helpers


def _gray8(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor((np.clip(rgb, 0, 1) * 255).astype(np.uint8), cv2.COLOR_RGB2GRAY)


def _downscale(img: np.ndarray, long_side: int) -> tuple[np.ndarray, float]:
    h, w = img.shape[:2]
    s = min(1.0, long_side / max(h, w))
    if s >= 1.0:
        return img, 1.0
    return cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA), s


def _smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    t = np.clip((x - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _smoothstep_map(x: np.ndarray, lo: np.ndarray | float, hi: np.ndarray | float) -> np.ndarray:
    t = np.clip((x - lo) / np.maximum(hi - lo, 1e-6), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _warp(plate: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Plate resampled so that frame pixel x shows plate pixel m @ x (affine, replicated border)."""
    return geo.warp(plate, m, plate.shape[:2], inverse=True)


IDENTITY = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


# ---------------------------------------------------------------------------------------------
# 1. registration


# A plate shifted by up to this fraction of the long side is registered (align=True; measured on the
# vtest sample at 768 px: 1 %, 3 %, 5 % and 10 % shifts recovered within 0.2 px; _register refuses 15 %).
RECOVERED_SHIFT = 0.1
N_FEATURES = 1500
RESIDUAL_SIDE = 512  # a warp is judged against the plain plate on grey copies no larger than this


def feature_warp(src: np.ndarray, plate: np.ndarray, long_side: int = 768) -> np.ndarray | None:
    """Affine map from frame to plate coordinates by ORB matches + RANSAC, or None when unsure.

    The subject occludes part of the scene; its features find no partner in the plate or are
    rejected as outliers, so the fit follows the background. A fit that is no plausible camera
    move (:func:`cleanplate.plate.geometry.implausible`), or that lines the background up no
    better than the plate as it is, is refused: registration never makes an aligned plate worse.
    """
    if min(src.shape[:2]) < 48:  # too small for features to say anything
        return None
    g_src, s = _downscale(_gray8(src), long_side)
    g_plate, _ = _downscale(_gray8(plate), long_side)
    found_src, found_plate = geo.orb(g_src, N_FEATURES), geo.orb(g_plate, N_FEATURES)
    if min(len(found_src), len(found_plate)) < geo.MIN_INLIERS:
        return None
    pts_src, pts_plate = geo.match(found_src, found_plate)
    if len(pts_src) < geo.MIN_INLIERS:
        return None
    fit = geo.fit_affine(pts_src, pts_plate, 1.5)
    if fit is None or not fit.trusted() or geo.implausible(fit.warp, g_src.shape[:2]):
        return None
    m = fit.warp[:2].copy()
    m[:, 2] /= s
    return m if _improves(src, plate, m) else None


def _improves(src: np.ndarray, plate: np.ndarray, m: np.ndarray, background: np.ndarray | None = None) -> bool:
    """True when the plate warped by ``m`` lines the background (where ``background``) up better than as it is."""
    g_src, s = _downscale(_gray8(src), RESIDUAL_SIDE)
    g_plate, _ = _downscale(_gray8(plate), RESIDUAL_SIDE)
    small = m.copy()
    small[:, 2] *= s
    mask = None
    if background is not None:
        mask, _ = _downscale(background.astype(np.uint8) * 255, RESIDUAL_SIDE)
        mask = mask > 127
        if mask.sum() < 100:
            mask = None
    warped = geo.warp(g_plate, small, g_plate.shape[:2], inverse=True)
    # invariant: the plate's exposure is matched only after registration
    before = geo.trimmed_residual(g_plate, g_src, mask, invariant=True)
    return geo.trimmed_residual(warped, g_src, mask, invariant=True) < before


def ecc_refine(
    src: np.ndarray, plate: np.ndarray, m: np.ndarray, background: np.ndarray | None, long_side: int = 512
) -> np.ndarray | None:
    """Refine the affine map ``m`` by ECC (invariant to gain/offset) on background pixels only."""
    if min(src.shape[:2]) < 32:
        return None
    g_src, s = _downscale(_gray8(src).astype(np.float32), long_side)
    g_plate, _ = _downscale(_gray8(plate).astype(np.float32), long_side)
    warp = m.astype(np.float32).copy()
    warp[:, 2] *= s
    mask = None
    if background is not None:
        mask, _ = _downscale(background.astype(np.uint8) * 255, long_side)
        mask = (mask > 127).astype(np.uint8)
        if mask.mean() < 0.2:
            return None
    found = geo.ecc(g_src, g_plate, warp, cv2.MOTION_AFFINE, mask=mask, iterations=40, eps=1e-5, gauss=5)
    if found is None:
        return None
    warp = found[1].astype(np.float64)
    warp[:, 2] /= s
    return warp


# ---------------------------------------------------------------------------------------------
# 2. tone match


def fit_tone_curve(
    src: np.ndarray, plate: np.ndarray, weight: np.ndarray | None = None, max_samples: int = 60000, iters: int = 6
) -> np.ndarray:
    """Per-channel look-up table (3, 256) mapping plate values to frame values.

    A quadratic ``c0 + c1 p + c2 p^2`` per channel, fitted by Tukey-weighted least squares started
    at the identity, so subject pixels (large residuals) drop out; ``weight`` (HxW, 0..1) marks
    pixels believed to be background. The curve is trusted only over the plate values it saw and
    continued linearly beyond them; a fit that is not monotone or strays far from the identity is
    replaced by the identity (the plate shows another scene, not a drift).
    """
    h, w = src.shape[:2]
    step = max(1, int(np.sqrt(h * w / max_samples)))
    s = src[::step, ::step].reshape(-1, 3).astype(np.float64)
    p = plate[::step, ::step].reshape(-1, 3).astype(np.float64)
    prior = np.ones(len(s)) if weight is None else weight[::step, ::step].reshape(-1).astype(np.float64)
    grid = np.linspace(0.0, 1.0, 256)
    luts = np.tile(grid, (3, 1))
    for c in range(3):
        x, y = p[:, c], s[:, c]
        design = np.stack([np.ones_like(x), x, x * x], axis=1)
        beta = np.array([0.0, 1.0, 0.0])
        wts = prior
        for _ in range(iters):
            r = y - design @ beta
            core = np.abs(r[prior > 0.5]) if (prior > 0.5).sum() > 100 else np.abs(r)
            scale = float(np.clip(4.685 * 1.4826 * np.median(core), 0.03, 0.15))
            u = r / scale
            wts = prior * np.where(np.abs(u) < 1, (1 - u * u) ** 2, 0.0)
            if wts.sum() < 100:
                break
            dw = design * wts[:, None]
            beta = np.linalg.solve(dw.T @ design + 1e-6 * np.eye(3), dw.T @ y)
        used = x[wts > 0.1]
        if used.size < 100:
            continue
        lo, hi = np.quantile(used, [0.005, 0.995])
        if hi - lo < 0.05:  # too narrow a range to tell a curve from noise: gain and offset only
            lo, hi = max(0.0, lo - 0.1), min(1.0, hi + 0.1)
            beta[2] = 0.0
        inside = (grid >= lo) & (grid <= hi)
        curve = beta[0] + beta[1] * grid + beta[2] * grid * grid
        slope_lo = beta[1] + 2 * beta[2] * lo
        slope_hi = beta[1] + 2 * beta[2] * hi
        f_lo = beta[0] + beta[1] * lo + beta[2] * lo * lo
        f_hi = beta[0] + beta[1] * hi + beta[2] * hi * hi
        curve = np.where(
            grid < lo, f_lo + slope_lo * (grid - lo), np.where(grid > hi, f_hi + slope_hi * (grid - hi), curve)
        )
        if np.all(np.diff(curve[inside]) > 0) and min(slope_lo, slope_hi) > 0 and np.abs(curve - grid).max() < 0.35:
            luts[c] = curve
    return luts


def apply_tone_curve(plate: np.ndarray, luts: np.ndarray) -> np.ndarray:
    grid = np.linspace(0.0, 1.0, luts.shape[1])
    out = np.stack([np.interp(plate[..., c], grid, luts[c]) for c in range(3)], axis=-1)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# 3. distance


def _opponent(rgb: np.ndarray, luma_weight: float) -> np.ndarray:
    """Luma (scaled by ``luma_weight``) and two colour-difference axes; RGB-like units."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    return np.stack([luma_weight * y, 0.7 * (b - y), 0.7 * (r - y)], axis=-1).astype(np.float32)


def colour_distance(
    src: np.ndarray, plate: np.ndarray, luma_weight: float = 0.6, search_radius: int = 1, denoise_sigma: float = 0.8
) -> np.ndarray:
    """Per-pixel distance of frame to plate, minimised over plate pixels within ``search_radius``."""
    a = _opponent(src, luma_weight)
    b = _opponent(plate, luma_weight)
    if denoise_sigma > 0:
        a = cv2.GaussianBlur(a, (0, 0), denoise_sigma)
        b = cv2.GaussianBlur(b, (0, 0), denoise_sigma)
    h, w = a.shape[:2]
    r = max(0, int(search_radius))
    padded = cv2.copyMakeBorder(b, r, r, r, r, cv2.BORDER_REPLICATE) if r else b
    best = None
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            if dx * dx + dy * dy > r * r + r:  # round neighbourhood for r >= 2
                continue
            shifted = padded[r + dy : r + dy + h, r + dx : r + dx + w]
            d = np.square(a - shifted).sum(axis=-1)
            best = d if best is None else np.minimum(best, d)
    return np.sqrt(best)


def relative_blur(src: np.ndarray, plate: np.ndarray, background: np.ndarray | None) -> float:
    """Extra Gaussian blur (sigma, px) of the plate over the frame (> 0) or of the frame over the plate (< 0).

    Plates shot at another moment differ in focus, motion blur and compression; blurring the
    sharper of the two to match before differencing stops textured background from lighting up.
    Judged on the background's strongest edges, where blur shows and noise matters least.
    """
    g_src = cv2.cvtColor(src, cv2.COLOR_RGB2GRAY)
    g_plate = cv2.cvtColor(plate, cv2.COLOR_RGB2GRAY)
    mask = np.ones(g_src.shape, bool) if background is None or background.sum() < 100 else background
    edges = gradient_magnitude(cv2.GaussianBlur(g_plate, (0, 0), 1.0))
    if mask.sum() < 100:
        return 0.0
    strong = mask & (edges > max(float(np.quantile(edges[mask], 0.9)), 0.02))
    if strong.sum() < 50:
        return 0.0

    best, best_err = 0.0, np.inf
    for sigma in (0.0, 0.5, 0.8, 1.1, 1.4, 1.8, -0.5, -0.8, -1.1, -1.4, -1.8):
        a = _blur(g_src, sigma) if sigma > 0 else g_src
        b = _blur(g_plate, -sigma) if sigma < 0 else g_plate
        err = float(np.abs(a - b)[strong].mean())
        if err < best_err * 0.97:  # prefer less blur unless clearly better
            best, best_err = sigma, err
    return best


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(img, (0, 0), sigma) if sigma > 0 else img


def gradient_magnitude(img: np.ndarray) -> np.ndarray:
    """Largest per-channel Sobel gradient magnitude (per px, same units as the image)."""
    gx = cv2.Sobel(img, cv2.CV_32F, 1, 0, ksize=3) / 8.0
    gy = cv2.Sobel(img, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    mag = np.sqrt(gx * gx + gy * gy)
    return mag.max(axis=-1) if mag.ndim == 3 else mag


def edge_slack(distance: np.ndarray, grad: np.ndarray, background: np.ndarray) -> float:
    """How much distance background edges show per unit plate gradient (residual misalignment, blur)."""
    if background.sum() < 1000:
        return 0.0
    g, d = grad[background], distance[background]
    strong = g > max(np.quantile(g, 0.8), 0.01)
    if strong.sum() < 100:
        return 0.0
    excess = np.maximum(d[strong] - np.median(d), 0.0) / g[strong]
    return float(np.quantile(excess, 0.9))


def noise_level(distance: np.ndarray, background: np.ndarray | None = None) -> float:
    """Median distance over (believed) background pixels: how far the plate misses by noise alone."""
    d = distance if background is None or background.sum() < 100 else distance[background]
    return float(np.median(d)) if d.size else 0.0


# ---------------------------------------------------------------------------------------------
# 4. cleanup


def remove_specks(
    alpha: np.ndarray,
    min_area: int,
    max_hole: int,
    distance: np.ndarray | None = None,
    noise: float = 0.0,
) -> np.ndarray:
    """Drop foreground blobs smaller than ``min_area`` px; fill enclosed holes smaller than ``max_hole`` px.

    With ``distance`` given, a hole is filled only if it does not look like the plate (its mean
    distance exceeds twice the ``noise`` level): gaps between leaves or strands show the plate
    exactly and stay open, subject colours that merely resemble the background get filled.
    """
    out = alpha.copy()
    if min_area > 0:
        fg = (alpha > 0.5).astype(np.uint8)
        support = (alpha > 0.05).astype(np.uint8)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(support, connectivity=8)
        if n > 1:
            core = np.bincount(labels.ravel(), weights=fg.ravel(), minlength=n)
            small = (stats[:, cv2.CC_STAT_AREA] < min_area) | (core < min_area / 4)
            small[0] = False
            out[small[labels]] = 0.0
    if max_hole > 0:
        bg = (out < 0.5).astype(np.uint8)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(bg, connectivity=4)
        if n > 1:
            h, w = alpha.shape
            x, y, bw, bh = (stats[:, i] for i in range(4))
            touches = (x == 0) | (y == 0) | (x + bw == w) | (y + bh == h)
            hole = (stats[:, cv2.CC_STAT_AREA] < max_hole) & ~touches
            if distance is not None:
                area = np.maximum(stats[:, cv2.CC_STAT_AREA], 1)
                mean_d = np.bincount(labels.ravel(), weights=distance.ravel(), minlength=n) / area
                hole &= mean_d > 2.0 * noise
            hole[0] = False
            out[hole[labels]] = 1.0
    return out


# ---------------------------------------------------------------------------------------------
# 5./6. edges and foreground


def push_pull_fill(values: np.ndarray, weight: np.ndarray, levels: int = 10) -> np.ndarray:
    """Fill ``values`` (HxWxC) everywhere from the pixels where ``weight`` > 0, nearest-first.

    Weighted averages on an image pyramid: each pixel takes the finest level at which enough
    known pixels surround it, so colours spread from the subject's interior to its edges.
    """
    num = [values * weight[..., None]]
    den = [weight.astype(np.float32)]
    for _ in range(levels):
        if min(den[-1].shape[:2]) < 4:
            break
        num.append(cv2.pyrDown(num[-1]))
        den.append(cv2.pyrDown(den[-1]))
    total = den[-1].sum()
    fill = (num[-1].reshape(-1, values.shape[2]).sum(0) / total) if total > 0 else np.full(values.shape[2], 0.5)
    est = np.broadcast_to(fill, num[-1].shape).astype(np.float32)
    for k in range(len(num) - 1, -1, -1):
        if k < len(num) - 1:
            h, w = num[k].shape[:2]
            est = cv2.pyrUp(est, dstsize=(w, h))
        d = den[k]
        conf = np.clip(d * 4.0, 0.0, 1.0)[..., None]
        local = num[k] / np.maximum(d, 1e-6)[..., None]
        est = (conf * local + (1 - conf) * est).astype(np.float32)
    return est


def edge_alpha(
    src: np.ndarray, plate: np.ndarray, colour: np.ndarray, min_contrast: float, max_residual: float
) -> tuple[np.ndarray, np.ndarray]:
    """Alpha from the compositing equation and how far to trust it.

    Trusted where subject and plate colours differ enough (``min_contrast``) and the pixel really
    lies on the line between them (residual below ``max_residual``): subject texture that the
    propagated colour does not predict is off that line and keeps the thresholded alpha.
    """
    fb = colour - plate
    ib = src - plate
    norm2 = np.square(fb).sum(-1)
    a = np.clip((ib * fb).sum(-1) / np.maximum(norm2, 1e-6), 0.0, 1.0)
    residual = np.sqrt(np.square(ib - a[..., None] * fb).sum(-1))
    trust = _smoothstep(np.sqrt(norm2), 0.5 * min_contrast, 1.5 * min_contrast)
    trust *= 1.0 - _smoothstep(residual, 0.5 * max_residual, max_residual)
    return a, trust


def solve_foreground(
    src: np.ndarray, plate: np.ndarray, alpha: np.ndarray, colour: np.ndarray, prior: float
) -> np.ndarray:
    """F from ``I = aF + (1-a)B``, pulled towards ``colour`` where alpha is small (MAP, Gaussian prior)."""
    a = alpha[..., None]
    f = (a * (src - (1 - a) * plate) + prior * colour) / (a * a + prior)
    return np.clip(f, 0.0, 1.0).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# the whole keyer


def _register(src: np.ndarray, plate: np.ndarray, background: np.ndarray | None, m0: np.ndarray | None):
    h, w = src.shape[:2]
    start = IDENTITY if m0 is None else m0
    m = ecc_refine(src, plate, start, background)
    if m is None or geo.implausible(m, (h, w)) or not _improves(src, plate, m, background):
        m = m0
    if m is None or geo.corner_shift(m, (h, w)) > 0.15 * max(h, w):
        return None
    return m


def key_frame(src: np.ndarray, plate: np.ndarray, p: KeyerParams | None = None) -> tuple[np.ndarray, ...]:
    """Matte one frame: ``src``/``plate`` float32 HxWx3 in [0, 1] → (alpha HxW, fgr HxWx3, uncertainty HxW)."""
    p = p or KeyerParams()
    src = np.ascontiguousarray(src, dtype=np.float32)
    plate = np.ascontiguousarray(plate, dtype=np.float32)
    h, w = src.shape[:2]
    area = h * w
    scale = max(h, w) / 1024.0

    def threshold(plate_now: np.ndarray, bg_hint: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        frame = src
        if p.match_blur:
            sigma = relative_blur(src, plate_now, bg_hint)
            frame, plate_now = _blur(src, sigma), _blur(plate_now, -sigma)
        d = colour_distance(frame, plate_now, p.luma_weight, p.search_radius, p.denoise_sigma)
        bg = bg_hint if bg_hint is not None else d < np.quantile(d, 0.5)
        lo = max(p.lo, p.noise_factor * noise_level(d, bg))
        lo_map: np.ndarray | float = lo
        if p.edge_tolerance > 0:
            grad = gradient_magnitude(_opponent(_blur(plate_now, p.denoise_sigma), p.luma_weight))
            lo_map = lo + np.minimum(p.edge_tolerance * edge_slack(d, grad, bg) * grad, 0.2)
        return _smoothstep_map(d, lo_map, lo_map + max(p.hi - p.lo, 1e-3)), d

    # pass 1: rough registration and tone match, rough matte
    m0 = feature_warp(src, plate) if p.align else None
    warped = _warp(plate, m0) if m0 is not None and geo.corner_shift(m0, (h, w)) > 0.25 else plate
    coeffs = fit_tone_curve(src, warped) if p.match_exposure else None
    matched = apply_tone_curve(warped, coeffs) if coeffs is not None else warped
    alpha0, _ = threshold(matched, None)

    # pass 2: refine both on pixels the rough matte calls background
    bg_mask = cv2.dilate(
        (alpha0 > 0.05).astype(np.uint8), np.ones((5, 5), np.uint8), iterations=max(1, round(2 * scale))
    )
    bg_mask = bg_mask == 0
    if p.align:
        m = _register(src, plate, bg_mask, m0)
        if m is not None and geo.corner_shift(m, (h, w)) > 0.25:
            warped = _warp(plate, m)
        elif m is not None:
            warped = plate
    if p.match_exposure:
        coeffs = fit_tone_curve(src, warped, bg_mask.astype(np.float32))
        matched = apply_tone_curve(warped, coeffs)
    else:
        matched = warped
    alpha, dist = threshold(matched, bg_mask)
    alpha = remove_specks(alpha, round(p.min_blob * area), round(p.max_hole * area), dist, noise_level(dist, bg_mask))

    # edges: compositing-equation alpha in a band around the boundary
    band_r = max(1, round(p.edge_band * max(scale, 0.5)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band_r + 1, 2 * band_r + 1))
    sure_fg = cv2.erode((alpha > 0.98).astype(np.uint8), kernel)
    colour = push_pull_fill(src, sure_fg.astype(np.float32))
    if p.edge_projection:
        hard = (alpha > 0.5).astype(np.uint8)
        band = (cv2.dilate(hard, kernel) > 0) & ~(cv2.erode(hard, kernel) > 0)
        band |= (alpha > 0.02) & (alpha < 0.98)
        a_eq, trust = edge_alpha(src, matched, colour, p.min_contrast, p.max_residual)
        a_edge = trust * a_eq + (1 - trust) * alpha
        alpha = np.where(band, a_edge, alpha).astype(np.float32)

    radius = p.guided_radius or max(1, round(2 * scale))
    if radius > 0 and p.guided_eps > 0:  # feather the edges only: inside, the guide's texture would blur holes
        feathered = cv2.ximgproc.guidedFilter(src, alpha.astype(np.float32), radius, p.guided_eps)
        alpha = np.where(band, feathered, alpha) if p.edge_projection else feathered
    alpha = np.clip(alpha, 0.0, 1.0).astype(np.float32)
    alpha[alpha < 0.01] = 0.0
    alpha[alpha > 0.99] = 1.0

    fgr = solve_foreground(src, matched, alpha, colour, p.fg_prior)
    uncertainty = (4.0 * alpha * (1.0 - alpha)).astype(np.float32)
    return alpha, fgr, uncertainty


class ClassicalMatting(nn.Module):
    """Difference keyer with MattingRefine's interface; see the module docstring for the method.

    Parameters (distances in RGB units, 0..1 per channel; areas as fractions of the frame;
    defaults tuned on the training subjects only, never on the held-out split):
        lo, hi: distance below ``lo`` is background, above ``hi`` foreground (0.012, 0.04).
        noise_factor: ``lo`` is at least this times the median background distance (2.0).
        luma_weight: weight of brightness against colour differences (1.0).
        search_radius: plate pixels this far away may explain a frame pixel (1).
        denoise_sigma: Gaussian blur of both images before differencing (0.8; 0: none).
        match_blur: blur the sharper of frame and plate to match the other (True).
        edge_tolerance: raise ``lo`` along plate edges by the measured edge residual (1.0; 0: off).
        align: register the plate to the frame (affine: handheld drift, zoom, roll) (True).
        match_exposure: fit a per-channel tone curve plate -> frame on background pixels (True).
        min_blob, max_hole: blobs below / enclosed holes below this area are removed / filled (1e-3).
        edge_projection: re-estimate fractional alpha at edges from the compositing equation (True).
        edge_band: half-width in px (at 1024 px) of that edge band (3).
        min_contrast: subject/plate colour distance needed to trust the equation (0.08).
        max_residual: distance off the subject-plate colour line that voids it (0.08).
        guided_radius, guided_eps: guided-filter feathering (0: radius 2 px at 1024 px; 1e-4).
        fg_prior: pull of the foreground colour towards the interior's colour where alpha is small (0.02).
    """

    def __init__(self, **params: float | int | bool) -> None:
        super().__init__()
        self.params = KeyerParams(**params)

    def extra_repr(self) -> str:
        return repr(self.params)

    @torch.no_grad()
    def forward(self, src: torch.Tensor, bgr: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if src.ndim != 4 or src.shape[1] != 3 or src.shape != bgr.shape:
            raise ValueError(
                f"expected src and bgr of one shape (B, 3, H, W), got {tuple(src.shape)} and {tuple(bgr.shape)}"
            )
        b, _, h, w = src.shape
        src_np = src.detach().float().permute(0, 2, 3, 1).cpu().numpy()
        bgr_np = bgr.detach().float().permute(0, 2, 3, 1).cpu().numpy()
        phas, fgrs, errs = [], [], []
        for i in range(b):
            a, f, u = key_frame(src_np[i], bgr_np[i], self.params)
            phas.append(a)
            fgrs.append(f)
            errs.append(u)
        pha = torch.from_numpy(np.stack(phas)[:, None]).to(src.device, src.dtype)
        fgr = torch.from_numpy(np.stack(fgrs)).permute(0, 3, 1, 2).to(src.device, src.dtype)
        err = torch.from_numpy(np.stack(errs)[:, None]).to(src.device, src.dtype)
        hs, ws = max(1, h // 4), max(1, w // 4)
        pha_sm = nn.functional.interpolate(pha, size=(hs, ws), mode="area")
        fgr_sm = nn.functional.interpolate(fgr, size=(hs, ws), mode="area")
        err_sm = nn.functional.interpolate(err, size=(hs, ws), mode="area")
        ref_sm = torch.zeros(b, 1, hs, ws, device=src.device, dtype=src.dtype)
        return pha, fgr, pha_sm, fgr_sm, err_sm, ref_sm
