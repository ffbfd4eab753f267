"""Align a handheld clean plate to the frame: feature matches + RANSAC homography (or affine).

Only the background is shared between frame and plate, and the subject covers part of it, so
the fit must be robust (RANSAC) and is sanity-checked before use. Matches on a large subject or
a repetitive background can still agree on a wrong homography, so :func:`align_plate` also fits
an affine map to the same matches and keeps whichever of plain resizing, affine and homography
leaves the smallest background residual (the mean of the smaller half of per-pixel differences:
the background, whatever the subject covers). Alignment is best effort: when it cannot be
trusted, :func:`align_plate` warns and returns the plate resized as usual, never raises for a
bad pair of photos.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import cv2
import numpy as np

from .compose import resize
from .plate import aspect_matches

WORK_SIDE = 1024  # features are found on copies no larger than this (speed; homography rescaled)
RESIDUAL_SIDE = 512  # candidate warps are compared on copies no larger than this
MIN_INLIERS = 24
MIN_INLIER_RATIO = 0.25
MAX_CORNER_SHIFT = 0.25  # of the frame diagonal
DET_RANGE = (0.5, 2.0)  # area change allowed between plate and frame (after size matching)


class AlignmentWarning(UserWarning):
    """Alignment was not trusted; the plate was used unaligned."""


@dataclass(frozen=True)
class Alignment:
    """Result of :func:`estimate_homography`: maps plate pixels to frame pixels."""

    homography: np.ndarray
    inliers: int
    matches: int
    corner_shift: float  # largest corner displacement, in frame pixels
    affine: np.ndarray | None = None  # an affine fit (as 3x3) to the same matches, when one was found


def _gray(image: np.ndarray, scale: float) -> np.ndarray:
    g = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    if scale != 1.0:
        g = cv2.resize(g, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return g


def _orb(gray: np.ndarray) -> tuple[list, np.ndarray | None]:
    edge = max(8, min(31, min(gray.shape[:2]) // 4))  # small images need a small border
    orb = cv2.ORB_create(nfeatures=4000, fastThreshold=10, edgeThreshold=edge, patchSize=edge)
    keypoints, descriptors = orb.detectAndCompute(gray, None)
    return list(keypoints), descriptors


def _sift(gray: np.ndarray) -> tuple[list, np.ndarray | None]:
    keypoints, descriptors = cv2.SIFT_create(nfeatures=4000).detectAndCompute(gray, None)
    return list(keypoints), descriptors


def _features(a: np.ndarray, b: np.ndarray) -> tuple[list, np.ndarray | None, list, np.ndarray | None, int]:
    """Keypoints/descriptors for both images with one detector: ORB (fast), SIFT when ORB finds too few."""
    kp_a, des_a = _orb(a)
    kp_b, des_b = _orb(b)
    if min(len(kp_a), len(kp_b)) >= 4 * MIN_INLIERS:
        return kp_a, des_a, kp_b, des_b, cv2.NORM_HAMMING
    kp_a, des_a = _sift(a)
    kp_b, des_b = _sift(b)
    return kp_a, des_a, kp_b, des_b, cv2.NORM_L2


def _scale_matrix(s: float) -> np.ndarray:
    return np.diag([s, s, 1.0])


def estimate_homography(plate: np.ndarray, frame: np.ndarray) -> Alignment:
    """Fit the plate→frame homography; raise ``ValueError`` with the reason when it is not trustworthy."""
    fh, fw = frame.shape[:2]
    ph, pw = plate.shape[:2]
    fs = min(1.0, WORK_SIDE / max(fh, fw))
    ps = min(1.0, WORK_SIDE / max(ph, pw))
    kp_f, des_f, kp_p, des_p, norm = _features(_gray(frame, fs), _gray(plate, ps))
    if des_f is None or des_p is None or len(kp_f) < MIN_INLIERS or len(kp_p) < MIN_INLIERS:
        raise ValueError("too few features (flat or blurred images)")
    pairs = cv2.BFMatcher(norm).knnMatch(des_p, des_f, k=2)
    good = [m[0] for m in pairs if len(m) == 2 and m[0].distance < 0.8 * m[1].distance]
    if len(good) < MIN_INLIERS:
        raise ValueError(f"only {len(good)} feature matches")
    src = np.float32([kp_p[m.queryIdx].pt for m in good]) / ps
    dst = np.float32([kp_f[m.trainIdx].pt for m in good]) / fs
    h, mask = cv2.findHomography(src, dst, cv2.RANSAC, ransacReprojThreshold=3.0 / fs, maxIters=5000, confidence=0.999)
    if h is None or mask is None:
        raise ValueError("no consistent homography")
    inliers = int(mask.sum())
    if inliers < MIN_INLIERS or inliers < MIN_INLIER_RATIO * len(good):
        raise ValueError(f"only {inliers} of {len(good)} matches agree on one homography")
    # Compare with plain resizing: how far does the fit move the plate's corners?
    to_frame = _scale_matrix(1.0)
    to_frame[0, 0], to_frame[1, 1] = fw / pw, fh / ph
    relative = h @ np.linalg.inv(to_frame)
    det = float(np.linalg.det(relative[:2, :2]))
    if not DET_RANGE[0] <= det <= DET_RANGE[1]:
        raise ValueError(f"implausible scale change (area x{det:.2f})")
    corners = np.float32([[0, 0], [fw, 0], [fw, fh], [0, fh]]).reshape(-1, 1, 2)
    moved = cv2.perspectiveTransform(corners, relative)
    if moved is None or not np.isfinite(moved).all():
        raise ValueError("degenerate homography")
    shift = float(np.linalg.norm(moved - corners, axis=2).max())
    if shift > MAX_CORNER_SHIFT * float(np.hypot(fw, fh)):
        raise ValueError(f"corners would move {shift:.0f} px")
    affine, a_mask = cv2.estimateAffine2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=1.5 / fs)
    if affine is not None and a_mask is not None and int(a_mask.sum()) >= MIN_INLIERS:
        affine = np.vstack([affine, [0.0, 0.0, 1.0]])
    else:
        affine = None
    return Alignment(h, inliers, len(good), shift, affine)


def trimmed_residual(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean of the smaller half of |a - b| (grey images; over ``mask`` when given).

    The subject differs from the plate whatever the warp; the smaller half of the differences is
    the background (unless the subject covers most of the view), which is what alignment moves.
    """
    d = np.abs(a.astype(np.float32) - b.astype(np.float32))
    d = (d[mask > 0] if mask is not None else d).ravel()
    if d.size < 2:
        return float(d.sum())
    half = d.size // 2
    return float(np.partition(d, half)[:half].mean())


