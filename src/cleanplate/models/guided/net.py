"""The plate-guided matting model: a keyed estimate, a learned correction, full-resolution edges.

:class:`GuidedMatting` (the built-in ``default``) works in three steps:

1. At a working resolution (``backbone_scale`` of the frame, as for BGMv2) the plate features of
   :mod:`.features` give a keyed alpha, a tone-matched plate and the distance between them.
2. A small U-Net reads frame, plate and those features and predicts **corrections**: to the
   keyed alpha, to the foreground colour solved from the compositing equation, to how far to trust
   that equation at edges, and an error map. Its output layer starts at zero, so the untrained
   model *is* the keyer, and training only has to learn what keying gets wrong (holes where
   subject and plate colours coincide, shadows, misaligned plates, soft edges).
3. At full resolution, alpha is upsampled with a fast guided filter (frame as guide: edges follow
   the frame, not the working grid), then re-estimated near edges from the compositing equation
   ``I = aF + (1 - a)B`` with B the full-resolution matched plate and F the predicted subject
   colour; the foreground is solved from the same equation, so the old background does not
   survive as a halo in hair and edges.

With ``subpixel=True`` the network also reads two full-resolution channels per pixel, packed into
its working cells (space-to-depth, 2×2 per cell): the unblurred plate distance and the luma detail
inside the cell, and writes a zero-initialised alpha correction per pixel (depth-to-space). A gap
of one or two pixels between leaves or strands, where the plate shows through, is then visible to
the network and representable in its answer; at factor 2 this costs a few full-resolution passes.

With ``pixel_trust=True`` a :class:`PixelTrust` head (1×1 convolutions, hidden widths
``trust_hidden``, zero-initialised output) corrects, per band pixel, how far the edge step
trusts the equation's alpha over the upsampled one, from per-pixel quantities only (so it runs
on the gathered edge cells as on a frame). It is fitted on the frozen network (training stage ``guided_trust``).

``forward(src, bgr)`` returns what :class:`~cleanplate.models.MattingRefine` does:
``(pha, fgr, pha_sm, fgr_sm, err_sm, ref_sm)``; ``ref_sm`` marks where the edge equation was used.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from . import features as feat
from .pool import box, downsample, max3
from .register import centres, eager, grid_at, identity, register, warp

FG_PRIOR = 0.02  # pull of the solved foreground towards the predicted colour where alpha is small
GF_EPS = 1e-3
INTERIOR_PULL = 1.0  # weight of the interior's colour in the edge step's F: (a²F + w·F_in) / (a² + w); 0 turns it off
INTERIOR = (0.85, 0.99)  # alpha range over which a cell counts as the subject's interior


def _conv(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def _fuse(block: nn.Sequential) -> nn.Sequential:
    """Conv + BatchNorm pairs folded into one convolution (eval mode)."""
    layers, out, i = list(block), [], 0
    while i < len(layers):
        if isinstance(layers[i], nn.Conv2d) and i + 1 < len(layers) and isinstance(layers[i + 1], nn.BatchNorm2d):
            out.append(torch.nn.utils.fusion.fuse_conv_bn_eval(layers[i], layers[i + 1]))
            i += 2
        else:
            out.append(layers[i])
            i += 1
    return nn.Sequential(*out)


def _block(cin: int, cout: int, stride: int = 1, depth: int = 2) -> nn.Sequential:
    layers = _conv(cin, cout, stride)
    for _ in range(depth - 1):
        layers += _conv(cout, cout)
    return nn.Sequential(*layers)


SUB = 2  # sub-pixel grid: 2×2 full-resolution samples per working cell
SUB_FEATURES = 2  # per sample: plate distance, luma detail within the cell


class CorrectionNet(nn.Module):
    """U-Net over the plate features: 4 downsamplings, skip connections, zero-initialised head.

    The full working resolution gets one thin convolution on each side (it carries the pixel-level
    detail; most of the compute budget at 1080p would go there otherwise), deeper levels two.
    """

    OUT = 6  # d_alpha, d_fgr (3), d_trust, err

    def __init__(self, widths: tuple[int, ...] = (16, 32, 48, 64, 96), subpixel: bool = False) -> None:
        super().__init__()
        self.enc = nn.ModuleList()
        cin = feat.IN_CHANNELS + (SUB_FEATURES * SUB * SUB if subpixel else 0)
        for i, w in enumerate(widths):
            self.enc.append(_block(cin, w, 1 if i == 0 else 2, depth=1 if i == 0 else 2))
            cin = w
        self.dec = nn.ModuleList()
        for i, w_skip in enumerate(reversed(widths[:-1])):
            self.dec.append(_block(cin + w_skip, w_skip, depth=1 if i == len(widths) - 2 else 2))
            cin = w_skip
        self.head = nn.Conv2d(cin, self.OUT + (SUB * SUB if subpixel else 0), 3, 1, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.enc:
            x = block(x)
            skips.append(x)
        skips.pop()
        for block in self.dec:
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        return self.head(x)


def guided_upsample(
    p_lr: torch.Tensor, g_lr: torch.Tensor, g_hr: torch.Tensor, r: int = 1, eps: float = GF_EPS
) -> torch.Tensor:
    """Fast guided filter (He & Sun 2015): a local linear model p = A g + b fitted on the working
    grid, its coefficients upsampled bilinearly and applied to the full-resolution guide."""
    mean_g, mean_p = box(g_lr, r), box(p_lr, r)
    cov = box(g_lr * p_lr, r) - mean_g * mean_p
    var = box(g_lr * g_lr, r) - mean_g * mean_g
    a = cov / (var + eps)
    b = mean_p - a * mean_g
    size = g_hr.shape[-2:]
    a = F.interpolate(a, size=size, mode="bilinear", align_corners=False)
    b = F.interpolate(b, size=size, mode="bilinear", align_corners=False)
    return a * g_hr + b


def solve_foreground(src: torch.Tensor, bgr: torch.Tensor, alpha: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
    """F from ``I = aF + (1-a)B``, pulled towards ``prior`` where alpha is small (MAP, Gaussian prior).

    ``(a (I - (1 - a) B) + p F0) / (a² + p)``, written as fused multiply-adds (fewer passes over colour)."""
    num = torch.addcmul(prior * FG_PRIOR, alpha, torch.addcmul(src, bgr, alpha - 1))
    return (num / (alpha * alpha + FG_PRIOR)).clamp_(0, 1)


def _halve(x: torch.Tensor) -> torch.Tensor:
    """2×2 average; at an odd side the last window is partial (a side of 1 stays 1). Not
    :func:`.pool.downsample`: its shape arithmetic would be frozen at the traced size in an export."""
    return F.avg_pool2d(x, 2, ceil_mode=True)


def spread(values: torch.Tensor, weight: torch.Tensor, full: float = 0.25) -> torch.Tensor:
    """Weighted values filled in everywhere by push-pull: a pyramid of weighted averages (from half
    the resolution down to one cell), read at the finest level whose pooled weight reaches ``full``
    and blended with the coarser one below it; the result is upsampled to the input's size. The
    torch counterpart of the keyer's ``classical.push_pull_fill`` (OpenCV, numpy): this one runs
    inside the network at training and run time and exports to ONNX."""
    c = values.shape[1]
    # from half the resolution up (the finest level adds nothing near a thin edge, where the weight is
    # low, and costs most); numerator and weight pooled together from there on
    levels = [torch.cat([_halve(values * weight), _halve(weight)], dim=1)]
    while max(levels[-1].shape[-2:]) > 1:  # down to one cell, so that every level above it gets filled
        levels.append(_halve(levels[-1]))
    # below the coarsest level, the overall weighted mean (the coarsest is one cell when run eagerly;
    # an export traced at a smaller size may stop above that)
    num, den = levels[-1][:, :c], levels[-1][:, c:]
    est = num.sum((-2, -1), keepdim=True) / den.sum((-2, -1), keepdim=True).clamp_min(1e-6)
    for level in reversed(levels):
        up = F.interpolate(est, size=level.shape[-2:], mode="bilinear", align_corners=False)
        num, den = level[:, :c], level[:, c:]
        est = torch.addcmul(up, (den / full).clamp_(0, 1), num / den.clamp_min(1e-6) - up)
    return F.interpolate(est, size=values.shape[-2:], mode="bilinear", align_corners=False)


def interior_colour(
    src: torch.Tensor, alpha: torch.Tensor, fgr: torch.Tensor, pull: float | None = None
) -> torch.Tensor:
    """The edge step's subject colour: ``fgr`` where alpha is high, the nearby interior's colour where it is low.

    Where alpha is small the coarse colour is solved from a pixel that is mostly plate, and the
    compositing equation turns its error straight into alpha error; the frame over the solid
    interior, spread outwards, is the better guess there (hair and fur keep their roots' colour).
    """
    pull = INTERIOR_PULL if pull is None else pull
    if pull <= 0:
        return fgr
    inside = spread(src, feat.smoothstep(alpha, *INTERIOR))
    share = pull / (alpha * alpha + pull)  # (a²F + pull·inside) / (a² + pull), in two passes over colour
    return torch.addcmul(fgr, inside - fgr, share)


def edge_line(src: torch.Tensor, bgr: torch.Tensor, fgr: torch.Tensor) -> dict[str, torch.Tensor]:
    """The pixel against the line from plate B to subject colour F: ``alpha`` (unclamped projection),
    ``norm2`` (|F - B|², its length squared) and ``residual`` (what the clamped point does not explain)."""
    fb = fgr - bgr
    ib = src - bgr
    norm2 = _channel_sum(fb * fb)
    alpha = _channel_sum(ib * fb) / (norm2 + 1e-4)
    off = torch.addcmul(ib, alpha.clamp(0, 1), fb, value=-1)  # what the line from B to F does not explain
    return {"alpha": alpha, "norm2": norm2, "residual": (_channel_sum(off * off) + 1e-8).sqrt()}


def line_trust(line: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Alpha from the compositing equation and a heuristic trust in it (0..1, per pixel).

    Trusted where subject and plate colours differ (|F - B|) and the pixel lies on the line
    between them (small residual): texture the predicted colour does not explain keeps the
    upsampled alpha.
    """
    trust = feat.smoothstep((line["norm2"] + 1e-8).sqrt(), 0.04, 0.12) * (
        1 - feat.smoothstep(line["residual"], 0.04, 0.08)
    )
    return line["alpha"].clamp(0, 1), trust


def edge_equation(src: torch.Tensor, bgr: torch.Tensor, fgr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`line_trust` of :func:`edge_line`: alpha from ``I = aF + (1 - a)B`` and the trust in it."""
    return line_trust(edge_line(src, bgr, fgr))


class PixelTrust(nn.Module):
    """A per-pixel correction to the edge step's trust: which of the two alphas (guided-upsampled
    or solved from the compositing equation) each band pixel keeps.

    The heuristic trust of :func:`edge_equation` is right on average but not per pixel: choosing the
    better of the two alphas at every band pixel would cut the default's `low` MAD by a quarter on
    the held-out objects. This reads only per-pixel quantities the edge step has anyway (both alphas,
    the unclamped solution, the line's length and residual, the solution with the predicted colour,
    the plate distance), so it runs on the gathered edge cells as on a whole frame, and it is 1×1
    convolutions of widths ``hidden`` (kept as modules for the checkpoint layout; run as matrix
    products). Its last layer starts at zero: a model without it, given it, computes exactly
    what it computed before.
    """

    IN = 10

    def __init__(self, hidden: tuple[int, ...] = (32, 32)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for cin, cout in zip((self.IN, *hidden[:-1]), hidden, strict=True):
            layers += [nn.Conv2d(cin, cout, 1), nn.ReLU(inplace=True)]
        self.mlp = nn.Sequential(*layers)
        self.hidden = tuple(hidden)
        self.out = nn.Conv2d(hidden[-1], 1, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(
        self,
        src: torch.Tensor,
        matched: torch.Tensor,
        line: dict[str, torch.Tensor],
        fgr_up: torch.Tensor,
        alpha_up: torch.Tensor,
        trust: torch.Tensor,
        d_trust: torch.Tensor,
        band: torch.Tensor,
    ) -> torch.Tensor:
        """The change to ``trust + d_trust`` per pixel (B, 1, H, W); ``line``: :func:`edge_line` of the edge colour."""
        ib, fb2 = src - matched, fgr_up - matched
        a_raw = line["alpha"]
        a_pred = _channel_sum(ib * fb2) / (_channel_sum(fb2 * fb2) + 1e-4)
        dist = (_channel_sum(ib * ib) + 1e-8).sqrt()
        features = [
            alpha_up,
            a_raw.clamp(0, 1),
            trust,
            d_trust,
            band,
            (line["norm2"] + 1e-8).sqrt() * 10,
            line["residual"] * 10,
            a_raw.clamp(-1, 2),
            a_pred.clamp(-1, 2),
            dist * 10,
        ]
        # the gathered edge cells are many tiny images (N, C, k, k): the 1×1 convolutions are written
        # as matrix products over every pixel at once, (out, in) @ (in, pixels), the pixels in the
        # maps' own order so that nothing is transposed (measured at 1080p: 6 ms against 43 for the
        # convolutions over one (1, C, N·k, k) image, 4 px wide)
        dtype = self.out.weight.dtype
        flat = torch.cat([f.reshape(1, -1) for f in features], dim=0).to(dtype)
        for conv in self.mlp[::2]:
            flat = torch.mm(conv.weight.view(conv.out_channels, -1), flat).add_(conv.bias[:, None]).relu_()
        out = torch.mm(self.out.weight.view(1, -1), flat).add_(self.out.bias[:, None])
        return out.float().view_as(alpha_up)


def _channel_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum over three channels (B, 1, ...): added as slices, faster than ``sum(1)`` on small blocks."""
    return x[:, 0:1] + x[:, 1:2] + x[:, 2:3]


class GuidedMatting(nn.Module):
    """Plate-guided matting network; see the module docstring.

    Any input size works (the U-Net resamples to its skip connections' sizes); sizes that are a
    multiple of :attr:`pad_multiple` put each working cell on an exact block of pixels.
    """

    ERR_CHANNEL = 5  # of the correction net's output: the error map

    def __init__(
        self,
        backbone_scale: float = 0.5,
        widths: tuple[int, ...] = (16, 32, 48, 64, 96),
        subpixel: bool = False,
        pixel_trust: bool = False,
        trust_hidden: tuple[int, ...] = (32, 32),
    ) -> None:
        super().__init__()
        self.backbone_scale = backbone_scale
        self.widths = tuple(widths)
        self.subpixel = bool(subpixel)
        self.net = CorrectionNet(self.widths, self.subpixel)
        self.trust = PixelTrust(tuple(int(h) for h in trust_hidden)) if pixel_trust else None
        self.channels_last = False  # set by :meth:`optimized` (oneDNN runs NHWC convolutions faster)

    def extra_repr(self) -> str:
        trust = f"pixel_trust=True, trust_hidden={self.trust.hidden}" if self.trust is not None else "pixel_trust=False"
        return f"backbone_scale={self.backbone_scale}, subpixel={self.subpixel}, {trust}"

    def adapt_state(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``state`` of a narrower model of this family widened to this one's shapes.

        The first convolution's new input channels and the head's new output channels are zero, so
        a model without the sub-pixel path, widened, computes exactly what it computed before; a
        model without the per-pixel trust head gets this model's (its last layer is zero, so it
        changes nothing either). A fine-tune then starts from it. Shapes that would shrink are left
        for ``load_state_dict`` to refuse.
        """
        own = self.state_dict()
        out = dict(state)
        for key in ("net.enc.0.0.weight", "net.head.weight", "net.head.bias"):
            old, new = state.get(key), own.get(key)
            if old is None or new is None or old.shape == new.shape or old.dim() != new.dim():
                continue
            if any(a > b for a, b in zip(old.shape, new.shape, strict=True)):
                continue
            grown = torch.zeros_like(new)
            grown[tuple(slice(0, n) for n in old.shape)] = old
            out[key] = grown
        for key, value in own.items():  # a model without the trust head gets this one's (output zero)
            if key.startswith("trust.") and key not in state:
                out[key] = value.detach().clone()
        return out

    def _factor(self) -> int:
        return max(1, round(1.0 / float(self.backbone_scale)))

    @property
    def pad_multiple(self) -> int:
        """Frame sizes should be multiples of this (``Matter`` pads to it): one working cell per k×k block."""
        return self._factor()

    def forward(self, src: torch.Tensor, bgr: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self._forward(src.float(), bgr.float(), self._factor())

    def optimized(self, channels_last: bool = True) -> GuidedMatting:
        """A copy for inference: BatchNorm folded into the convolutions, NHWC convolutions on CPU
        (measured 2.2× faster for the correction net at 1080p); outputs equal within 1e-5."""
        fast = copy.deepcopy(self).eval()
        net = fast.net
        net.enc = nn.ModuleList(_fuse(block) for block in net.enc)
        net.dec = nn.ModuleList(_fuse(block) for block in net.dec)
        if channels_last:
            fast.net = net.to(memory_format=torch.channels_last)
        fast.channels_last = channels_last
        return fast

    def _forward(self, src: torch.Tensor, bgr: torch.Tensor, k: int) -> tuple[torch.Tensor, ...]:
        # sub-pixel path below factor 2 (HD and up): its features read the frame averaged to the
        # sub-pixel grid, as at training, where that grid is the (downsized) image itself
        step = k // SUB if self.subpixel and k > SUB and k % SUB == 0 else 1
        src_sub, bgr_sub = downsample(src, step), downsample(bgr, step)
        src_lr, bgr_lr = downsample(src_sub, k // step), downsample(bgr_sub, k // step)
        theta = register(src_lr, bgr_lr)  # the handheld plate moved onto the frame (identity when aligned)
        plain = eager()
        h, w = src.shape[-2:]
        patched = (
            k > 1
            and not torch.is_grad_enabled()
            and plain
            and h % k == 0  # then the working grid is exactly (h/k, w/k): one cell per k×k block
            and w % k == 0
        )
        plate_theta = None  # set: the full-resolution plate is warped in the edge cells only
        if not plain or not torch.equal(theta, identity(theta.shape[0], theta)):
            bgr_lr = warp(bgr_lr, theta)
            if patched and step > 1:  # nothing else reads the full-resolution plate
                bgr_sub, plate_theta = warp(bgr_sub, theta), theta
            else:
                bgr = warp(bgr, theta)
                bgr_sub = warp(bgr_sub, theta) if step > 1 else bgr
        f = feat.plate_features(src_lr, bgr_lr)
        stack = f["stack"]
        # the edge step's plate: tone-matched where it needs it (patched: its cells only), or once
        # for the whole frame when the sub-pixel features read it at full resolution anyway
        edge_plate, edge_beta = bgr, f["beta"]
        if self.subpixel:
            matched_sub = feat.apply_tone(bgr_sub, f["beta"])
            if step == 1:
                edge_plate, edge_beta = matched_sub, None
            stack = torch.cat([stack, _subpixel_features(src_sub, matched_sub, stack.shape[-2:])], dim=1)
        stack = stack.to(self.net.head.weight.dtype)  # features in float32, the net in its own precision
        stack = stack.contiguous(memory_format=torch.channels_last) if self.channels_last else stack
        out = self.net(stack).float().contiguous()
        d_alpha, d_fgr, d_trust, err = out[:, 0:1], out[:, 1:4], out[:, 4:5], out[:, 5:6]

        # working resolution: corrected alpha, foreground solved from the equation then corrected
        pha_sm = (f["keyed"] + d_alpha).clamp(0, 1)
        fgr_sm = (solve_foreground(src_lr, f["matched"], pha_sm, src_lr) + d_fgr).clamp(0, 1)
        err_sm = err.clamp(0, 1)  # not abs(): its gradient at the zero-initialised output is 0, so it never learnt

        # full resolution: guided upsampling, then the compositing equation near edges
        alpha_up = guided_upsample(pha_sm, feat.luma(src_lr), feat.luma(src)).clamp(0, 1)
        if self.subpixel:
            d_sub = F.pixel_shuffle(out[:, CorrectionNet.OUT : CorrectionNet.OUT + SUB * SUB], SUB)
            if d_sub.shape[-2:] != src.shape[-2:]:
                d_sub = F.interpolate(d_sub, size=src.shape[-2:], mode="bilinear", align_corners=False)
            alpha_up = (alpha_up + d_sub).clamp(0, 1)
        band_sm = max3(4 * pha_sm * (1 - pha_sm)).clamp(0, 1)
        edge_fgr = interior_colour(src_lr, pha_sm, fgr_sm)  # the colour the edge equation solves alpha with
        maps = torch.cat([fgr_sm, band_sm, d_trust, edge_fgr], dim=1)  # what the edge step reads, upsampled
        if patched:
            pha, fgr = _edges_in_cells(src, edge_plate, edge_beta, alpha_up, maps, k, plate_theta, self.trust)
        else:
            pha, fgr = _edges_dense(src, edge_plate, edge_beta, alpha_up, maps, k, self.trust)
        ref_sm = (band_sm > 0.5).to(pha.dtype)
        return pha, fgr, pha_sm, fgr_sm, err_sm, ref_sm


def _subpixel_features(src: torch.Tensor, matched: torch.Tensor, size: torch.Size) -> torch.Tensor:
    """Full-resolution evidence packed into the working cells: (B, SUB_FEATURES·SUB², h, w).

    Per pixel: the unblurred distance between frame and tone-matched plate ``matched`` (where the plate shows
    through a gap, it is at the noise level even when the working grid's blurred distance is not)
    and the frame's luma minus its cell mean (strands and gaps as texture). Written as few
    full-resolution passes as it takes (this runs on every 1080p frame): one scaling of both maps
    together, the cell mean taken after packing.
    """
    grid = (SUB * size[0], SUB * size[1])  # not int(): traced, it stays tied to the input's size (ONNX)
    with torch.autocast(src.device.type, enabled=False):
        src = src.float()
        sq = feat.opponent(src - matched.float()).square_()
        dist = (sq[:, 0:1] + sq[:, 1:2] + sq[:, 2:3]).sqrt_()  # not vector_norm(dim=1): 50x slower on NCHW
        maps = torch.cat([dist, feat.luma(src)], dim=1).mul_(10)
        if maps.shape[-2:] != grid:
            if maps.shape[-2] > grid[0]:  # backbone_scale below 1/2: average down to the sub-pixel grid
                maps = F.interpolate(maps, size=grid, mode="area")
            else:  # backbone_scale 1: the working grid is the frame, the sub-pixel grid finer
                maps = F.interpolate(maps, size=grid, mode="bilinear", align_corners=False)
        b, c = maps.shape[:2]
        n = SUB * SUB
        hh, ww = maps.shape[-2] // SUB, maps.shape[-1] // SUB
        # pixel_unshuffle(maps, SUB) written out (3x faster on CPU): distances first, then luma
        packed = maps.reshape(b, c, hh, SUB, ww, SUB).permute(0, 1, 3, 5, 2, 4).reshape(b, c * n, hh, ww)
        grey = packed[:, n:]
        return torch.cat([packed[:, :n], grey - grey.mean(1, keepdim=True)], dim=1)


def _edge_step(
    src: torch.Tensor,
    bgr: torch.Tensor,
    beta: torch.Tensor | None,
    alpha_up: torch.Tensor,
    maps_up: torch.Tensor,
    head: PixelTrust | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Alpha and foreground at full resolution from the upsampled working maps (any region of the frame).

    ``maps_up`` holds the predicted foreground colour (3), the edge band (1), the learned trust
    correction (1) and the colour alpha is solved with (3: :func:`interior_colour`; the output
    foreground keeps the predicted colour as its prior, which the colour error measured better).
    Outside the band the upsampled alpha stands and the foreground is the frame itself (interior:
    exact colours; background: never shown); inside, both follow the equation.
    ``beta`` None: ``bgr`` is tone-matched already. ``head``: a :class:`PixelTrust` that corrects
    the trust per pixel.
    """
    fgr_up, band, d_trust, edge_fgr = maps_up[:, 0:3], maps_up[:, 3:4], maps_up[:, 4:5], maps_up[:, 5:8]
    matched = bgr if beta is None else feat.apply_tone(bgr, beta)
    line = edge_line(src, matched, edge_fgr)
    a_eq, trust = line_trust(line)
    if head is not None:
        d_trust = d_trust + head(src, matched, line, fgr_up, alpha_up, trust, d_trust, band)
    trust = (trust + d_trust).clamp(0, 1) * band
    pha = torch.lerp(alpha_up, a_eq, trust).clamp(0, 1)
    fgr = torch.lerp(src, solve_foreground(src, matched, pha, fgr_up), band)
    return pha, fgr


def _edges_dense(src, bgr, beta, alpha_up, maps, k: int, head=None) -> tuple[torch.Tensor, torch.Tensor]:
    """The edge step over the whole frame (training, export, odd sizes)."""
    if k > 1:
        maps = F.interpolate(maps, size=src.shape[-2:], mode="bilinear", align_corners=False)
    return _edge_step(src, bgr, beta, alpha_up, maps, head)


def _blocks(x: torch.Tensor, k: int) -> torch.Tensor:
    """(B, C, h·k, w·k) → a (B, h, w, C, k, k) view: one k×k block of pixels per working cell."""
    b, c, hh, ww = x.shape
    return x.view(b, c, hh // k, k, ww // k, k).permute(0, 2, 4, 1, 3, 5)


def _centre_weights(k: int, like: torch.Tensor) -> torch.Tensor:
    """(k, 3) weights: bilinear upsampling by ``k`` (align_corners=False) of the middle of 3 samples."""
    w = torch.zeros(k, 3, dtype=like.dtype, device=like.device)
    for j in range(k):
        c = 0.5 + (j + 0.5) / k  # position of output pixel j among the 3 samples
        i = int(c)
        w[j, i] += 1 - (c - i)
        if c - i > 0:
            w[j, i + 1] += c - i
    return w


def _warped_blocks(
    plate: torch.Tensor, theta: torch.Tensor, bi: torch.Tensor, yi: torch.Tensor, xi: torch.Tensor, k: int
) -> torch.Tensor:
    """``_blocks(warp(plate, theta), k)[bi, yi, xi]`` without warping the whole frame: the plate
    sampled at the same grid coordinates (:func:`.register.warp`'s), for the gathered cells only."""
    h, w = plate.shape[-2:]
    step = torch.arange(k, device=plate.device)
    x = centres(w, plate)[(xi * k)[:, None] + step][:, None, None, :]  # (N, 1, 1, k)
    y = centres(h, plate)[(yi * k)[:, None] + step][:, None, :, None]  # (N, 1, k, 1)
    grid = grid_at(theta[bi], x, y)  # (N, k, k, 2)
    out = plate.new_empty(bi.shape[0], plate.shape[1], k, k)
    for b in range(plate.shape[0]):
        sel = (bi == b).nonzero()[:, 0]
        if sel.numel() == 0:
            continue
        g = grid[sel].reshape(1, -1, k, 2)  # the cells stacked as rows of one grid
        got = F.grid_sample(plate[b : b + 1], g, mode="bilinear", padding_mode="border", align_corners=False)
        out[sel] = got.view(plate.shape[1], -1, k, k).transpose(0, 1)
    return out


def _edges_in_cells(
    src, bgr, beta, alpha_up, maps, k: int, theta: torch.Tensor | None = None, head=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The same result as :func:`_edges_dense`, computed only in the cells the band reaches.

    A full-resolution pixel's bilinearly upsampled band reads the 3×3 working cells around its own,
    so cells with no band in that neighbourhood have band 0 exactly: alpha is the upsampled alpha and
    the foreground the frame. Only the other cells (typically a few percent of a frame) are gathered,
    their 3×3 neighbourhoods of working maps upsampled locally (bilinear with an integer factor and
    replicated borders gives the whole-frame values), the edge step run, and the blocks put back
    (into ``alpha_up`` itself: the caller's upsampled alpha is not needed after this). With
    ``theta``, ``bgr`` is the plate before registration, warped here for those cells only.
    """
    band_sm = maps[:, 3:4]
    cells = (max3(band_sm) > 0)[:, 0].nonzero()
    pha, fgr = alpha_up, src.clone()
    if cells.shape[0] == 0:
        return pha, fgr
    if cells.shape[0] > 0.5 * band_sm.numel():  # most of the frame: the dense path is cheaper
        return _edges_dense(src, bgr if theta is None else warp(bgr, theta), beta, alpha_up, maps, k, head)
    bi, yi, xi = cells[:, 0], cells[:, 1], cells[:, 2]
    b, c = maps.shape[:2]
    padded = F.pad(maps, (1, 1, 1, 1), mode="replicate")
    hp, wp = padded.shape[-2:]
    offs = torch.arange(3, device=maps.device)
    at = ((bi * hp + yi)[:, None, None] + offs[:, None]) * wp + xi[:, None, None] + offs  # (N, 3, 3) flat positions
    nbhd = padded.permute(0, 2, 3, 1).reshape(b * hp * wp, c)[at.reshape(-1)]  # (N·9, C)
    nbhd = nbhd.view(-1, 9, c).transpose(1, 2).reshape(-1, 9)  # (N·C, 9)
    wk = _centre_weights(k, maps)
    kron = torch.einsum("yi,xj->ijyx", wk, wk).reshape(9, k * k)  # 3×3 cell values -> k×k bilinear pixels
    up = (nbhd @ kron).view(-1, c, k, k)  # one matrix product: 3x faster than the separable einsum
    take = lambda x: _blocks(x, k)[bi, yi, xi]  # noqa: E731  (N, C, k, k)
    plate_c = take(bgr) if theta is None else _warped_blocks(bgr, theta, bi, yi, xi, k)
    pha_c, fgr_c = _edge_step(take(src), plate_c, None if beta is None else beta[bi], take(alpha_up), up, head)
    _blocks(pha, k)[bi, yi, xi] = pha_c
    _blocks(fgr, k)[bi, yi, xi] = fgr_c
    return pha, fgr
