"""Align a handheld clean plate to one image: feature matches + RANSAC homography (or affine).

Only the background is shared between frame and plate, and the subject covers part of it, so
the fit must be robust (RANSAC) and passes the plausibility checks of
:mod:`cleanplate.plate.geometry` before use. Matches on a large subject or a repetitive background
can still agree on a wrong homography, so :func:`align_plate` also fits an affine map to the same
matches and keeps whichever of plain resizing, affine and homography leaves the smallest background
residual (the mean of the smaller half of per-pixel differences: the background, whatever the
subject covers). Alignment is best effort: when it cannot be trusted, :func:`align_plate` warns and
returns the plate resized as usual, never raises for a bad pair of photos. A warped plate that
leaves a strip of the frame uncovered (the camera moved between the shots) is used with that strip
filled by its nearest pixels, and :class:`PlateCoverageWarning` says how much of the frame that is.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import cv2
import numpy as np

from ..compose import resize
from . import geometry as geo
from .fit import PlateWarning, aspect_matches
from .geometry import trimmed_residual

__all__ = [
    "Alignment",
    "AlignmentWarning",
    "PlateCoverageWarning",
    "align_plate",
    "estimate_homography",
    "trimmed_residual",
    "warp_plate",
]
UNCOVERED_WARN = 0.005  # share of the frame the aligned plate may leave uncovered before a warning

WORK_SIDE = 1024  # features are found on copies no larger than this (speed; homography rescaled)
RESIDUAL_SIDE = 512  # candidate warps are compared on copies no larger than this
N_FEATURES = 4000  # one still image: a generous budget


class AlignmentWarning(UserWarning):
    """Alignment was not trusted; the plate was used unaligned."""


class PlateCoverageWarning(PlateWarning):
    """The aligned plate does not reach every pixel of the frame: there the matte rests on the
    plate's nearest pixels repeated, not on what was behind the subject."""


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


def coverage(plate_size: tuple[int, int], homography: np.ndarray, frame_size: tuple[int, int]) -> np.ndarray:
    """(h, w) bool: the frame's pixels that the plate, warped by ``homography``, reaches."""
    h, w = frame_size
    ones = np.ones(plate_size, np.uint8)
    return cv2.warpPerspective(ones, homography, (w, h), flags=cv2.INTER_NEAREST) > 0


def _coverage_note(inside: np.ndarray) -> str | None:
    """The warning's text when more than :data:`UNCOVERED_WARN` of the frame is uncovered."""
    share = 1.0 - float(inside.mean())
    if share <= UNCOVERED_WARN:
        return None
    sides = {"top": inside[0], "bottom": inside[-1], "left": inside[:, 0], "right": inside[:, -1]}
    edges = [name for name, line in sides.items() if line.mean() < 0.5]
    where = f"along the {' and '.join(edges)} edge{'s' if len(edges) > 1 else ''}" if edges else "at a corner"
    return (
        f"the aligned plate leaves {100 * share:.1f} % of the frame uncovered ({where}); the matte "
        "there rests on repeated plate pixels: shoot the plate a little wider, or crop the frame there"
    )


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
    maps = [None, fit.homography] + ([fit.affine] if fit.affine is not None else [])
    candidates = [resize(plate, size)] + [warp_plate(plate, m, size) for m in maps[1:]]
    # Score on grey copies no larger than RESIDUAL_SIDE: enough to see a pixel of misalignment.
    s = min(1.0, RESIDUAL_SIDE / max(size))
    frame_gray = geo.gray(frame, s)
    scores = [trimmed_residual(geo.gray(c, s), frame_gray) for c in candidates]
    best = int(np.argmin(scores))
    chosen = maps[best]
    note = None if chosen is None else _coverage_note(coverage(plate.shape[:2], chosen, size))
    if note:
        warnings.warn(note, PlateCoverageWarning, stacklevel=2)
    return candidates[best]
