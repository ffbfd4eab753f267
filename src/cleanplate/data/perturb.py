"""Compositing and the perturbations that make a plate differ from the frame behind the subject.

In practice the plate is never the exact background: the camera moves a little (handheld),
exposure and white balance drift, sensor noise and compression differ, the subject casts a
shadow, and the background itself changes slightly. Training sees all of these; evaluation
uses fixed levels of them (``low``: aligned plate; ``high``: handheld-like with exposure drift).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .subjects import Subject

LEVELS = ("low", "medium", "high")


@dataclass(frozen=True)
class PlateDrift:
    """How far the plate may be from the true background at one difficulty level."""

    shift_px: float
    rotate_deg: float
    scale: float
    gain: float  # exposure, multiplicative
    gamma: float
    white_balance: float
    noise: float
    blur: float
    jpeg: bool


DRIFT = {
    "low": PlateDrift(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.01, 0.0, False),
    "medium": PlateDrift(1.5, 0.3, 0.005, 0.05, 0.05, 0.02, 0.015, 0.5, True),
    "high": PlateDrift(4.0, 0.8, 0.015, 0.12, 0.1, 0.05, 0.02, 1.0, True),
}


def _affine(img: np.ndarray, dx: float, dy: float, deg: float, scale: float) -> np.ndarray:
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), deg, 1 + scale)
    m[:, 2] += (dx, dy)
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(
        ".jpg", (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED).astype(np.float32) / 255 if ok else img


def photometric(img: np.ndarray, rng: np.random.Generator, d: PlateDrift) -> np.ndarray:
    """Exposure, gamma and white-balance drift, then blur, noise and compression."""
    out = img
    if d.gain or d.gamma or d.white_balance:
        gain = 1 + rng.uniform(-d.gain, d.gain)
        wb = 1 + rng.uniform(-d.white_balance, d.white_balance, 3)
        gamma = 1 + rng.uniform(-d.gamma, d.gamma)
        out = np.clip(out * (gain * wb).astype(np.float32), 0, 1) ** np.float32(gamma)
    if d.blur and rng.random() < 0.5:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.3, d.blur))
    if d.noise:
        out = out + rng.normal(0, rng.uniform(0.3, 1) * d.noise, out.shape).astype(np.float32)
    out = np.clip(out, 0, 1).astype(np.float32)
    if d.jpeg and rng.random() < 0.5:
        out = _jpeg(out, int(rng.integers(60, 95)))
    return out


def perturb_plate(plate: np.ndarray, rng: np.random.Generator, level: str | PlateDrift) -> np.ndarray:
    """The plate as a camera would have recorded it at a slightly different moment."""
    d = DRIFT[level] if isinstance(level, str) else level
    out = plate
    if d.shift_px or d.rotate_deg or d.scale:
        out = _affine(
            out,
            rng.uniform(-d.shift_px, d.shift_px),
            rng.uniform(-d.shift_px, d.shift_px),
            rng.uniform(-d.rotate_deg, d.rotate_deg),
            rng.uniform(-d.scale, d.scale),
        )
    return photometric(out, rng, d)


def cover_crop(
    img: np.ndarray, h: int, w: int, rng: np.random.Generator | None = None, zoom: float = 1.0
) -> np.ndarray:
    """Resize to cover (h, w) (times ``zoom``), then crop at a random or central position."""
    ih, iw = img.shape[:2]
    s = max(h / ih, w / iw) * zoom
    nh, nw = max(h, round(ih * s)), max(w, round(iw * s))
    img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    y = int(rng.integers(0, nh - h + 1)) if rng is not None else (nh - h) // 2
    x = int(rng.integers(0, nw - w + 1)) if rng is not None else (nw - w) // 2
    return np.ascontiguousarray(img[y : y + h, x : x + w])


def place_subject(
    subject: Subject, h: int, w: int, rng: np.random.Generator, *, height_frac: tuple[float, float] = (0.4, 1.1)
) -> tuple[np.ndarray, np.ndarray]:
    """Subject (fgr, alpha) warped into an (h, w) frame: random scale, rotation, flip, position."""
    sh, sw = subject.pha.shape
    scale = rng.uniform(*height_frac) * h / sh
    deg = rng.uniform(-15, 15) if subject.kind != "person" else rng.uniform(-5, 5)
    cx = rng.uniform(0.25, 0.75) * w
    cy = rng.uniform(0.45, 0.8) * h if subject.kind == "person" else rng.uniform(0.3, 0.7) * h
    m = cv2.getRotationMatrix2D((sw / 2, sh / 2), deg, scale)
    m[:, 2] += (cx - sw / 2, cy - sh / 2)
    if subject.kind == "person" and rng.random() < 0.6:  # people usually stand on the bottom edge
        m[1, 2] += h - (cy + sh * scale / 2)
    fgr, pha = subject.fgr, subject.pha
    if rng.random() < 0.5:
        fgr, pha = fgr[:, ::-1], pha[:, ::-1]
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    fgr = cv2.warpAffine(np.ascontiguousarray(fgr), m, (w, h), flags=interp, borderMode=cv2.BORDER_REPLICATE)
    pha = cv2.warpAffine(np.ascontiguousarray(pha), m, (w, h), flags=interp, borderValue=0)
    return fgr, np.clip(pha, 0, 1)


def camouflage(
    fgr: np.ndarray,
    pha: np.ndarray,
    bg: np.ndarray,
    rng: np.random.Generator,
    shade: float | None = None,
    own_texture: bool = False,
) -> np.ndarray:
    """``fgr`` with the background's own colours in a soft blob of the subject (a white coat on a
    white wall, a tan neck against a sunset): alpha is unchanged, so there only the shape around
    it tells subject from background. The blob (axes 10-30 % of the subject's size) is centred on
    the solid interior and may reach the outline; its colours are the background's, tinted by a
    few percent and keeping a fifth of the subject's own (colours that coincide, not a hole).

    ``shade``: the blob is the background darkened to this fraction instead (a black jumper over a
    dark lake), all but fully: frame = shade × plate there, what a deep shadow would look like,
    while alpha stays 1 and only the shape says it is subject.

    ``own_texture`` (with ``shade``): the blob keeps the subject's own texture (its luma detail
    about the local mean) on the background's darkened local colour: a dark subject whose colour
    happens to be a shadow's (a dark-green squash over a dusk lake) but whose texture is not the
    plate's. A cast shadow keeps the plate's texture; this is what tells the two apart, where a
    blob of the darkened plate itself is a shadow in every local respect but its label."""
    h, w = pha.shape
    ys, xs = np.nonzero(pha > 0.99)
    if len(ys) < 64:
        return fgr
    i = int(rng.integers(len(ys)))
    extent = float(np.sqrt(len(ys)))
    axes = (max(2, int(rng.uniform(0.1, 0.3) * extent)), max(2, int(rng.uniform(0.1, 0.3) * extent)))
    blob = np.zeros((h, w), np.float32)
    cv2.ellipse(blob, (int(xs[i]), int(ys[i])), axes, rng.uniform(0, 180), 0, 360, 1.0, -1, cv2.LINE_AA)
    cover = 0.8 if shade is None else 0.95
    blob = cover * cv2.GaussianBlur(blob, (0, 0), max(1.0, 0.1 * min(axes)))[..., None] * np.clip(pha, 0, 1)[..., None]
    if shade is None:
        paint = bg + rng.uniform(-0.04, 0.04, 3).astype(np.float32)
    elif own_texture:
        sigma = max(2.0, 0.5 * min(axes))
        luma = fgr @ np.float32([0.299, 0.587, 0.114])
        detail = np.clip(luma / np.maximum(cv2.GaussianBlur(luma, (0, 0), sigma), 1e-3), 0.25, 4.0)
        local = cv2.GaussianBlur(bg, (0, 0), sigma)
        paint = local * np.float32(shade) * detail[..., None] + rng.uniform(-0.01, 0.01, 3).astype(np.float32)
    else:
        paint = bg * np.float32(shade) + rng.uniform(-0.01, 0.01, 3).astype(np.float32)
    return np.clip(fgr * (1 - blob) + paint * blob, 0, 1).astype(np.float32)


def colour_jitter(img: np.ndarray, rng: np.random.Generator, strength: float = 0.15) -> np.ndarray:
    hsv = cv2.cvtColor(np.clip(img, 0, 1).astype(np.float32), cv2.COLOR_RGB2HSV)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-20, 20) * strength / 0.15) % 360
    hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(1 - strength * 2, 1 + strength * 2), 0, 1)
    hsv[..., 2] = np.clip(hsv[..., 2] * rng.uniform(1 - strength, 1 + strength), 0, 1)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def cast_shadow(bg: np.ndarray, alpha: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Darken the background with a blurred, offset copy of the subject's silhouette."""
    h, w = alpha.shape
    m = np.float32([[1, rng.uniform(-0.6, 0.6), rng.uniform(-0.15, 0.15) * w], [0, rng.uniform(0.3, 1.0), 0]])
    m[1, 2] = h * (1 - m[1, 1])  # keep the base of the subject where it stands
    shadow = cv2.warpAffine(alpha, m, (w, h), borderValue=0)
    shadow = cv2.GaussianBlur(shadow, (0, 0), rng.uniform(2, 12) * max(h, w) / 512)
    return bg * (1 - rng.uniform(0.15, 0.5) * shadow)[..., None]


def background_change(bg: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Small changes in the scene itself: a few regions shift, brighten or sway (leaves, screens)."""
    h, w = bg.shape[:2]
    out = bg.copy()
    for _ in range(rng.integers(1, 4)):
        rh, rw = int(rng.uniform(0.03, 0.12) * h) + 2, int(rng.uniform(0.03, 0.12) * w) + 2
        y, x = int(rng.integers(0, h - rh)), int(rng.integers(0, w - rw))
        region = out[y : y + rh, x : x + rw]
        if rng.random() < 0.5:
            region = np.roll(region, (int(rng.integers(-2, 3)), int(rng.integers(-2, 3))), (0, 1))
        out[y : y + rh, x : x + rw] = np.clip(region * rng.uniform(0.9, 1.1), 0, 1)
    return out


def composite(fgr: np.ndarray, pha: np.ndarray, bg: np.ndarray) -> np.ndarray:
    a = pha[..., None]
    return (fgr * a + bg * (1 - a)).astype(np.float32)
