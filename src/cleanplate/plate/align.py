"""Align a handheld clean plate to one image: feature matches + RANSAC homography (or affine).

Only the background is shared between frame and plate, and the subject covers part of it, so
the fit must be robust (RANSAC) and passes the plausibility checks of
:mod:`cleanplate.plate.geometry` before use. Matches on a large subject or a repetitive background
can still agree on a wrong homography, so :func:`align_plate` also fits an affine map to the same
matches and keeps whichever of plain resizing, affine and homography leaves the smallest background
residual (the mean of the smaller half of per-pixel differences: the background, whatever the
subject covers). Alignment is best effort: when it cannot be trusted, :func:`align_plate` warns and
returns the plate resized as usual, never raises for a bad pair of photos.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ..compose import resize
from . import geometry as geo
from .fit import aspect_matches
from .geometry import trimmed_residual

__all__ = ["Alignment", "AlignmentWarning", "align_plate", "estimate_homography", "trimmed_residual", "warp_plate"]

WORK_SIDE = 1024  # features are found on copies no larger than this (speed; homography rescaled)
RESIDUAL_SIDE = 512  # candidate warps are compared on copies no larger than this
N_FEATURES = 4000  # one still image: a generous budget


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


def _features(a: np.ndarray, b: np.ndarray) -> tuple[geo.Features, geo.Features]:
    """Features of both images with one detector: ORB (fast), SIFT when ORB finds too few."""
    fa, fb = geo.orb(a, N_FEATURES), geo.orb(b, N_FEATURES)
    if min(len(fa), len(fb)) >= 4 * geo.MIN_INLIERS:
        return fa, fb
    return geo.sift(a, N_FEATURES), geo.sift(b, N_FEATURES)


def estimate_homography(plate: np.ndarray, frame: np.ndarray) -> Alignment:
    """Fit the plate→frame homography; raise ``ValueError`` with the reason when it is not trustworthy."""
    fh, fw = frame.shape[:2]
    ph, pw = plate.shape[:2]
    fs = min(1.0, WORK_SIDE / max(fh, fw))
    ps = min(1.0, WORK_SIDE / max(ph, pw))
    feat_f, feat_p = _features(geo.gray(frame, fs), geo.gray(plate, ps))
    if feat_f.descriptors is None or feat_p.descriptors is None or min(len(feat_f), len(feat_p)) < geo.MIN_INLIERS:
        raise ValueError("too few features (flat or blurred images)")
    src, dst = geo.match(feat_p, feat_f)
    if len(src) < geo.MIN_INLIERS:
        raise ValueError(f"only {len(src)} feature matches")
    src, dst = src / ps, dst / fs
    fit = geo.fit_homography(src, dst, 3.0 / fs)
    if fit is None:
        raise ValueError("no consistent homography")
    if not fit.trusted():
        raise ValueError(f"only {fit.inliers} of {fit.matches} matches agree on one homography")
    # Compare with plain resizing: how far does the fit move the plate's corners?
    to_frame = geo.scale_matrix(fw / pw, fh / ph)
    problem = geo.implausible(fit.warp @ np.linalg.inv(to_frame), (fh, fw))
    if problem:
        raise ValueError(problem)
    shift = geo.corner_shift(fit.warp @ np.linalg.inv(to_frame), (fh, fw))
    affine = geo.fit_affine(src, dst, 1.5 / fs)
    if (
        affine is None
        or affine.inliers < geo.MIN_INLIERS
        or geo.implausible(affine.warp @ np.linalg.inv(to_frame), (fh, fw))
    ):
        affine = None
    return Alignment(fit.warp, fit.inliers, fit.matches, shift, None if affine is None else affine.warp)


def warp_plate(plate: np.ndarray, homography: np.ndarray, frame_size: tuple[int, int]) -> np.ndarray:
    """Warp ``plate`` into the frame's pixel grid; uncovered borders replicate the nearest plate pixels."""
    return geo.warp(plate, homography, frame_size)


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
    frame_gray = geo.gray(frame, s)
    return min(candidates, key=lambda c: trimmed_residual(geo.gray(c, s), frame_gray))
