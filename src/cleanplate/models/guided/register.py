"""Register a handheld plate onto its frame inside the model: robust coarse-to-fine Lucas–Kanade.

A handheld plate is off by a few pixels, a fraction of a degree and a percent of scale; after
that any per-pixel plate difference lights up along every background edge. :func:`register`
estimates the affine map (and a grey-level gain and offset, for exposure drift) that carries the
plate onto the frame:

- Gauss–Newton on the grey images over a 2× average pyramid, coarsest level first, so shifts of
  ten working pixels are a pixel or less where the search starts;
- the subject is not part of the plate, so every iteration reweights the residuals (Tukey, scale
  from the weighted mean residual) and pixels whose warped position falls outside the plate count
  for nothing;
- the map is kept only where it explains the background better than the identity (the robust
  cost at the finest level drops by :data:`MIN_GAIN`, over the pixels either map explains: the
  subject, explained by neither, does not dilute the evidence), so an aligned plate stays exactly
  as it is and a failed fit falls back to it.

The map is in ``grid_sample``'s normalised coordinates (``align_corners=False``), so one map holds
for every resolution of the same frame: estimated at the working grid, applied at full resolution.
Only fixed-size tensor arithmetic (the 8×8 normal equations by unrolled elimination), so it runs
under tracing and exports to ONNX.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ...transforms import to_tensor
from .features import blur, luma

MIN_SIDE = 40  # the pyramid stops before a level's short side gets below this
MAX_SIDE = 512  # the finest level: larger working grids are averaged down to this first (speed)
ITERS = (2, 3, 5, 8)  # Gauss–Newton iterations per level, finest first (fine levels cost the most)
MIN_GAIN = 0.9  # keep the map only if the robust residual falls below this fraction of the identity's
DAMPING = 1e-3  # Levenberg–Marquardt: relative weight of the Hessian diagonal added to itself
N_PARAMS = 8  # six affine terms, grey gain, grey offset
ONE_FIT = 1.0  # finest-grid pixels: a blurred coarse fit that moves no pixel farther is refined alone
SETTLED = 0.1  # finest-grid pixels: a map that moves no pixel this far before the finest level is the identity


RECOVERED_SHIFT = 0.012  # of the frame's long side: a plate shifted this far is registered (see recovered_shift)
RECOVERED_MIN_SIDE = 320  # ... when the working grid's long side is at least this


def recovered_shift(working_long_side: int) -> float:
    """The plate shift, as a fraction of the frame's long side, that :func:`register` recovers for
    a working grid with this long side (0: do not count on it).

    Measured on the vtest sample, a pure shift of 1.5 % of the long side: recovered within 0.1 px at
    a working side of 320 (640 px frame, scale 1/2), within 0.7 px at 375 (3000 px, 1/8); up to 3 %
    within 0.1 px at 480-512 (1080p at 1/4, 1024 px at 1/2); at 160 (320 px frame) only 90 % of a
    1 % shift. The margin below 1.5 % is for busier subjects than the sample's.
    """
    return RECOVERED_SHIFT if working_long_side >= RECOVERED_MIN_SIDE else 0.0


def eager() -> bool:
    """Running plain PyTorch (not traced, exported or compiled): data-dependent branches are allowed."""
    return not (torch.jit.is_tracing() or torch.compiler.is_compiling())


def identity(b: int, like: torch.Tensor) -> torch.Tensor:
    """(B, 2, 3) identity maps."""
    eye = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=like.dtype, device=like.device)
    return eye.expand(b, 2, 3).clone()


def _grid(theta: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``affine_grid(theta, (B, C, h, w))`` written out (ONNX has no affine grid before opset 20)."""
    x, y = _coords(h, w, theta)
    return grid_at(theta, x, y)


