"""Per-frame plate alignment for a handheld or drifting camera.

Each frame is registered to the plate itself (not to the previous frame, so errors do not
accumulate), using only the frame's *background*: the previous frame's matte masks the subject
out. The usual step is ECC (photometric-invariant, so exposure drift does not hurt) started from
the previous frame's warp. When that fails or on the first frame, ORB features of the
background are matched to the plate's (computed once), a RANSAC homography is fitted,
sanity-checked and refined by ECC. When nothing is trustworthy (blur, a flat wall, the subject
filling the view) the previous warp is reused — the camera moves smoothly — and before any good
fit the plate is simply resized. Nothing raises; fallbacks are counted so the caller can report
them once.

Work happens on grey copies no larger than ``work_side`` pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..align import trimmed_residual

MIN_INLIERS = 20
MIN_INLIER_RATIO = 0.25
MAX_CORNER_SHIFT = 0.25  # of the frame diagonal, relative to plain resizing
MAX_ECC_CHANGE = 0.02  # ECC may move corners by at most this fraction of the diagonal
DET_RANGE = (0.5, 2.0)
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


def _scale(s: float) -> np.ndarray:
    return np.diag([s, s, 1.0])


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
        self._orb = cv2.ORB_create(nfeatures=1000, fastThreshold=10)
        self._plate_gray = self._gray(plate, self.ps)
        self._kp_p, self._des_p = self._orb.detectAndCompute(self._plate_gray, None)
        self._matcher = cv2.BFMatcher(cv2.NORM_HAMMING)

    @staticmethod
    def _gray(image: np.ndarray, scale: float) -> np.ndarray:
        g = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        return cv2.resize(g, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale != 1.0 else g

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
        gray = self._gray(frame, self.fs)
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
        h = self.estimate(frame, alpha)
        fh, fw = self.frame_size
        return cv2.warpPerspective(self.plate, h, (fw, fh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    # ------------------------------------------------------------------------------------------
    def _fit(self, gray: np.ndarray, mask: np.ndarray | None) -> np.ndarray | None:
        if self._des_p is None or len(self._kp_p) < MIN_INLIERS:
            return None
        kp_f, des_f = self._orb.detectAndCompute(gray, mask)
        if des_f is None or len(kp_f) < MIN_INLIERS:
            return None
        pairs = self._matcher.knnMatch(self._des_p, des_f, k=2)
        good = [m[0] for m in pairs if len(m) == 2 and m[0].distance < 0.8 * m[1].distance]
        if len(good) < MIN_INLIERS:
            return None
        src = np.float32([self._kp_p[m.queryIdx].pt for m in good]) / self.ps
        dst = np.float32([kp_f[m.trainIdx].pt for m in good]) / self.fs
        try:
            h, inl = cv2.findHomography(src, dst, cv2.RANSAC, 3.0 / self.fs, maxIters=2000, confidence=0.995)
        except cv2.error:
            return None
        if h is None or inl is None:
            return None
        inliers = int(inl.sum())
        if inliers < MIN_INLIERS or inliers < MIN_INLIER_RATIO * len(good) or not self._plausible(h):
            return None
        if self.ecc:
            refined = self._refine(gray, mask, h)
            if refined is not None and self._corner_shift(refined, h) <= MAX_ECC_CHANGE * self._diag:
                h = refined
        # Matches on the subject or a repetitive background can agree on a wrong warp: keep it
        # only if the background lines up better than with the plate merely resized.
        return h if self._residual(gray, mask, h) < self._residual(gray, mask, self.base) else None

    def _residual(self, gray: np.ndarray, mask: np.ndarray | None, h: np.ndarray) -> float:
        """Background residual of the plate warped by ``h`` (plate full-res → frame full-res), in work pixels."""
        to_work = _scale(self.fs) @ h @ _scale(1 / self.ps)
        warped = cv2.warpPerspective(
            self._plate_gray,
            to_work,
            (gray.shape[1], gray.shape[0]),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
        return trimmed_residual(warped, gray, mask)

    def _refine(
        self, gray: np.ndarray, mask: np.ndarray | None, h: np.ndarray, min_cc: float = 0.6
    ) -> np.ndarray | None:
        """ECC on background pixels, starting from ``h``; None when it does not converge or drifts."""
        # ECC finds W with frame(x) ≈ plate(W x): W maps frame work pixels to plate work pixels.
        to_work = _scale(self.ps) @ np.linalg.inv(h) @ _scale(1 / self.fs)
        warp = (to_work / to_work[2, 2]).astype(np.float32)
        template = gray.astype(np.float32)
        image = self._plate_gray.astype(np.float32)
        criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 1e-4)
        try:
            cc, warp = cv2.findTransformECC(template, image, warp, cv2.MOTION_HOMOGRAPHY, criteria, mask, 3)
        except cv2.error:
            return None
        if not np.isfinite(warp).all() or cc < min_cc:
            return None
        try:  # back to plate full-res → frame full-res: H = S(1/fs) · W⁻¹ · S(ps)
            refined = _scale(1 / self.fs) @ np.linalg.inv(warp.astype(np.float64)) @ _scale(self.ps)
        except np.linalg.LinAlgError:
            return None
        refined = refined / refined[2, 2]
        return refined if self._plausible(refined) else None

    @property
    def _diag(self) -> float:
        return float(np.hypot(*self.frame_size))

    def _corner_shift(self, a: np.ndarray, b: np.ndarray) -> float:
        fh, fw = self.frame_size
        ph, pw = self.plate.shape[:2]
        corners = np.float32([[0, 0], [pw, 0], [pw, ph], [0, ph]]).reshape(-1, 1, 2)
        pa = cv2.perspectiveTransform(corners, a)
        pb = cv2.perspectiveTransform(corners, b)
        return float(np.linalg.norm(pa - pb, axis=2).max())

    def _plausible(self, h: np.ndarray) -> bool:
        if not np.isfinite(h).all():
            return False
        relative = h @ np.linalg.inv(self.base)
        det = float(np.linalg.det(relative[:2, :2]))
        if not DET_RANGE[0] <= det <= DET_RANGE[1]:
            return False
        return self._corner_shift(h, self.base) <= MAX_CORNER_SHIFT * self._diag
