"""Per-frame plate alignment for a handheld or drifting camera.

Each frame is registered to the plate itself (not to the previous frame, so errors do not
accumulate), using only the frame's *background*: the previous frame's matte masks the subject
out. The usual step is ECC (photometric-invariant, so exposure drift does not hurt) started from
the previous frame's warp. When that fails or on the first frame, ORB features of the
background are matched to the plate's (computed once), a RANSAC homography is fitted,
sanity-checked and refined by ECC. When nothing is trustworthy (blur, a flat wall, the subject
filling the view) the previous warp is reused — the camera moves smoothly — and before any good
fit the plate is simply resized. Nothing raises; fallbacks are counted so the caller can report
them once. Features, fits and the checks a warp must pass are those of
:mod:`cleanplate.plate.geometry`, with a per-frame budget (fewer features and RANSAC iterations).

Work happens on grey copies no larger than ``work_side`` pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from . import geometry as geo

N_FEATURES = 1000  # every frame: a small budget
MAX_ECC_CHANGE = 0.02  # ECC may move corners by at most this fraction of the diagonal
TRACK_MIN_CC = 0.85  # ECC correlation needed to accept a warp tracked from the previous frame


@dataclass
class AlignStats:
    frames: int = 0
    tracked: int = 0  # ECC from the previous frame's warp accepted (the usual case)
    fitted: int = 0  # features + RANSAC (+ ECC): first frame, or tracking lost
    reused: int = 0  # previous warp reused as is
    resized: int = 0  # no warp known yet: plain resize

    @property
    def fallbacks(self) -> int:
        return self.reused + self.resized

    def note(self) -> str | None:
        """What to tell the user when some frames could not be aligned (None when all were)."""
        if not self.fallbacks:
            return None
        return (
            f"plate alignment fell back on {self.fallbacks} of {self.frames} frames (too few background "
            "features); those frames reuse the last good alignment"
        )


class PlateAligner:
    """Warps one plate onto successive frames (uint8 H×W×3 RGB); see the module docstring."""

    def __init__(self, plate: np.ndarray, frame_size: tuple[int, int], *, work_side: int = 400, ecc: bool = True):
        self.plate = np.ascontiguousarray(plate)
        self.frame_size = (int(frame_size[0]), int(frame_size[1]))
        fh, fw = self.frame_size
        ph, pw = plate.shape[:2]
        self.fs = min(1.0, work_side / max(fh, fw))  # frame → work scale
        # the plate is worked at the frame's work scale, so ORB and ECC compare like with like
        self.ps = self.fs * float(np.sqrt((fh * fw) / (ph * pw)))
        self.ecc = ecc
        self.base = np.diag([fw / pw, fh / ph, 1.0])  # plain resize, plate → frame
        self.previous: np.ndarray | None = None
        self.stats = AlignStats()
        self._plate_gray = geo.gray(self.plate, self.ps)
        self._plate_features = geo.orb(self._plate_gray, N_FEATURES)

    def _background_mask(self, alpha: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray | None:
        """255 where the previous matte says background (subject dilated away), in work pixels."""
        if alpha is None:
            return None
        a = cv2.resize(alpha.astype(np.float32), (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
        subject = (a > 0.05).astype(np.uint8)
        k = max(3, int(0.03 * max(shape)) | 1)
        subject = cv2.dilate(subject, np.ones((k, k), np.uint8))
        mask = ((1 - subject) * 255).astype(np.uint8)
        return mask if mask.mean() > 255 * 0.1 else None  # subject fills the view: use everything

    # ------------------------------------------------------------------------------------------
    def estimate(self, frame: np.ndarray, alpha: np.ndarray | None = None) -> np.ndarray:
        """Plate→frame homography (3×3, full-resolution pixels) for ``frame``."""
        self.stats.frames += 1
        gray = geo.gray(frame, self.fs)
        mask = self._background_mask(alpha, gray.shape)
        h = None
        if self.previous is not None and self.ecc:  # cheap: ECC straight from the last warp
            h = self._refine(gray, mask, self.previous, min_cc=TRACK_MIN_CC)
            if h is not None:
                self.stats.tracked += 1
        if h is None:  # first frame, a jump, or ECC lost it: features + RANSAC (+ ECC)
            h = self._fit(gray, mask)
            if h is not None:
                self.stats.fitted += 1
        if h is None:
            if self.previous is not None:
                self.stats.reused += 1
                return self.previous
            self.stats.resized += 1
            return self.base
        self.previous = h
        return h

    def warp(self, frame: np.ndarray, alpha: np.ndarray | None = None) -> np.ndarray:
        """The plate warped onto ``frame``'s pixel grid (borders replicate the nearest plate pixels)."""
        return geo.warp(self.plate, self.estimate(frame, alpha), self.frame_size)

    # ------------------------------------------------------------------------------------------
    def _fit(self, gray: np.ndarray, mask: np.ndarray | None) -> np.ndarray | None:
        plate = self._plate_features
        if plate.descriptors is None or len(plate) < geo.MIN_INLIERS:
            return None
        frame = geo.orb(gray, N_FEATURES, mask)
        if frame.descriptors is None or len(frame) < geo.MIN_INLIERS:
            return None
        src, dst = geo.match(plate, frame)
        if len(src) < geo.MIN_INLIERS:
            return None
        fit = geo.fit_homography(src / self.ps, dst / self.fs, 3.0 / self.fs, max_iters=2000, confidence=0.995)
        if fit is None or not fit.trusted() or not self._plausible(fit.warp):
            return None
        h = fit.warp
        if self.ecc:
            refined = self._refine(gray, mask, h)
            if refined is not None and self._corner_shift(refined, h) <= MAX_ECC_CHANGE * self._diag:
                h = refined
        # Matches on the subject or a repetitive background can agree on a wrong warp: keep it
        # only if the background lines up better than with the plate merely resized.
        return h if self._residual(gray, mask, h) < self._residual(gray, mask, self.base) else None

    def _residual(self, gray: np.ndarray, mask: np.ndarray | None, h: np.ndarray) -> float:
        """Background residual of the plate warped by ``h`` (plate full-res → frame full-res), in work pixels."""
        to_work = geo.scale_matrix(self.fs) @ h @ geo.scale_matrix(1 / self.ps)
        return geo.trimmed_residual(geo.warp(self._plate_gray, to_work, gray.shape[:2]), gray, mask)

    def _refine(
        self, gray: np.ndarray, mask: np.ndarray | None, h: np.ndarray, min_cc: float = 0.6
    ) -> np.ndarray | None:
        """ECC on background pixels, starting from ``h``; None when it does not converge or drifts."""
        # ECC finds W with frame(x) ≈ plate(W x): W maps frame work pixels to plate work pixels.
        to_work = geo.scale_matrix(self.ps) @ np.linalg.inv(h) @ geo.scale_matrix(1 / self.fs)
        warp = (to_work / to_work[2, 2]).astype(np.float32)
        template = gray.astype(np.float32)
        image = self._plate_gray.astype(np.float32)
        found = geo.ecc(template, image, warp, cv2.MOTION_HOMOGRAPHY, mask=mask, iterations=30, eps=1e-4, gauss=3)
        if found is None or found[0] < min_cc:
            return None
        warp = found[1]
        try:  # back to plate full-res → frame full-res: H = S(1/fs) · W⁻¹ · S(ps)
            refined = geo.scale_matrix(1 / self.fs) @ np.linalg.inv(warp.astype(np.float64)) @ geo.scale_matrix(self.ps)
        except np.linalg.LinAlgError:
            return None
        refined = refined / refined[2, 2]
        return refined if self._plausible(refined) else None

    @property
    def _diag(self) -> float:
        return float(np.hypot(*self.frame_size))

    def _corner_shift(self, a: np.ndarray, b: np.ndarray) -> float:
        """How far two plate→frame warps put the plate's corners apart (frame pixels)."""
        return geo.corner_shift(a, self.plate.shape[:2], b)

    def _plausible(self, h: np.ndarray) -> bool:
        return geo.implausible(h @ np.linalg.inv(self.base), self.frame_size) is None
