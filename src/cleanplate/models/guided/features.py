"""Plate-difference features and a fast keyed matte, in torch, for training and inference alike.

The network of :mod:`cleanplate.models.guided.net` does not have to discover the plate: it is
handed what a difference keyer computes, by the same code at training and run time:

1. **Tone match**: a per-channel quadratic curve plate → frame, fitted by a few rounds of
   Tukey-weighted least squares started at the identity (subject pixels get large residuals and
   drop out), pulled towards the identity by a small ridge so a plate of another scene is not
   bent to fit. It absorbs exposure, gamma and white-balance drift.
2. **Distance** between the lightly blurred frame and matched plate in an opponent colour space,
   the minimum over plate pixels within one pixel (sub-pixel to 1 px residual drift).
3. **Noise level**: the Tukey-weighted mean distance over believed background pixels.
4. **Keyed alpha**: a smoothstep of the distance between ``lo`` = max(``LO``, 2 × noise) and
   ``lo + SPAN``.

Everything is batched tensor arithmetic (no feature matching, no per-image loops, no solvers
that ONNX lacks: the 3×3 normal equations are solved in closed form), so it runs on CPU or GPU,
under autograd, and exports to ONNX.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .pool import separable

LO = 0.012  # distance (RGB units) below which a pixel is background on clean footage
SPAN = 0.028  # width of the soft threshold
NOISE_FACTOR = 2.0
RIDGE = 0.02  # pull of the tone curve towards the identity (fraction of the sample weight)

_OPP = torch.tensor(
    [
        [0.299, 0.587, 0.114],
        [0.7 * -0.299, 0.7 * -0.587, 0.7 * (1 - 0.114)],
        [0.7 * (1 - 0.299), 0.7 * -0.587, 0.7 * -0.114],
    ]
)
_GAUSS = torch.tensor([0.0625, 0.25, 0.375, 0.25, 0.0625])  # binomial 5-tap, sigma ~ 1


def opponent(rgb: torch.Tensor) -> torch.Tensor:
    """Luma and two colour-difference axes (B, 3, H, W), in RGB-like units."""
    return torch.einsum("ij,bjhw->bihw", _OPP.to(rgb), rgb)


def luma(x: torch.Tensor) -> torch.Tensor:
    """Luma (B, 1, H, W), contiguous: the opponent space's first axis alone, accumulated in place
    (half the time of the sum of three products at 1080p)."""
    g = x[:, 0:1] * 0.299
    g.add_(x[:, 1:2], alpha=0.587)
    return g.add_(x[:, 2:3], alpha=0.114)


def blur(x: torch.Tensor) -> torch.Tensor:
    """Separable 5-tap binomial blur per channel, replicated border (shifted views: a depthwise
    ``conv2d`` took 4x as long on CPU at the 1080p working grid)."""
    return separable(x, _GAUSS.tolist())


def _solve3(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Solve a (..., 3, 3) x = b (..., 3) by the adjugate (symmetric positive definite a)."""
    a00, a01, a02 = a[..., 0, 0], a[..., 0, 1], a[..., 0, 2]
    a11, a12, a22 = a[..., 1, 1], a[..., 1, 2], a[..., 2, 2]
    c00 = a11 * a22 - a12 * a12
    c01 = a02 * a12 - a01 * a22
    c02 = a01 * a12 - a02 * a11
    c11 = a00 * a22 - a02 * a02
    c12 = a01 * a02 - a00 * a12
    c22 = a00 * a11 - a01 * a01
    det = a00 * c00 + a01 * c01 + a02 * c02
    det = torch.where(det.abs() < 1e-12, torch.full_like(det, 1e-12), det)
    b0, b1, b2 = b[..., 0], b[..., 1], b[..., 2]
    x0 = (c00 * b0 + c01 * b1 + c02 * b2) / det
    x1 = (c01 * b0 + c11 * b1 + c12 * b2) / det
    x2 = (c02 * b0 + c12 * b1 + c22 * b2) / det
    return torch.stack([x0, x1, x2], dim=-1)


FIT_PIXELS = 30_000  # the tone curve is fitted on at least this many pixels (every 2nd, 4th... row and column)


