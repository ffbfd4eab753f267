"""Procedural subjects that widen a small ground-truth set.

Textured shapes with soft or hard edges, holes, hair-like strands and semi-transparent regions:
the cases where a plate difference alone is ambiguous (colour matches the background, thin
structures, partial coverage). Structured subjects (``structure_p``) add what people and blobs
lack and plants, toys and baskets have: leaf clusters, fur along the whole outline, lattices of
holes, and outlines traced from real photos. Volumes (``volume_p``) fill a whole region with
partial coverage: a mass of fine strands (a troll's or doll's hair, fur) or a canopy of leaves and
twigs with the background showing through its gaps: the held-out failures were regions like these
answered as solid. Every subject is a pure function of its random generator.
"""

from __future__ import annotations

import cv2
import numpy as np

from .subjects import Subject


def _texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Smooth random colour field plus stripes or noise, float32 HxWx3 in [0, 1]."""
    base = rng.uniform(0, 1, 3).astype(np.float32)
    small = rng.uniform(-0.35, 0.35, (max(2, h // 32), max(2, w // 32), 3)).astype(np.float32)
    field = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    tex = base + field
    if rng.random() < 0.4:
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        angle, freq = rng.uniform(0, np.pi), rng.uniform(0.05, 0.4)
        stripes = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * freq)[..., None]
        tex = tex + 0.2 * stripes * rng.uniform(-1, 1, 3).astype(np.float32)
    tex = tex + rng.normal(0, rng.uniform(0, 0.05), tex.shape).astype(np.float32)
    return np.clip(tex, 0, 1).astype(np.float32)


def _blob_mask(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    mask = np.zeros((h, w), np.float32)
    for _ in range(rng.integers(1, 4)):
        kind = rng.integers(0, 3)
        cx, cy = rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * h
        if kind == 0:
            axes = (int(rng.uniform(0.1, 0.35) * w), int(rng.uniform(0.1, 0.4) * h))
            cv2.ellipse(mask, (int(cx), int(cy)), axes, rng.uniform(0, 180), 0, 360, 1.0, -1, cv2.LINE_AA)
        else:
            n = rng.integers(3, 9)
            ang = np.sort(rng.uniform(0, 2 * np.pi, n))
            rad = rng.uniform(0.1, 0.35, n) * min(h, w)
            pts = np.stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)], 1).astype(np.int32)
            cv2.fillPoly(mask, [pts], 1.0, cv2.LINE_AA)
    if rng.random() < 0.3:  # a hole
        r = int(rng.uniform(0.03, 0.1) * min(h, w))
        cv2.circle(mask, (int(rng.uniform(0.35, 0.65) * w), int(rng.uniform(0.35, 0.65) * h)), r, 0.0, -1, cv2.LINE_AA)
    if rng.random() < 0.5:  # soft (defocused) edge
        s = rng.uniform(0.5, 4)
        mask = cv2.GaussianBlur(mask, (0, 0), s)
    return mask


def _strands(
    rng: np.random.Generator,
    h: int,
    w: int,
    mask: np.ndarray,
    count: tuple[int, int] = (20, 120),
    length_frac: tuple[float, float] = (0.05, 0.3),
) -> np.ndarray:
    """Hair-like curves growing out of the mask's edge, thin and partially transparent."""
    out = np.zeros((h * 2, w * 2), np.float32)  # drawn at 2x then reduced: sub-pixel widths
    ys, xs = np.nonzero(mask > 0.5)
    if len(ys) == 0:
        return out[::2, ::2]
    for _ in range(rng.integers(*count)):
        i = rng.integers(len(ys))
        p = np.array([xs[i], ys[i]], np.float32) * 2
        direction = rng.normal(0, 1, 2)
        direction /= np.linalg.norm(direction) + 1e-6
        length = rng.uniform(*length_frac) * min(h, w) * 2
        curl = rng.normal(0, 0.08)
        pts = []
        for t in np.linspace(0, 1, 12):
            angle = curl * t * 6
            rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
            pts.append(p + rot @ direction * length * t)
        cv2.polylines(out, [np.array(pts, np.int32)], False, float(rng.uniform(0.4, 1.0)), 1, cv2.LINE_AA)
    return cv2.resize(out, (w, h), interpolation=cv2.INTER_AREA)


