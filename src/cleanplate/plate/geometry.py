"""Plate geometry, in one place: features, matching, robust fits, plausibility checks and warping.

Three things register a plate to a frame: one-shot image alignment (:mod:`cleanplate.plate.align`),
the per-frame video tracker (:mod:`cleanplate.plate.track`) and the classical keyer's registration
(:mod:`cleanplate.models.classical`). They differ in their budgets (how many features, how many
RANSAC iterations: a still image can afford more than every frame of a live camera) and in what
they fall back to, never in the technique or in what counts as a believable camera move.

The plate shows the same scene as the frame, and the subject covers part of it, so fits are robust
(RANSAC) and every fitted warp passes :func:`implausible` before it is used: a camera that moved
between plate and take shifts, rotates and zooms the view a little; it does not mirror it, squash
one axis or shear it. A warp that passes can still be wrong (matches on a large subject or a
repetitive wall agree on something), so callers also compare the background residual
(:func:`trimmed_residual`) with the plate unwarped and keep the warp only when it lines the
background up better: alignment never makes a plate worse than no alignment.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

MIN_INLIERS = 20  # matches that must agree on one warp (and fewest matches worth fitting)
MIN_INLIER_RATIO = 0.25  # of the matches
RATIO_TEST = 0.8  # Lowe's ratio: best match clearly better than the second best
DET_RANGE = (0.5, 2.0)  # area change allowed (after size matching)
SCALE_RANGE = (0.5, 2.0)  # per-axis scale allowed (singular values of the linear part)
MAX_SHEAR = 0.3  # |cos| of the angle between the mapped axes (0: perpendicular, as a camera keeps them)
MAX_CORNER_SHIFT = 0.25  # of the frame diagonal: how far a corner may move against the identity


# ------------------------------------------------------------------------------------ features


@dataclass(frozen=True)
class Features:
    """Keypoint positions (N, 2) float32 in the pixels of the image they were found on, descriptors."""

    points: np.ndarray
    descriptors: np.ndarray | None
    norm: int  # cv2.NORM_HAMMING (ORB) or cv2.NORM_L2 (SIFT): how descriptors are compared

    def __len__(self) -> int:
        return len(self.points)


def gray(image: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """uint8 grey copy of an RGB (or already grey) image, shrunk by ``scale`` (area averaging)."""
    g = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    if scale != 1.0:
        g = cv2.resize(g, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return g


def _features(keypoints, descriptors, norm: int) -> Features:
    points = np.float32([kp.pt for kp in keypoints]).reshape(-1, 2)
    return Features(points, descriptors, norm)


def orb(image: np.ndarray, n: int, mask: np.ndarray | None = None) -> Features:
    """ORB features of a grey image (fast, binary); ``mask`` (uint8, 255 = use) restricts where.

    Small images get a small border and patch (ORB ignores ``edgeThreshold`` pixels at each side);
    from 124 px up this is ORB's default of 31.
    """
    edge = max(8, min(31, min(image.shape[:2]) // 4))
    detector = cv2.ORB_create(nfeatures=n, fastThreshold=10, edgeThreshold=edge, patchSize=edge)
    try:
        keypoints, descriptors = detector.detectAndCompute(image, mask)
    except cv2.error:
        return Features(np.zeros((0, 2), np.float32), None, cv2.NORM_HAMMING)
    return _features(keypoints, descriptors, cv2.NORM_HAMMING)


def sift(image: np.ndarray, n: int, mask: np.ndarray | None = None) -> Features:
    """SIFT features of a grey image: slower than ORB, but finds more on soft or low-contrast texture."""
    keypoints, descriptors = cv2.SIFT_create(nfeatures=n).detectAndCompute(image, mask)
    return _features(keypoints, descriptors, cv2.NORM_L2)


def match(a: Features, b: Features, ratio: float = RATIO_TEST) -> tuple[np.ndarray, np.ndarray]:
    """Matched positions ``(points of a, points of b)``, each (M, 2) float32, by the ratio test."""
    if a.descriptors is None or b.descriptors is None or len(a) == 0 or len(b) == 0:
        empty = np.zeros((0, 2), np.float32)
        return empty, empty
    pairs = cv2.BFMatcher(a.norm).knnMatch(a.descriptors, b.descriptors, k=2)
    good = [m[0] for m in pairs if len(m) == 2 and m[0].distance < ratio * m[1].distance]
    qa = np.array([m.queryIdx for m in good], dtype=np.int64)
    qb = np.array([m.trainIdx for m in good], dtype=np.int64)
    return a.points[qa], b.points[qb]


# ---------------------------------------------------------------------------------------- fits


@dataclass(frozen=True)
class Fit:
    """A robust fit: ``warp`` (3x3, maps the fit's source points to its destination points), inliers."""

    warp: np.ndarray
    inliers: int
    matches: int

    def trusted(self, min_inliers: int = MIN_INLIERS) -> bool:
        """Enough matches agree, and they are a fair share of all matches (not a lucky subset)."""
        return self.inliers >= min_inliers and self.inliers >= MIN_INLIER_RATIO * self.matches


def fit_homography(
    src: np.ndarray, dst: np.ndarray, threshold: float, *, max_iters: int = 5000, confidence: float = 0.999
) -> Fit | None:
    """RANSAC homography src → dst (``threshold``: reprojection error in dst pixels); None when none."""
    if len(src) < 4:
        return None
    try:
        h, mask = cv2.findHomography(
            src, dst, cv2.RANSAC, ransacReprojThreshold=threshold, maxIters=max_iters, confidence=confidence
        )
    except cv2.error:
        return None
    if h is None or mask is None:
        return None
    return Fit(h, int(mask.sum()), len(src))


def fit_affine(src: np.ndarray, dst: np.ndarray, threshold: float) -> Fit | None:
    """RANSAC affine map src → dst (as 3x3); None when none."""
    if len(src) < 3:
        return None
    try:
        m, mask = cv2.estimateAffine2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=threshold)
    except cv2.error:
        return None
    if m is None or mask is None:
        return None
    return Fit(np.vstack([m.astype(np.float64), [0.0, 0.0, 1.0]]), int(mask.sum()), len(src))