def _tukey(r: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Per-pixel weight (B, 1, N) from residuals (B, C, N): the smallest channel's Tukey weight."""
    u = r / scale.clamp(0.03, 0.15)
    return torch.where(u.abs() < 1, (1 - u * u) ** 2, torch.zeros_like(u)).amin(dim=1, keepdim=True)


def _curve(beta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return beta[..., 0:1] + x * (beta[..., 1:2] + beta[..., 2:3] * x)


def fit_tone(src: torch.Tensor, bgr: torch.Tensor, iters: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Quadratic plate → frame curve per channel: coefficients (B, 3, 3) and background weights (B, 1, H, W).

    The weights (Tukey, 0..1) say how well each pixel fits the curve in every channel: a soft
    background mask that the noise estimate reuses. Three coefficients need no more than
    :data:`FIT_PIXELS` samples: larger grids are fitted on a regular subsample (a quarter of the
    time at the 1080p working grid) and only the final weights are computed at every pixel.
    """
    b, c, h, w = src.shape
    stride = 1
    while (h // (2 * stride)) * (w // (2 * stride)) >= FIT_PIXELS:
        stride *= 2
    x = bgr[..., ::stride, ::stride].reshape(b, c, -1)
    y = src[..., ::stride, ::stride].reshape(b, c, -1)
    x2 = x * x
    identity = torch.tensor([0.0, 1.0, 0.0], dtype=src.dtype, device=src.device)
    beta = identity.expand(b, c, 3)
    wts = torch.ones_like(x[:, :1])  # (B, 1, N): one weight per pixel, shared by the channels
    n = x.shape[-1]
    eye = torch.eye(3, dtype=src.dtype, device=src.device)
    for _ in range(iters):
        fitted = beta
        r = y - _curve(beta, x)
        scale = 4.685 * 1.25 * (wts * r.abs()).sum(-1, keepdim=True) / wts.sum(-1, keepdim=True).clamp_min(1.0)
        wts = _tukey(r, scale)
        lam = RIDGE * wts.sum(-1).clamp_min(1.0) + 1e-3 * n  # (B, 1)
        # the normal equations of the weighted fit y ~ b0 + b1 x + b2 x^2 from the weighted moments of
        # x (no (B, C, N, 3) design matrix: 4.5x faster at the 1080p working grid)
        wx, wx2 = wts * x, wts * x2
        s0 = wts.sum(-1).expand(b, c)
        s1, s2, s3, s4 = wx.sum(-1), wx2.sum(-1), (wx2 * x).sum(-1), (wx2 * x2).sum(-1)
        normal = (
            torch.stack(
                [torch.stack([s0, s1, s2], -1), torch.stack([s1, s2, s3], -1), torch.stack([s2, s3, s4], -1)], -2
            )
            + lam[..., None, None] * eye
        )
        rhs = torch.stack([(wts * y).sum(-1), (wx * y).sum(-1), (wx2 * y).sum(-1)], -1) + lam[..., None] * identity
        beta = _solve3(normal, rhs)
    # A curve that is not monotone on [0, 1] or strays far from the identity: keep the identity.
    slope_lo, slope_hi = beta[..., 1], beta[..., 1] + 2 * beta[..., 2]
    grid = torch.linspace(0, 1, 17, dtype=src.dtype, device=src.device)
    dev = (_curve(beta, grid) - grid).abs().amax(-1)
    ok = (slope_lo > 0.2) & (slope_hi > 0.2) & (dev < 0.35)
    beta = torch.where(ok.unsqueeze(-1), beta, identity.expand_as(beta))
    if stride > 1:  # the last weights at every pixel: the curve and scale they were computed from
        wts = _tukey(src.reshape(b, c, -1) - _curve(fitted, bgr.reshape(b, c, -1)), scale)
    return beta, wts[:, :1].reshape(b, 1, h, w)


def apply_tone(bgr: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """The plate through the fitted curve, any resolution."""
    c0, c1, c2 = (beta[..., i, None, None] for i in range(3))
    return torch.addcmul(c0, bgr, (c2 * bgr).add_(c1)).clamp_(0, 1)  # Horner form, in place: 7x faster at 1080p


def min_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-pixel distance of ``a`` to the nearest of ``b``'s 3×3 neighbours (B, 1, H, W)."""
    h, w = a.shape[-2:]
    padded = F.pad(b, (1, 1, 1, 1), mode="replicate")
    best = None
    for dy in range(3):
        for dx in range(3):
            d = (a - padded[:, :, dy : dy + h, dx : dx + w]).square().sum(1, keepdim=True)
            best = d if best is None else torch.minimum(best, d)
    return (best + 1e-8).sqrt()


def gradient(x: torch.Tensor) -> torch.Tensor:
    """Largest per-channel central-difference gradient magnitude (B, 1, H, W)."""
    p = F.pad(x, (1, 1, 1, 1), mode="replicate")
    gx = (p[:, :, 1:-1, 2:] - p[:, :, 1:-1, :-2]) * 0.5
    gy = (p[:, :, 2:, 1:-1] - p[:, :, :-2, 1:-1]) * 0.5
    return (gx.square() + gy.square() + 1e-8).sqrt().amax(1, keepdim=True)


def smoothstep(x: torch.Tensor, lo: torch.Tensor | float, hi: torch.Tensor | float) -> torch.Tensor:
    t = ((x - lo) / (hi - lo)).clamp(0, 1)
    return t * t * (3 - 2 * t)


def plate_features(src: torch.Tensor, bgr: torch.Tensor) -> dict[str, torch.Tensor]:
    """Everything the network reads at its working resolution, from frame and plate (B, 3, h, w).

    Returns ``matched`` (tone-matched plate), ``distance``, ``noise`` (B, 1, 1, 1), ``keyed``
    (the keyed alpha), ``grad`` (plate edge strength), ``beta`` (tone coefficients) and
    ``stack``: the network's input channels.
    """
    with torch.autocast(src.device.type, enabled=False):
        src, bgr = src.float(), bgr.float()
        beta, wts = fit_tone(src, bgr)
        matched = apply_tone(bgr, beta)
        a, b = blur(opponent(src)), blur(opponent(matched))
        distance = min_distance(a, b)
        noise = (distance * wts).sum((2, 3), keepdim=True) / wts.sum((2, 3), keepdim=True).clamp_min(1.0)
        lo = torch.clamp(NOISE_FACTOR * noise, min=LO)
        keyed = smoothstep(distance, lo, lo + SPAN)
        grad = gradient(b)
        stack = torch.cat(
            [
                src,
                matched,
                src - matched,
                distance * 10,
                keyed,
                grad * 10,
                (noise * 10).expand_as(keyed),
            ],
            dim=1,
        )
    return {
        "matched": matched,
        "distance": distance,
        "noise": noise,
        "keyed": keyed,
        "grad": grad,
        "beta": beta,
        "stack": stack,
    }


IN_CHANNELS = 13