def _photo_texture(rng: np.random.Generator, h: int, w: int, photos: list[np.ndarray]) -> np.ndarray:
    """A crop of a real photo: a subject whose look alone cannot tell it from a background."""
    photo = photos[rng.integers(len(photos))]
    ph, pw = photo.shape[:2]
    s = max(h / ph, w / pw) * rng.uniform(1.0, 2.0)
    img = cv2.resize(photo, (max(w, round(pw * s)), max(h, round(ph * s))), interpolation=cv2.INTER_AREA)
    y, x = rng.integers(0, img.shape[0] - h + 1), rng.integers(0, img.shape[1] - w + 1)
    tex = img[y : y + h, x : x + w]
    if rng.random() < 0.5:
        tex = tex[::-1] if rng.random() < 0.5 else tex[:, ::-1]
    gain = rng.uniform(0.8, 1.2, 3).astype(np.float32)
    return np.clip(tex * gain, 0, 1).astype(np.float32)


def _edge_points(mask: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` random (x, y) points on the outline of a mask (its centre when it has no outline)."""
    binary = (mask > 0.5).astype(np.uint8)
    ys, xs = np.nonzero(binary - cv2.erode(binary, np.ones((3, 3), np.uint8)))
    if len(ys) == 0:
        return np.full((n, 2), (mask.shape[1] / 2, mask.shape[0] / 2), np.float32)
    i = rng.integers(len(ys), size=n)
    return np.stack([xs[i], ys[i]], 1).astype(np.float32)


def _foliage(rng: np.random.Generator, h: int, w: int, mask: np.ndarray) -> np.ndarray:
    """Clusters of small leaves (thin rotated ellipses, some on stalks) around the outline."""
    out = np.zeros((h * 2, w * 2), np.float32)
    scale = min(h, w) * 2
    for x, y in _edge_points(mask, rng, int(rng.integers(40, 200))) * 2:
        angle = rng.uniform(0, 360)
        reach = rng.uniform(0, 0.12) * scale
        cx = x + reach * np.cos(np.radians(angle))
        cy = y + reach * np.sin(np.radians(angle))
        if reach > 4:
            cv2.line(out, (int(x), int(y)), (int(cx), int(cy)), 1.0, 1, cv2.LINE_AA)
        axes = (max(2, int(rng.uniform(0.01, 0.06) * scale)), max(1, int(rng.uniform(0.003, 0.02) * scale)))
        cv2.ellipse(out, (int(cx), int(cy)), axes, angle, 0, 360, 1.0, -1, cv2.LINE_AA)
    return cv2.resize(out, (w, h), interpolation=cv2.INTER_AREA)


def _lattice(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A coverage map of 1 with a regular pattern of holes (mesh, lace, basket weave)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    period = rng.uniform(0.02, 0.08) * min(h, w)
    angle = rng.uniform(0, np.pi / 2)
    u = (xx * np.cos(angle) + yy * np.sin(angle)) / period
    v = (-xx * np.sin(angle) + yy * np.cos(angle)) / period
    bar = rng.uniform(0.15, 0.45)  # bar width as a share of the period
    # Distance (in pixels) to the nearest bar; coverage falls off over about one pixel.
    d = np.minimum(np.abs(u - np.round(u)), np.abs(v - np.round(v))) * period - bar * period / 2
    return np.clip(0.5 - d, 0, 1).astype(np.float32)


def _photo_outline(rng: np.random.Generator, h: int, w: int, mask: np.ndarray, photos: list[np.ndarray]) -> np.ndarray:
    """Fringe traced from a real photo: a soft threshold of its brightness near the outline.

    Natural images give natural shapes (branches, leaves, clutter, thin gaps) for free.
    """
    gray = _photo_texture(rng, h, w, photos).mean(axis=2)
    gray = cv2.GaussianBlur(gray, (0, 0), rng.uniform(0.5, 2.0))
    level = np.quantile(gray, rng.uniform(0.3, 0.7))
    sharp = rng.uniform(8, 40)  # edge width of about 1/sharp in grey levels
    shape = np.clip((gray - level) * sharp + 0.5, 0, 1)
    if rng.random() < 0.5:
        shape = 1 - shape
    reach = max(3, int(rng.uniform(0.03, 0.15) * min(h, w))) | 1
    near = cv2.GaussianBlur(cv2.dilate((mask > 0.5).astype(np.float32), np.ones((reach, reach), np.uint8)), (0, 0), 1)
    return (shape * near).astype(np.float32)


def _structure(
    rng: np.random.Generator, h: int, w: int, mask: np.ndarray, alpha: np.ndarray, photos: list[np.ndarray] | None
) -> np.ndarray:
    """One kind of fine structure added to (or cut out of) a subject's alpha."""
    kind = rng.integers(4) if photos else rng.integers(3)
    if kind == 0:
        return np.maximum(alpha, _foliage(rng, h, w, mask))
    if kind == 1:  # fur: dense, short strands all along the outline
        return np.maximum(alpha, _strands(rng, h, w, mask, count=(600, 1500), length_frac=(0.02, 0.08)))
    if kind == 2:  # a lattice of holes over the whole subject or its lower part
        cut = _lattice(rng, h, w)
        if rng.random() < 0.5:
            cut[: int(h * rng.uniform(0.2, 0.6))] = 1
        return alpha * cut
    return np.maximum(alpha, _photo_outline(rng, h, w, mask, photos))  # type: ignore[arg-type]


VOLUME_OVERSAMPLE = 4  # volumes are drawn at 4x and area-reduced: per-pixel coverage of sub-pixel strands


def _region(rng: np.random.Generator, h: int, w: int, mask: np.ndarray) -> np.ndarray:
    """A soft elliptical region centred on the subject's outline (hair on a head, a crown on a trunk)."""
    ((cx, cy),) = _edge_points(mask, rng, 1)
    region = np.zeros((h, w), np.float32)
    axes = (int(rng.uniform(0.15, 0.45) * w), int(rng.uniform(0.15, 0.45) * h))
    cv2.ellipse(region, (int(cx), int(cy)), axes, rng.uniform(0, 180), 0, 360, 1.0, -1)
    return cv2.GaussianBlur(region, (0, 0), max(1.0, 0.05 * min(axes)))


def _hair_volume(rng: np.random.Generator, h: int, w: int, mask: np.ndarray) -> np.ndarray:
    """Coverage of hundreds of long sub-pixel strands rooted in a region of the subject, combed along
    a smooth flow (away from the subject's centre, with a common bend): dense strands pile up
    towards solid near the roots and thin out to single strands at the tips."""
    s = VOLUME_OVERSAMPLE
    region = _region(rng, h, w, mask)
    ys, xs = np.nonzero((region > 0.5) & (mask > 0.3))
    if len(ys) == 0:
        ys, xs = np.nonzero(region > 0.5)
    if len(ys) == 0:
        return np.zeros((h, w), np.float32)
    my, mx = np.nonzero(mask > 0.5) if (mask > 0.5).any() else (ys, xs)
    centre = np.array([mx.mean(), my.mean()], np.float32)
    canvas = np.zeros((h * s, w * s), np.uint8)
    bend, spread = rng.normal(0, 0.6), rng.uniform(0.1, 0.5)
    gravity = np.array([0.0, 1.0]) * rng.uniform(0, 1.5)  # long hair falls, a troll's stands up
    length = rng.uniform(0.1, 0.45) * min(h, w)
    n = int(rng.integers(300, 2500))
    idx = rng.integers(len(ys), size=n)
    for i in idx:
        p = np.array([xs[i], ys[i]], np.float64)
        d = p - centre
        d = d / (np.linalg.norm(d) + 1e-6) + rng.normal(0, spread, 2)
        pts, step = [p.copy()], length * rng.uniform(0.3, 1.0) / 10
        for _ in range(10):
            d = d / (np.linalg.norm(d) + 1e-6)
            p = p + d * step
            pts.append(p.copy())
            d = d + np.array([-d[1], d[0]]) * bend * 0.15 + gravity * 0.1 + rng.normal(0, 0.05, 2)
        width = 1 if rng.random() < 0.8 else 2  # at 4x: strands a quarter or half a pixel wide
        cv2.polylines(canvas, [(np.array(pts) * s).astype(np.int32)], False, 255, width, cv2.LINE_AA)
    cover = cv2.resize(canvas.astype(np.float32) / 255, (w, h), interpolation=cv2.INTER_AREA)
    return np.clip(cover, 0, 1).astype(np.float32)


def _canopy(rng: np.random.Generator, h: int, w: int, mask: np.ndarray) -> np.ndarray:
    """A crown of leaves and twigs over a region: coverage with gaps of every size, from holes a
    pixel wide to open sky between branches."""
    s = VOLUME_OVERSAMPLE
    region = _region(rng, h, w, mask)
    ys, xs = np.nonzero(region > 0.3)
    if len(ys) == 0:
        return np.zeros((h, w), np.float32)
    canvas = np.zeros((h * s, w * s), np.uint8)
    scale = min(h, w) * s
    leaf = rng.uniform(0.008, 0.04)
    for i in rng.integers(len(ys), size=int(rng.integers(20, 60))):  # twigs first, leaves on them
        a = np.array([xs[i], ys[i]], np.float64) * s
        b = a + rng.normal(0, 0.12, 2) * scale
        cv2.line(canvas, tuple(a.astype(int)), tuple(b.astype(int)), 255, int(rng.integers(1, 5)), cv2.LINE_AA)
    for i in rng.integers(len(ys), size=int(rng.integers(80, 600))):
        cx, cy = xs[i] * s + rng.uniform(-s, s), ys[i] * s + rng.uniform(-s, s)
        axes = (max(2, int(leaf * scale * rng.uniform(0.5, 1.5))), max(1, int(leaf * scale * rng.uniform(0.2, 0.6))))
        cv2.ellipse(canvas, (int(cx), int(cy)), axes, rng.uniform(0, 360), 0, 360, 255, -1, cv2.LINE_AA)
    cover = cv2.resize(canvas.astype(np.float32) / 255, (w, h), interpolation=cv2.INTER_AREA)
    return (cover * (region > 0.05)).astype(np.float32)


def _volume(rng: np.random.Generator, h: int, w: int, mask: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """A hair volume (over the subject) or a canopy (replacing the subject where it grows)."""
    if rng.random() < 0.6:
        return np.maximum(alpha, _hair_volume(rng, h, w, mask))
    crown = _canopy(rng, h, w, mask)
    region = crown > 0  # inside the crown only leaves and twigs: the solid body is cut away there
    body = alpha * (1 - cv2.GaussianBlur(region.astype(np.float32), (0, 0), 2))
    return np.maximum(body, crown)


def _own_colour(rng: np.random.Generator, fgr: np.ndarray, added: np.ndarray) -> np.ndarray:
    """``fgr`` with a colour of its own where a volume added coverage beyond the body: hair or leaves
    of one hue, unlike the body they grow from (a troll's pink hair over its skin), with a little
    variation along the strands. The body's colour spread outwards is then the wrong guess there."""
    h, w = added.shape
    hue = rng.uniform(0, 1, 3).astype(np.float32)
    small = rng.uniform(-0.12, 0.12, (max(2, h // 8), max(2, w // 8), 1)).astype(np.float32)
    shade = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)[..., None]
    hair = np.clip(hue + shade + rng.normal(0, 0.02, (h, w, 3)).astype(np.float32), 0, 1)
    where = np.clip(1.5 * cv2.GaussianBlur((added > 0.01).astype(np.float32), (0, 0), 3), 0, 1)[..., None]
    return (fgr + (hair - fgr) * where).astype(np.float32)


def procedural_subject(
    rng: np.random.Generator,
    size: int = 384,
    photos: list[np.ndarray] | None = None,
    photo_p: float = 0.5,
    structure_p: float = 0.0,
    volume_p: float = 0.0,
    volume_colour_p: float = 0.0,
) -> Subject:
    """A random subject of about ``size`` pixels on its long side.

    With ``photos``, a share ``photo_p`` of subjects is textured with crops of real photos, so the
    network must read the plate difference rather than learn what backgrounds look like. A share
    ``structure_p`` gets fine structure (see the module docstring) on top, a share ``volume_p`` a
    volume of hair or leaves, and a share ``volume_colour_p`` of those a colour of their own.
    """
    h, w = size, int(size * rng.uniform(0.6, 1.0))
    mask = _blob_mask(rng, h, w)
    alpha = mask.copy()
    if rng.random() < 0.5:
        alpha = np.maximum(alpha, _strands(rng, h, w, mask))
    if rng.random() < 0.3:  # a semi-transparent region (glass, veil, smoke)
        veil = _blob_mask(rng, h, w) * rng.uniform(0.2, 0.7)
        alpha = np.maximum(alpha * (1 - (veil > 0)), veil) if rng.random() < 0.5 else np.maximum(alpha, veil)
    # Drawn only when asked for, so configs without it keep their exact samples.
    if structure_p and rng.random() < structure_p:
        alpha = _structure(rng, h, w, mask, alpha, photos)
    added = None
    if volume_p and rng.random() < volume_p:
        before = alpha
        alpha = _volume(rng, h, w, mask, alpha)
        added = alpha - before
    fgr = _photo_texture(rng, h, w, photos) if photos and photo_p and rng.random() < photo_p else _texture(rng, h, w)
    if added is not None and volume_colour_p and rng.random() < volume_colour_p:
        fgr = _own_colour(rng, fgr, added)
    return Subject(
        f"procedural_{rng.integers(1 << 30)}", fgr, np.clip(alpha, 0, 1).astype(np.float32), "procedural", "generated"
    )
