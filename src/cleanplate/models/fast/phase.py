"""Phase kernels: a convolution over a 2x-upsampled map as four convolutions of the map itself.

Upsampling by exactly 2 is a fixed stencil: output row ``2p + phase`` of a valid convolution over
the upsampled map reads a few source rows with fixed weights, ``stencil[phase]`` (kernel taps x
source rows). In 2-D the kernel of output phase (i, j) is ``stencil[i]^T K stencil[j]`` for each
channel pair; the four phases are stacked as output channels ``o * 4 + 2i + j`` so that
``pixel_shuffle(., 2)`` interleaves them. Built in float64, so the rewrite is exact up to the
final cast. The refiner's conv1 (after bilinear 2x) and conv3 (after nearest 2x) and the
decoder's conv4 (after bilinear 2x) all come from :func:`phase_kernels`.
"""

from __future__ import annotations

import torch

# Bilinear 2x (align_corners=False), away from the border: upsampled row 2m = 1/4 x[m-1] + 3/4 x[m],
# row 2m+1 = 3/4 x[m] + 1/4 x[m+1]; a 3x3 convolution's taps then read source rows p..p+2.
BILINEAR_2X = torch.tensor(
    [
        [[0.75, 0.25, 0.0], [0.25, 0.75, 0.0], [0.0, 0.75, 0.25]],
        [[0.25, 0.75, 0.0], [0.0, 0.75, 0.25], [0.0, 0.25, 0.75]],
    ],
    dtype=torch.float64,
)  # [phase, tap, source row]
# Nearest 2x: output row 2p (phase 0) reads upsampled rows 2p..2p+2 = source rows p, p, p+1;
# row 2p+1 reads p, p+1, p+1.
NEAREST_2X = torch.tensor(
    [[[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]], dtype=torch.float64
)  # [phase, tap, source row]


def phase_kernels(weight: torch.Tensor, stencil: torch.Tensor) -> torch.Tensor:
    """(O, I, k, k) kernels over the upsampled map → (4*O, I, s, s) float64 phase kernels over the source.

    ``stencil`` is (2, k, s): per output phase, how each of the k taps mixes s source rows.
    """
    w = weight.detach().to(torch.float64)
    s = stencil.shape[2]
    phases = w.new_zeros(w.shape[0], 4, w.shape[1], s, s)
    for i in range(2):
        for j in range(2):
            phases[:, 2 * i + j] = torch.einsum("oide,dk,el->oikl", w, stencil[i], stencil[j])
    return phases.reshape(4 * w.shape[0], w.shape[1], s, s)