def grid_at(theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``grid_sample``'s grid (B, H, W, 2): normalised coordinates ``x``, ``y`` (broadcasting to
    (B, 1, H, W)) mapped by ``theta`` (B, 2, 3)."""
    t = theta.reshape(-1, 6, 1, 1)
    gx = t[:, 0:1] * x + t[:, 1:2] * y + t[:, 2:3]
    gy = t[:, 3:4] * x + t[:, 4:5] * y + t[:, 5:6]
    return torch.cat([gx, gy], dim=1).permute(0, 2, 3, 1)


def warp(img: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """``img`` (the plate) sampled at the frame's pixels mapped by ``theta``; borders replicated."""
    grid = _grid(theta, img.shape[-2], img.shape[-1])
    return F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _solve(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Solve (B, n, n) x = (B, n) for symmetric positive definite ``a``.

    LAPACK when running eagerly; unrolled elimination when traced or exported (ONNX has no solver).
    """
    if eager():
        return torch.linalg.solve(a, b)
    n = a.shape[-1]
    m = torch.cat([a, b.unsqueeze(-1)], dim=-1)
    rows = [m[:, i] for i in range(n)]
    for i in range(n):
        pivot = rows[i][:, i : i + 1]
        pivot = torch.where(pivot.abs() < 1e-12, torch.full_like(pivot, 1e-12), pivot)
        rows[i] = rows[i] / pivot
        for j in range(n):
            if j != i:
                rows[j] = rows[j] - rows[j][:, i : i + 1] * rows[i]
    return torch.stack([r[:, n] for r in rows], dim=1)


def centres(n: int, like: torch.Tensor) -> torch.Tensor:
    """Normalised centres of ``n`` pixels along one side (n,), ``align_corners=False``."""
    return (torch.arange(n, dtype=like.dtype, device=like.device) * 2 + 1) / n - 1


def _coords(h: int, w: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised pixel-centre coordinates (1, 1, H, W) each, ``align_corners=False``."""
    xs, ys = centres(w, like), centres(h, like)
    return xs.view(1, 1, 1, w).expand(1, 1, h, w), ys.view(1, 1, h, 1).expand(1, 1, h, w)


def _residual(frame: torch.Tensor, plate: torch.Tensor, theta: torch.Tensor, photo: torch.Tensor):
    """Warped plate, its validity (inside the plate) and the residual to the frame."""
    h, w = frame.shape[-2:]
    grid = _grid(theta, h, w)
    warped = F.grid_sample(plate, grid, mode="bilinear", padding_mode="border", align_corners=False)
    inside = ((grid.abs() < 1 - 2.0 / min(h, w)).all(-1)).unsqueeze(1).to(frame.dtype)
    gain, offset = photo[:, 0].view(-1, 1, 1, 1), photo[:, 1].view(-1, 1, 1, 1)
    return warped, inside, gain * warped + offset - frame


def _scale(r: torch.Tensor, wts: torch.Tensor) -> torch.Tensor:
    """Tukey's scale (4.685 sigma) from the mean absolute residual under weights ``wts`` (B, 1, 1, 1)."""
    return 4.685 * 1.25 * (wts * r.abs()).sum((2, 3), keepdim=True) / wts.sum((2, 3), keepdim=True).clamp_min(1.0)


def _robust_weights(r: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
    """Tukey weights of residuals ``r``, scale from the mean residual under ``prior`` weights."""
    u = r / _scale(r, prior).clamp(0.01, 0.1)
    return torch.where(u.abs() < 1, (1 - u * u) ** 2, torch.zeros_like(u))


def _cost(r: torch.Tensor, inside: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Mean Tukey loss (bounded: the subject counts as a constant) over pixels inside the plate."""
    u = (r / scale).clamp(-1, 1)
    rho = 1 - (1 - u * u) ** 3
    return (rho * inside).sum((1, 2, 3)) / inside.sum((1, 2, 3)).clamp_min(1.0)


def _step(frame, plate, theta, photo, wts):
    """One reweighted Gauss–Newton step: new map, new photometric terms, new weights."""
    b, _, h, w = frame.shape
    warped, inside, r = _residual(frame, plate, theta, photo)
    wts = _robust_weights(r, wts * inside) * inside
    gain = photo[:, 0].view(-1, 1, 1, 1)
    p = F.pad(warped, (1, 1, 1, 1), mode="replicate")
    gu = (p[:, :, 1:-1, 2:] - p[:, :, 1:-1, :-2]) * 0.5 * (w / 2) * gain  # d/du in normalised units
    gv = (p[:, :, 2:, 1:-1] - p[:, :, :-2, 1:-1]) * 0.5 * (h / 2) * gain
    x, y = _coords(h, w, frame)
    jac = torch.cat([gu * x, gu * y, gu, gv * x, gv * y, gv, warped, torch.ones_like(warped)], dim=1)  # (B, 8, H, W)
    jw = jac * wts
    hess = torch.einsum("bihw,bjhw->bij", jw, jac)
    grad = (jw * r).sum((2, 3))
    eye = torch.eye(N_PARAMS, dtype=hess.dtype, device=hess.device)
    diag = (hess * eye).sum(-1, keepdim=True)  # (B, 8, 1); no diagonal/diag_embed: ONNX has neither
    hess = hess + eye * (DAMPING * diag + 1e-9)
    delta = _solve(hess, -grad)
    theta = theta + delta[:, :6].view(b, 2, 3)
    photo = photo + delta[:, 6:]
    return theta, photo, wts


def _displacement(theta: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(B,) the farthest any frame corner moves under ``theta``, in pixels of an h×w grid (an affine
    map moves no pixel farther than its corners)."""
    d = theta - identity(theta.shape[0], theta)
    corners = torch.tensor(
        [[-1.0, -1.0, 1.0], [1.0, -1.0, 1.0], [-1.0, 1.0, 1.0], [1.0, 1.0, 1.0]], dtype=d.dtype, device=d.device
    )
    moved = torch.einsum("bij,kj->bki", d, corners)  # (B, 4, 2) in normalised units
    scale = torch.tensor([w / 2, h / 2], dtype=d.dtype, device=d.device)
    return (moved * scale).norm(dim=-1).amax(-1)


def _pyramid(x: torch.Tensor) -> list[torch.Tensor]:
    while max(x.shape[-2:]) > MAX_SIDE:
        x = F.avg_pool2d(x, 2)
    levels = [x]
    while min(levels[-1].shape[-2:]) // 2 >= MIN_SIDE and len(levels) < len(ITERS):
        levels.append(F.avg_pool2d(levels[-1], 2))
    return levels[::-1]  # coarsest first


def _fit(frames: list[torch.Tensor], plates: list[torch.Tensor], smooth: bool, stop: int | None = None):
    """Gauss–Newton over the pyramid levels ``[:stop]`` (coarsest first): ``(theta, photo, wts)``.

    ``smooth``: every level but the finest is blurred first (:func:`.features.blur`), which widens
    the basin: a periodic background (bricks, a lattice) or a scale change leaves the unblurred fit
    in a local minimum pixels off at the frame's edges, and blurring loses other fits; see :func:`register`.
    """
    b, n = frames[0].shape[0], len(frames)
    theta = identity(b, frames[0])
    photo = torch.tensor([1.0, 0.0], dtype=frames[0].dtype, device=frames[0].device).expand(b, 2).clone()
    wts = None
    for level, (fr, pl) in enumerate(zip(frames[:stop], plates[:stop], strict=True)):
        if smooth and level < n - 1:
            fr, pl = blur(fr), blur(pl)
        wts = torch.ones_like(fr)
        for _ in range(ITERS[n - 1 - level]):
            theta, photo, wts = _step(fr, pl, theta, photo, wts)
    return theta, photo, wts


def _resume(frames, plates, fit):
    """The finest level's iterations after a :func:`_fit` stopped before it."""
    theta, photo, _ = fit
    fr, pl = frames[-1], plates[-1]
    wts = torch.ones_like(fr)
    for _ in range(ITERS[0]):
        theta, photo, wts = _step(fr, pl, theta, photo, wts)
    return theta, photo, wts


def register(src: torch.Tensor, bgr: torch.Tensor) -> torch.Tensor:
    """The (B, 2, 3) map from frame to plate coordinates that aligns ``bgr`` onto ``src`` (identity if none helps).

    ``warp(bgr, register(src, bgr))`` is the registered plate. No gradients flow through the estimate.
    Two fits run, one on the pyramid as it is and one on its blurred coarse levels, and the one
    that explains the background better is kept: measured on the held-out composites at the
    `high` drift level (260 cases), either alone left 26-27 cases more than 2 px off at a corner,
    each a different set (bricks and scale changes lose the first, some textures the second).
    """
    with torch.no_grad(), torch.autocast(src.device.type, enabled=False):
        frame, plate = luma(src.float()), luma(bgr.float())
        b = frame.shape[0]
        frames, plates = _pyramid(frame), _pyramid(plate)
        ident = identity(b, frames[-1])
        settled = torch.zeros(b, dtype=torch.bool, device=frame.device)
        if len(frames) == 1:
            fit = _fit(frames, plates, False)
        else:
            # the blurred fit first: where it moves no pixel the plain one has not either (measured on
            # the held-out composites, 360 medium and high drift cases), so an aligned plate costs one fit
            smooth = _fit(frames, plates, True, stop=len(frames) - 1)
            moved = _displacement(smooth[0], *frames[-1].shape[-2:]) if eager() else None
            if moved is not None:
                # The finest level costs three quarters of the time. Where the coarser levels moved no
                # pixel by a tenth of one, the map would not be kept (measured: sub-pixel shifts that
                # the full fit keeps read above 0.5 px here, aligned plates below 0.06), so the
                # identity is the answer without it. Tracing keeps every step (no data-dependent exit).
                settled = moved < SETTLED
                if bool(settled.all()):
                    return ident
            if moved is not None and bool((moved < ONE_FIT).all()):
                # a small move: the plain fit finds the same (traced: both always run and compete)
                fit = _resume(frames, plates, smooth)
            else:
                coarse = [_fit(frames, plates, False, stop=len(frames) - 1), smooth]
                fit = _resume(frames, plates, _pick(frames[-1], plates[-1], coarse))
        return _keep(frames[-1], plates[-1], fit, settled, ident)


def _pick(fr: torch.Tensor, pl: torch.Tensor, fits):
    """Of the coarse fits, the one with the lower robust cost at the finest level (per frame of the
    batch): only it is refined there, which is three quarters of a fit's time."""
    scored = []
    for theta, photo, _ in fits:
        _, inside, r = _residual(fr, pl, theta, photo)
        scored.append((theta, photo, r, inside))
    scale = None
    for _, _, r, inside in scored:
        sc = _scale(r, _robust_weights(r, inside) * inside).clamp_min(0.004)
        scale = sc if scale is None else torch.minimum(scale, sc)
    best_theta, best_photo, best_cost = None, None, None
    for theta, photo, r, inside in scored:
        cost = _cost(r, inside, scale)
        if best_cost is None:
            best_theta, best_photo, best_cost = theta, photo, cost
        else:
            take = cost < best_cost
            best_theta = torch.where(take.view(-1, 1, 1), theta, best_theta)
            best_photo = torch.where(take.view(-1, 1), photo, best_photo)
            best_cost = torch.minimum(cost, best_cost)
    return best_theta, best_photo, None


def _keep(fr, pl, fit, settled, ident) -> torch.Tensor:
    """The fit's map where it explains the background clearly better than the identity, else the identity."""
    theta, photo, wts = fit
    _, inside0, r0 = _residual(fr, pl, ident, photo)  # the same exposure terms: only the geometry is judged
    _, inside1, r1 = _residual(fr, pl, theta, photo)
    # Both judged at the noise level the fit reached on the background (the fit's own weights):
    # background that fits costs little, misregistered edges and the subject cost ~1 each.
    wts1 = _robust_weights(r1, wts * inside1) * inside1
    scale = _scale(r1, wts1).clamp_min(0.004)
    # Pixels that neither map explains (the subject) are evidence for neither: counted, they
    # dilute the gain, and a subject over 60 % of the frame made a 4 px shift look not worth it.
    evidence = inside0 * inside1 * ((r0.abs() < scale) | (r1.abs() < scale)).to(fr.dtype)
    better = _cost(r1, evidence, scale) < MIN_GAIN * _cost(r0, evidence, scale)
    sane = (theta - ident).abs().amax((1, 2)) < 0.2  # a few percent of rotation/scale, a tenth of the frame
    keep = better & sane & ~settled & torch.isfinite(theta).all(-1).all(-1)
    return torch.where(keep.view(-1, 1, 1), theta, ident)


# ------------------------------------------------------------------ measuring a plate's shift (warnings)

MEASURE_SIDE = 384  # the shift for a warning is measured on copies no larger than this
MEASURE_MIN_GAIN = 0.8  # a shift beyond register's reach is kept when it leaves below this of the detail difference


def measure_shift(frame: np.ndarray, plate: np.ndarray, ignore_below: float = 0.0) -> tuple[float, float] | None:
    """How far the plate's content sits from the frame's, (dx, dy) frame pixels (the frame is the plate
    moved by it; uint8 or float RGB of one size), or None when no shift explains the background.

    Phase correlation (:func:`cleanplate.plate.fit.plate_offset`) finds a shift of any size but a large
    subject or a periodic background pulls it by pixels or puts a peak where none is; :func:`register`,
    robust to the subject, is exact to a tenth of a pixel but sees only a few percent (and keeps a map
    only where it explains the background better than the plate as it is). So: the registration of
    the plate as it is, unless the registration started from the coarse peak explains the
    background clearly better (median difference of detail, so exposure drift does not count);
    then to a pixel (the peak, refined where registration improves it). About 70 ms on one core;
    with ``ignore_below`` (px: a model that registers that much itself) a coarse peak under half of
    it ends the measurement there (None), in about 5 ms.
    """
    from ...plate.fit import plate_offset

    h, w = frame.shape[:2]
    if min(h, w) < 16:
        return None

    coarse = plate_offset(frame, plate)
    if ignore_below > 0 and (coarse is None or math.hypot(*coarse) < 0.5 * ignore_below):
        return None
    src, bgr = (to_tensor(np.ascontiguousarray(x[..., :3]))[None].float() for x in (frame, plate))
    k = max(1, math.ceil(max(h, w) / MEASURE_SIDE))
    if k > 1:
        src, bgr = F.avg_pool2d(src, k, ceil_mode=True), F.avg_pool2d(bgr, k, ceil_mode=True)
    if min(src.shape[-2:]) < 16:  # a sliver of a frame: too little background to tell
        return None
    with torch.no_grad():
        best = register(src, bgr)  # within its reach: exact, and identity unless it explains the background better
        if coarse is not None:  # beyond its reach: start from the coarse peak, keep it if it explains clearly more
            start = identity(1, src)
            start[0, 0, 2], start[0, 1, 2] = -2 * coarse[0] / w, -2 * coarse[1] / h
            moved = _compose(start, register(src, warp(bgr, start)))
            if _detail_cost(src, bgr, moved) < MEASURE_MIN_GAIN * _detail_cost(src, bgr, best):
                best = moved
        if torch.equal(best, identity(1, src)):
            return None
    # theta maps frame to plate coordinates: the plate's content sits at +theta, the frame at -theta of it
    return -float(best[0, 0, 2]) * w / 2, -float(best[0, 1, 2]) * h / 2


def _detail_cost(src: torch.Tensor, bgr: torch.Tensor, theta: torch.Tensor, margin: int = 4) -> float:
    """Median difference of detail (grey minus its 5×5 mean) between frame and warped plate: the
    subject is under half of most frames, and exposure drift has no detail."""

    def detail(x: torch.Tensor) -> torch.Tensor:
        g = luma(x)
        return g - F.avg_pool2d(F.pad(g, (2, 2, 2, 2), mode="replicate"), 5, 1)

    r = (detail(src) - detail(warp(bgr, theta)))[..., margin:-margin, margin:-margin]
    return float(r.abs().median())


def _compose(outer: torch.Tensor, inner: torch.Tensor) -> torch.Tensor:
    """The map ``warp(warp(x, outer), inner) == warp(x, _compose(outer, inner))`` (up to resampling)."""
    row = torch.tensor([[[0.0, 0.0, 1.0]]], dtype=outer.dtype, device=outer.device).expand(outer.shape[0], 1, 3)
    return (torch.cat([outer, row], 1) @ torch.cat([inner, row], 1))[:, :2]
