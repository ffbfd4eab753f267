"""A clean plate built from the clip itself, when the subject moves (``--plate auto``).

Every background pixel is visible in some frames, whenever the subject is elsewhere. A per-pixel
temporal median of a frame sample is a first estimate; it is right where the subject covers a
pixel in fewer than half of the frames. Then, iterated: matte every sampled frame against the
current plate, mask the subject out (grown a little: edges, and what the matte misses), and take
the median of what is left per pixel. A subject that stands still for most of the clip is thus
removed wherever it moved at least once.

What the median cannot give is said, not hidden: a **confidence** map (how many frames showed the
background at a pixel, and how well they agreed) and a **never-seen** mask (pixels no sampled
frame showed as background, by its matte). Never-seen pixels are filled by inpainting (so the
keyer still sees the subject there as "different"), and a :class:`NeverSeenWarning` says how much
of the view that is. In practice never-seen pixels are where the subject covered the background
in most of the frames: there the first median holds the subject, the frames that do show the
background disagree with it, and no frame is left (flagged, not hidden). A subject that stands
still throughout becomes part of the plate, the mattes then find nothing, and that is warned too.

With ``align`` (a drifting, handheld camera) every sampled frame is registered to a reference
frame (the middle one) with the shared geometry (:mod:`cleanplate.plate.geometry`: robust ECC
from the neighbour's warp, the same plausibility checks), and warped into its view before the
median; pixels a frame does not cover are not counted. The plate then has the reference frame's view, and the video run
aligns it to every frame as it does any handheld plate.

``matter`` is anything with ``matte_tensor(src, bgr)`` (a :class:`cleanplate.Matter`) or a function
``(frame, plate) -> alpha``; it is only ever called here, so this module does not depend on the API.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import InputError

MAX_FRAMES = 21  # sampled frames (odd: the median of a full column is a real frame value)
BUDGET_BYTES = 512 * 2**20  # the sample, its warps and masks stay under this
MIN_FRAMES = 3
ROWS = 32  # rows per chunk of the masked median (bounds the sort's temporary)
AGREE = 12 / 255  # a seen sample agrees with the plate when all channels are this close
NEVER_SEEN_WARN = 0.0005  # warn when this share of the view was never seen (0.05 %)
NO_SUBJECT = 0.001  # a matte covering less of the view than this in every frame found no subject


class NeverSeenWarning(UserWarning):
    """Part of the background was covered in every sampled frame: the plate there is a guess."""


@dataclass(frozen=True)
class AutoPlateOptions:
    """How :func:`estimate_plate` works (``cleanplate plate`` / ``video --plate auto`` flags)."""

    frames: int = MAX_FRAMES  # frames sampled from the clip
    rounds: int = 3  # the median, then rounds − 1 times: matte → mask → re-estimate
    align: bool = False  # register the frames to the reference before the median (drifting camera)
    threshold: float = 0.05  # alpha above this is subject
    grow: float = 0.02  # the subject mask is grown by this share of the long side (at least 2 px)

    def check(self) -> AutoPlateOptions:
        if not MIN_FRAMES <= self.frames <= 301:
            raise InputError(f"--auto-frames must be in [{MIN_FRAMES}, 301]; got {self.frames}")
        if not 1 <= self.rounds <= 10:
            raise InputError(f"--auto-rounds must be in [1, 10]; got {self.rounds}")
        return self


@dataclass
class AutoPlate:
    """A plate estimated from a clip; all arrays have the reference frame's size and view."""

    plate: np.ndarray  # uint8 H×W×3 RGB
    confidence: np.ndarray  # float32 H×W in [0, 1]: 0 never seen, 1 seen often and consistently
    never_seen: np.ndarray  # bool H×W: no sampled frame showed the background there, by its matte (inpainted)
    reference: int  # index of the frame (in the given sequence / the clip range) whose view it has
    frames: int  # frames used
    rounds: int
    seen: np.ndarray | None = None  # int16 H×W: frames that showed the background at each pixel
    subject_found: bool = True  # the final mattes found a subject in some sampled frame

    @property
    def never_seen_fraction(self) -> float:
        return float(self.never_seen.mean())

    def warning(self) -> str | None:
        """The never-seen (or no-subject) message when it deserves one."""
        if not self.subject_found:
            return (
                f"no moving subject was found in the {self.frames} sampled frames: if the subject stands still, "
                "--plate auto cannot see behind it (it becomes part of the plate); shoot a clean plate"
            )
        share = self.never_seen_fraction
        if share < NEVER_SEEN_WARN:
            return None
        return (
            f"the background was never seen in {100 * share:.1f} % of the view (the subject covered it in "
            f"every sampled frame, or in most of them); the plate there is inpainted and the matte unreliable "
            "(save the mask with --save never_seen=PATH, or shoot a clean plate)"
        )


