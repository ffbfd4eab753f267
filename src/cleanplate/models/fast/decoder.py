"""The fast decoder: the decoder's own trunk, then its last stage as a polyphase convolution."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..decoder import Decoder
from .phase import BILINEAR_2X, phase_kernels


class FastDecoder(nn.Module):
    """The decoder; its last stage (2x upsampling, concatenation, conv4) as a polyphase convolution.

    conv4 reads ``cat(upsample2x(x), x0)``: instead of upsampling 48 channels to full size and
    concatenating, the upsampling is folded into four phase kernels applied to ``x`` itself
    (:func:`~.phase.phase_kernels`, padding 1) plus a plain convolution of ``x0``. The stencil is exact
    away from the image border; the two outermost output rows and columns (where zero padding and
    ATen's clamped upsampling differ from the stencil) are recomputed the straightforward way.
    """

    def __init__(self, decoder: Decoder) -> None:
        super().__init__()
        self.inner = decoder
        conv4 = decoder.conv4
        mid = conv4.in_channels - 6  # the upsampled decoder features; the last 6 are x0 (frame + plate)
        self.conv4_phase = nn.Conv2d(mid, 4 * conv4.out_channels, 3, padding=1, bias=False)
        self.conv4_image = nn.Conv2d(6, conv4.out_channels, 3, padding=1, bias=conv4.bias is not None)
        with torch.no_grad():
            self.conv4_phase.weight.copy_(phase_kernels(conv4.weight[:, :mid], BILINEAR_2X).to(conv4.weight.dtype))
            self.conv4_image.weight.copy_(conv4.weight[:, mid:])
            if conv4.bias is not None:
                self.conv4_image.bias.copy_(conv4.bias)
        self.export_mode = False

    def forward(self, x4, x3, x2, x1, x0) -> torch.Tensor:
        x = self.trunk(x4, x3, x2, x1)
        return self.head(x, x0) if self.phase_ok(x, x0) else self.inner.head(x, x0)

    def trunk(self, x4, x3, x2, x1) -> torch.Tensor:
        """Everything before conv4 (:meth:`Decoder.trunk`): the 48-channel features at half the output size."""
        return self.inner.trunk(x4, x3, x2, x1)

    def phase_ok(self, x: torch.Tensor, x0: torch.Tensor) -> bool:
        h, w = x.shape[-2:]
        return not self.export_mode and tuple(x0.shape[-2:]) == (2 * h, 2 * w) and h >= 3 and w >= 3

    def head(self, x: torch.Tensor, x0: torch.Tensor, channels: int | None = None) -> torch.Tensor:
        """conv4 by phases; ``channels``: only the first ones from the phase kernels (the others get
        just the ``x0`` part and the exact border, see :meth:`complete_hidden`)."""
        c = channels or self.conv4_phase.out_channels // 4
        out = self.conv4_image(x0)
        phase = F.conv2d(x, self.conv4_phase.weight[: 4 * c], None, 1, 1)
        out[:, :c] += F.pixel_shuffle(phase, 2)
        self._fix_border(out, x, x0)
        return out

    def _fix_border(self, out: torch.Tensor, x: torch.Tensor, x0: torch.Tensor) -> None:
        """Rows/cols 0, 1 and the last two, from the exact upsampling of a few source rows/cols."""
        d = self.inner
        h, w = x.shape[-2:]
        hh, ww = 2 * h, 2 * w
        top = d.conv4(torch.cat([_up(x[:, :, :3], (6, ww))[:, :, :3], x0[:, :, :3]], 1))
        bottom = d.conv4(torch.cat([_up(x[:, :, -2:], (4, ww))[:, :, 1:], x0[:, :, -3:]], 1))
        left = d.conv4(torch.cat([_up(x[..., :3], (hh, 6))[..., :3], x0[..., :3]], 1))
        right = d.conv4(torch.cat([_up(x[..., -2:], (hh, 4))[..., 1:], x0[..., -3:]], 1))
        out[:, :, :2] = top[:, :, :2]
        out[:, :, -2:] = bottom[:, :, -2:]
        out[..., :2] = left[..., :2]
        out[..., -2:] = right[..., -2:]

    def complete_hidden_dense(self, raw: torch.Tensor, x: torch.Tensor, first: int = 5) -> None:
        """Like :meth:`complete_hidden` for every pixel (used when most of them are needed)."""
        phase = F.pixel_shuffle(F.conv2d(x, self.conv4_phase.weight[4 * first :], None, 1, 1), 2)
        raw[:, first:, 2:-2, 2:-2] += phase[:, :, 2:-2, 2:-2].to(raw.dtype)

    def complete_hidden(self, raw: torch.Tensor, x: torch.Tensor, needed: torch.Tensor, first: int = 5) -> None:
        """Add the phase part of channels ``first:`` to ``raw`` (B, C, 2h, 2w), in place, where ``needed``.

        ``needed`` (B, 2h, 2w) bool marks output pixels that will be read. Their 2x2 groups away from
        the border (already exact) are computed as one matrix product of 3x3 neighbourhoods of ``x``
        with the phase kernels: the hidden channels are only read around refined patches.
        """
        batch, cin, h, w = x.shape
        low = F.max_pool2d(needed[:, None].to(x.dtype), 2)[:, 0] > 0  # (B, h, w)
        low[:, 0], low[:, -1], low[:, :, 0], low[:, :, -1] = False, False, False, False
        b, p, q = torch.nonzero(low, as_tuple=True)
        if b.numel() == 0:
            return
        ar = torch.arange(-1, 2, device=x.device)
        rows = (b[:, None, None] * h + (p[:, None, None] + ar[:, None])) * w + (q[:, None, None] + ar[None, :])
        cols = x.permute(0, 2, 3, 1).reshape(batch * h * w, cin).index_select(0, rows.reshape(-1))
        cols = cols.view(b.numel(), 9 * cin)  # (U, 3*3*cin) in (dy, dx, c) order
        weight = self.conv4_phase.weight[4 * first :]  # (4 * (C - first), cin, 3, 3)
        vals = cols @ weight.permute(0, 2, 3, 1).reshape(weight.shape[0], -1).t().to(cols.dtype)
        vals = vals.view(-1, weight.shape[0] // 4, 2, 2).permute(0, 2, 3, 1)  # (U, i, j, channel)
        hh, ww = 2 * h, 2 * w
        ij = torch.arange(2, device=x.device)
        pix = (b[:, None, None] * hh + (2 * p[:, None, None] + ij[:, None])) * ww + (2 * q[:, None, None] + ij[None, :])
        channels = raw.shape[1]
        flat = raw.permute(0, 2, 3, 1).reshape(batch * hh * ww, channels)  # a view: raw is channels_last
        flat[:, first:].index_add_(0, pix.reshape(-1), vals.reshape(-1, channels - first).to(raw.dtype))


def _up(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x, size, mode="bilinear", align_corners=False)