def ecc(
    template: np.ndarray,
    image: np.ndarray,
    warp: np.ndarray,
    motion: int,
    *,
    mask: np.ndarray | None = None,
    iterations: int = 30,
    eps: float = 1e-4,
    gauss: int = 3,
) -> tuple[float, np.ndarray] | None:
    """ECC refinement of ``warp`` (float32, 2x3 or 3x3 by ``motion``): ``(correlation, warp)`` or None.

    ECC maximises the correlation of ``template(x)`` and ``image(warp x)``, so it is invariant to
    gain and offset (exposure drift between plate and take); ``mask`` limits it to the background.
    """
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, iterations, eps)
    try:
        cc, out = cv2.findTransformECC(template, image, warp, motion, criteria, mask, gauss)
    except cv2.error:
        return None
    if not np.isfinite(out).all():
        return None
    return float(cc), out


# ------------------------------------------------------------------------------ plausibility


def as_3x3(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    return np.vstack([m, [0.0, 0.0, 1.0]]) if m.shape == (2, 3) else m


def corner_shift(a: np.ndarray, size: tuple[int, int], b: np.ndarray | None = None) -> float:
    """Largest distance (px) between the corners of a (h, w) image mapped by ``a`` and by ``b`` (identity)."""
    h, w = size
    corners = np.float32([[0, 0], [w, 0], [w, h], [0, h]]).reshape(-1, 1, 2)
    pa = cv2.perspectiveTransform(corners, as_3x3(a))
    pb = corners if b is None else cv2.perspectiveTransform(corners, as_3x3(b))
    if pa is None or pb is None or not (np.isfinite(pa).all() and np.isfinite(pb).all()):
        return float("inf")
    return float(np.linalg.norm(pa - pb, axis=2).max())


def implausible(relative: np.ndarray, size: tuple[int, int]) -> str | None:
    """Why ``relative`` (2x3 or 3x3, a warp of a (h, w) image against the identity) is no camera move; None if it is.

    Checked: finite; determinant (area change, and no mirroring) in :data:`DET_RANGE`; per-axis
    scale in :data:`SCALE_RANGE`; shear at most :data:`MAX_SHEAR`; corners moved by at most
    :data:`MAX_CORNER_SHIFT` of the diagonal.
    """
    m = as_3x3(relative)
    if not np.isfinite(m).all():
        return "degenerate warp"
    linear = m[:2, :2] / m[2, 2] if m[2, 2] != 0 else m[:2, :2]
    det = float(np.linalg.det(linear))
    if not DET_RANGE[0] <= det <= DET_RANGE[1]:
        return f"implausible scale change (area x{det:.2f})"
    low, high = (float(s) for s in np.linalg.svd(linear, compute_uv=False)[::-1])
    if low < SCALE_RANGE[0] or high > SCALE_RANGE[1]:
        return f"implausible scale (x{low:.2f} to x{high:.2f} along the axes)"
    a, b = linear[:, 0], linear[:, 1]
    shear = abs(float(a @ b)) / max(float(np.linalg.norm(a) * np.linalg.norm(b)), 1e-12)
    if shear > MAX_SHEAR:
        return f"implausible shear ({shear:.2f})"
    shift = corner_shift(m, size)
    if not np.isfinite(shift):
        return "degenerate homography"
    if shift > MAX_CORNER_SHIFT * float(np.hypot(*size)):
        return f"corners would move {shift:.0f} px"
    return None


# ------------------------------------------------------------------------------------ warping


def warp(image: np.ndarray, m: np.ndarray, size: tuple[int, int], *, inverse: bool = False) -> np.ndarray:
    """``image`` resampled onto a (h, w) grid by ``m`` (2x3 affine or 3x3); borders replicate the nearest pixels.

    ``inverse=False``: ``m`` maps image pixels to output pixels; ``inverse=True``: output pixel x
    shows image pixel ``m @ x``.
    """
    h, w = size
    flags = cv2.INTER_LINEAR | (cv2.WARP_INVERSE_MAP if inverse else 0)
    if m.shape == (2, 3):
        return cv2.warpAffine(image, m.astype(np.float32), (w, h), flags=flags, borderMode=cv2.BORDER_REPLICATE)
    return cv2.warpPerspective(image, m, (w, h), flags=flags, borderMode=cv2.BORDER_REPLICATE)


def trimmed_residual(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None, *, invariant: bool = False) -> float:
    """Mean of the smaller half of |a - b| (grey images; over ``mask`` when given).

    The subject differs from the plate whatever the warp; the smaller half of the differences is
    the background (unless the subject covers most of the view), which is what alignment moves.
    ``invariant``: both images are first standardised (zero mean, unit deviation over ``mask``),
    so a plate shot at another exposure is judged on how it lines up, not on its brightness.
    """
    a, b = a.astype(np.float32), b.astype(np.float32)
    if invariant:
        a, b = _standardised(a, mask), _standardised(b, mask)
    d = np.abs(a - b)
    d = (d[mask > 0] if mask is not None else d).ravel()
    if d.size < 2:
        return float(d.sum())
    half = d.size // 2
    return float(np.partition(d, half)[:half].mean())


def _standardised(x: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    values = x[mask > 0] if mask is not None else x
    if values.size == 0:
        return x
    return (x - float(values.mean())) / max(float(values.std()), 1e-3)


def scale_matrix(sx: float, sy: float | None = None) -> np.ndarray:
    """3x3 scaling (pixel coordinates between copies of one image at two sizes)."""
    return np.diag([sx, sx if sy is None else sy, 1.0])