# ------------------------------------------------------------------------------------ the median


def masked_median(stack: np.ndarray, use: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel median over the frames where ``use`` is set: (uint8 H×W×C, int16 count H×W).

    ``stack`` (N, H, W, C) uint8, ``use`` (N, H, W) bool. Pixels no frame may use get 0 and count 0.
    Computed by sorting in row chunks with unused samples pushed past the top, so the median is the
    middle of the first ``count`` sorted values (an even count averages the two middle ones).
    """
    n, h, w, c = stack.shape
    out = np.zeros((h, w, c), np.uint8)
    count = use.sum(0).astype(np.int16)
    for r in range(0, h, ROWS):
        block = stack[:, r : r + ROWS].astype(np.uint16)
        block[~use[:, r : r + ROWS]] = 1024
        block.sort(axis=0)
        cnt = count[r : r + ROWS].astype(np.int64)[None, :, :, None]
        lo = np.take_along_axis(block, np.maximum(cnt - 1, 0) // 2, axis=0)[0].astype(np.float32)
        hi = np.take_along_axis(block, np.maximum(cnt, 1) // 2, axis=0)[0].astype(np.float32)
        even = (cnt[0] % 2 == 0) & (cnt[0] > 0)
        med = np.where(even, (lo + np.minimum(hi, 255)) / 2, lo)
        med[cnt[0, ..., 0] == 0] = 0
        out[r : r + ROWS] = np.clip(np.rint(med), 0, 255).astype(np.uint8)
    return out, count


def _confidence(stack: np.ndarray, use: np.ndarray, plate: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Share of the seen samples that agree with the plate × how many were seen (saturating at N/4, ≥ 2)."""
    n = stack.shape[0]
    agree = np.zeros(plate.shape[:2], np.float32)
    ref = plate.astype(np.int16)
    for i in range(n):
        close = (np.abs(stack[i].astype(np.int16) - ref).max(axis=2) <= AGREE * 255) & use[i]
        agree += close
    share = agree / np.maximum(count, 1)
    enough = np.minimum(1.0, count / max(2.0, n / 4))
    return np.clip(share * enough, 0, 1).astype(np.float32)


def _fill(plate: np.ndarray, holes: np.ndarray) -> np.ndarray:
    if not holes.any():
        return plate
    return cv2.inpaint(plate, holes.astype(np.uint8), 3, cv2.INPAINT_TELEA)


# ------------------------------------------------------------------------------------ the matte


def alpha_function(matter: Any) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """``(frame, plate) -> alpha`` (float32 H×W) for a Matter-like object or a plain function."""
    if hasattr(matter, "matte_tensor"):
        import torch

        device = torch.device(getattr(matter, "device", "cpu"))

        def run(frame: np.ndarray, plate: np.ndarray) -> np.ndarray:
            def t(x: np.ndarray) -> torch.Tensor:
                return torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1)[None].float().div_(255).to(device)

            with torch.inference_mode():
                alpha = matter.matte_tensor(t(frame), t(plate))[0]
            return alpha[0, 0].float().cpu().numpy()

        return run
    if callable(matter):
        return lambda frame, plate: np.asarray(matter(frame, plate), np.float32)
    raise InputError(
        f"matter must have matte_tensor (cleanplate.load(...)) or be a function; got {type(matter).__name__}"
    )


def _subject_mask(alpha: np.ndarray, threshold: float, grow: float) -> np.ndarray:
    subject = (alpha > threshold).astype(np.uint8)
    k = max(2, int(round(grow * max(alpha.shape)))) * 2 + 1
    return cv2.dilate(subject, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))) > 0


# ------------------------------------------------------------------------------------ alignment


WORK_SIDE = 400  # registration works on grey copies no larger than this
MIN_CC = 0.3  # ECC correlation below this is no fit (texture, noise and the subject lower it)
LEVELS = 2  # pyramid levels: a few pixels of motion between neighbours at the coarse level