def warp_plate(plate: np.ndarray, homography: np.ndarray, frame_size: tuple[int, int]) -> np.ndarray:
    """Warp ``plate`` into the frame's pixel grid; uncovered borders replicate the nearest plate pixels."""
    h, w = frame_size
    return cv2.warpPerspective(plate, homography, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def align_plate(plate: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """``plate`` warped onto ``frame`` (both uint8 RGB); on failure warn and fall back to plain resizing.

    The fallback keeps the plate unchanged when sizes match, resizes it when the aspect matches,
    and otherwise stretches it to the frame (the warning says so), so matting can still proceed.
    """
    size = frame.shape[:2]
    try:
        fit = estimate_homography(plate, frame)
    except Exception as exc:  # noqa: BLE001 - best effort by contract: any failure falls back with a warning
        note = "" if aspect_matches(plate.shape[:2], size) else "; the plate's aspect differs, so it is stretched"
        warnings.warn(
            f"plate alignment failed ({exc}); using the plate unaligned{note}", AlignmentWarning, stacklevel=2
        )
        return resize(plate, size)
    candidates = [resize(plate, size), warp_plate(plate, fit.homography, size)]
    if fit.affine is not None:
        candidates.append(warp_plate(plate, fit.affine, size))
    # Score on grey copies no larger than RESIDUAL_SIDE: enough to see a pixel of misalignment.
    s = min(1.0, RESIDUAL_SIDE / max(size))
    frame_gray = _gray(frame, s)
    return min(candidates, key=lambda c: trimmed_residual(_gray(c, s), frame_gray))