def _ecc_pyramid(template: np.ndarray, image: np.ndarray, warp: np.ndarray, mask: np.ndarray | None):
    """Euclidean ECC (rotation + translation) coarse to fine; ``(cc, 2×3 warp)`` or None."""
    from . import geometry as geo

    found = None
    for level in range(LEVELS - 1, -1, -1):
        s = 0.5**level
        scale, unscale = geo.scale_matrix(s), geo.scale_matrix(1 / s)
        t = cv2.resize(template, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else template
        g = cv2.resize(image, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else image
        m = None if mask is None else cv2.resize(mask, (t.shape[1], t.shape[0]), interpolation=cv2.INTER_NEAREST)
        w = (scale @ geo.as_3x3(warp) @ unscale)[:2].astype(np.float32)
        found = geo.ecc(t, g, w, cv2.MOTION_EUCLIDEAN, mask=m, iterations=50, eps=1e-5, gauss=5)
        if found is None:
            return None
        warp = (unscale @ geo.as_3x3(found[1]) @ scale)[:2]
    return None if found is None else (found[0], warp)


def _agreeing(template: np.ndarray, image: np.ndarray, warp: np.ndarray) -> np.ndarray:
    """255 where ``image`` warped by ``warp`` agrees with ``template``: the background both show."""
    size = (template.shape[1], template.shape[0])
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    warped = cv2.warpAffine(image, warp.astype(np.float32), size, flags=flags, borderMode=cv2.BORDER_REPLICATE)
    d = cv2.GaussianBlur(np.abs(template - warped), (0, 0), 2)
    agree = (d < max(3 * float(np.median(d)), 4.0)).astype(np.uint8)
    return cv2.erode(agree, np.ones((5, 5), np.uint8)) * 255


def _register(frames: Sequence[np.ndarray], ref: int, ref_alpha: np.ndarray | None = None) -> list[np.ndarray]:
    """Homographies frame i → reference frame (3×3, full-resolution pixels), outward from the reference.

    Frames of one clip are close to each other, so each is fitted by ECC (rotation + translation,
    coarse to fine; :func:`~cleanplate.plate.geometry.ecc`) from its neighbour's warp, three times:
    each fit masks out what still disagrees (the subject, in either frame), so the moving subject
    does not pull the fit. ``ref_alpha`` (the reference frame's matte) masks its subject from the
    start. Every warp passes :func:`~cleanplate.plate.geometry.implausible`; a frame that fits
    nothing keeps its neighbour's warp.
    """
    from . import geometry as geo

    h, w = frames[ref].shape[:2]
    s = min(1.0, WORK_SIDE / max(h, w))
    to_work, to_full = geo.scale_matrix(s), geo.scale_matrix(1 / s)
    grays = [geo.gray(f, s).astype(np.float32) for f in frames]
    template = grays[ref]
    base = None
    if ref_alpha is not None:
        small = cv2.resize(ref_alpha.astype(np.float32), (template.shape[1], template.shape[0]), cv2.INTER_AREA)
        background = ~_subject_mask(small, 0.05, 0.03)
        base = background.astype(np.uint8) * 255 if background.mean() > 0.1 else None
    warps: list[np.ndarray] = [np.eye(3) for _ in frames]
    for order in (range(ref + 1, len(frames)), range(ref - 1, -1, -1)):
        previous = np.eye(3)[:2]  # ECC's warp: reference pixel x shows frame pixel warp · x (work pixels)
        carried = base  # the neighbour's final mask: the reference's subject stays where it is
        for i in order:
            warp, mask = previous, carried
            for _ in range(3):
                found = _ecc_pyramid(template, grays[i], warp, mask)
                if found is None or found[0] < MIN_CC:
                    break
                warp = found[1]
                agree = _agreeing(template, grays[i], warp)
                mask = agree if base is None else cv2.bitwise_and(agree, base)
            if geo.implausible(warp, template.shape[:2]) is None:
                previous, carried = warp, mask
            warps[i] = to_full @ np.linalg.inv(geo.as_3x3(previous)) @ to_work  # frame i → reference
    return warps


def _warp(image: np.ndarray, h: np.ndarray, size: tuple[int, int], border: int = cv2.BORDER_REPLICATE) -> np.ndarray:
    return cv2.warpPerspective(image, h, (size[1], size[0]), flags=cv2.INTER_LINEAR, borderMode=border)


def _coverage(h: np.ndarray, src_size: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """Where the warped frame has real pixels (not the replicated border), shrunk by one pixel."""
    ones = np.full(src_size, 255, np.uint8)
    covered = _warp(ones, h, size, cv2.BORDER_CONSTANT) >= 254
    return cv2.erode(covered.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0


# ------------------------------------------------------------------------------------ the estimate


def estimate_plate(
    frames: Sequence[np.ndarray],
    matter: Any = None,
    *,
    options: AutoPlateOptions | None = None,
    align: bool | None = None,
    rounds: int | None = None,
    warn: bool = True,
) -> AutoPlate:
    """The background of ``frames`` (uint8 H×W×3 RGB, one shot) with the moving subject removed.

    Without ``matter`` only the temporal median is computed (one round). ``align``/``rounds``
    override ``options``. See the module docstring for the method and what the result holds.
    """
    options = options or AutoPlateOptions()
    if align is not None or rounds is not None:
        options = AutoPlateOptions(
            frames=options.frames,
            rounds=options.rounds if rounds is None else rounds,
            align=options.align if align is None else align,
            threshold=options.threshold,
            grow=options.grow,
        )
    if len(frames) < MIN_FRAMES:
        raise InputError(f"a plate from the clip needs at least {MIN_FRAMES} frames where the subject moves")
    options.check()
    stack = np.stack([np.ascontiguousarray(f) for f in frames])
    if stack.ndim != 4 or stack.shape[3] != 3 or stack.dtype != np.uint8:
        raise InputError(f"frames must be uint8 H×W×3 RGB of one size; got {stack.dtype} {stack.shape[1:]}")
    n, h, w, _ = stack.shape
    ref = n // 2
    size = (h, w)
    matte = alpha_function(matter) if matter is not None else None
    total_rounds = options.rounds if matte is not None else 1

    def views(warps: list[np.ndarray] | None) -> tuple[np.ndarray, np.ndarray]:
        if warps is None:
            return stack, np.ones((n, h, w), bool)
        warped = np.stack([_warp(stack[i], warps[i], size) for i in range(n)])
        return warped, np.stack([_coverage(warps[i], size, size) for i in range(n)])

    warps = _register(list(stack), ref) if options.align else None
    warped, covered = views(warps)
    use = covered
    plate, count = masked_median(warped, use)
    plate = _fill(plate, count == 0)
    subject_found = True
    for _round in range(1, total_rounds):
        assert matte is not None
        alphas = [matte(warped[i], plate) for i in range(n)]
        if options.align and _round == 1:  # re-register with the subject masked out of the fit
            warps = _register(list(stack), ref, alphas[ref])
            warped, covered = views(warps)
            alphas = [matte(warped[i], plate) for i in range(n)]
        subject = np.stack([_subject_mask(a, options.threshold, options.grow) for a in alphas])
        use = covered & ~subject
        plate, count = masked_median(warped, use)
        plate = _fill(plate, count == 0)
        subject_found = max(float((a > options.threshold).mean()) for a in alphas) > NO_SUBJECT
    never_seen = count == 0
    confidence = _confidence(warped, use, plate, count)
    confidence[never_seen] = 0
    result = AutoPlate(plate, confidence, never_seen, ref, n, total_rounds, count, subject_found)
    if warn and (message := result.warning()) is not None:
        warnings.warn(message, NeverSeenWarning, stacklevel=2)
    return result


def sample_clip(
    path: str | Path,
    *,
    start: float | None = None,
    end: float | None = None,
    max_frames: int = MAX_FRAMES,
) -> tuple[list[np.ndarray], list[int]]:
    """Up to ``max_frames`` evenly spaced frames of ``path`` (and their indices in the range), within
    a memory budget; one decoding pass, however long the clip."""
    from ..io.video_reader import VideoReader
    from .load import _EvenSample

    with VideoReader(path, start=start, end=end) as reader:
        frame_bytes = reader.info.width * reader.info.height * 3
        limit = max(MIN_FRAMES, min(max_frames, BUDGET_BYTES // max(1, 6 * frame_bytes)))
        sample = _EvenSample(limit)
        for i, frame in enumerate(reader):
            sample.add((i, frame.image))  # type: ignore[arg-type]
    items: list[tuple[int, np.ndarray]] = sample.items  # type: ignore[assignment]
    if len(items) < MIN_FRAMES:
        raise InputError(
            f"{path}: a plate from the clip needs at least {MIN_FRAMES} frames (the range holds {len(items)})"
        )
    return [img for _, img in items], [i for i, _ in items]


def plate_from_subject_clip(
    path: str | Path,
    matter: Any = None,
    *,
    options: AutoPlateOptions | None = None,
    start: float | None = None,
    end: float | None = None,
    warn: bool = True,
) -> AutoPlate:
    """:func:`estimate_plate` on a sample of ``path`` (``start``/``end`` in seconds);
    ``reference`` is then the index of the reference frame in the range."""
    options = (options or AutoPlateOptions()).check()
    frames, indices = sample_clip(path, start=start, end=end, max_frames=options.frames)
    result = estimate_plate(frames, matter, options=options, warn=False)
    result.reference = indices[result.reference]
    if warn and (message := result.warning()) is not None:
        warnings.warn(message, NeverSeenWarning, stacklevel=2)
    return result
