"""The BGMv2 hands-on tutorial (../shared/seed/bgmv2_tutorial.md) runs as written against cleanplate.

Changes from the text: only the imports (``from cleanplate import MattingRefine`` instead of
``from model import MattingRefine``, ``from cleanplate.transforms import to_tensor, to_pil_image``
instead of torchvision's, which cleanplate does not install); CPU instead of ``.cuda()``; the
sample images resized small (multiples of 4) for speed; the reference checkpoint (random weights
in the official layout) instead of ``pytorch_mobilenetv2.pth``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cleanplate.samples import sample_pair

SIZE = (320, 216)  # carpark is 1280x864: a quarter, both sides divisible by 4


def test_tutorial_runs_as_written(seed7_ckpt: Path):
    weights = seed7_ckpt
    src_path, bgr_path = sample_pair("carpark")
    beach_path = sample_pair("vtest")[1]

    # ---- tutorial: the imports (the only lines changed)
    from cleanplate import MattingRefine
    from cleanplate.transforms import to_pil_image, to_tensor

    # ---- tutorial: load the model

    device = torch.device("cpu")
    precision = torch.float32

    model = MattingRefine(
        backbone="mobilenetv2", backbone_scale=0.25, refine_mode="sampling", refine_sample_pixels=80_000
    )
    model.load_state_dict(torch.load(weights))
    model = model.eval().to(precision).to(device)

    # ---- tutorial: run it
    src = Image.open(src_path).resize(SIZE)
    bgr = Image.open(bgr_path).resize(SIZE)
    src = to_tensor(src).to(device).unsqueeze(0)
    bgr = to_tensor(bgr).to(device).unsqueeze(0)

    with torch.no_grad():
        pha, fgr = model(src, bgr)[:2]

    # ---- tutorial: composite over a new background
    new_bgr = np.array(Image.open(beach_path).resize(SIZE))

    pha_arr = np.array(to_pil_image((pha)[0]))
    fgr_arr = np.array(to_pil_image((fgr)[0]))

    inv_pha = 255 - pha_arr

    fg = fgr_arr.astype("float32")
    fg[:, :, 0] = fg[:, :, 0] * pha_arr / 255
    fg[:, :, 1] = fg[:, :, 1] * pha_arr / 255
    fg[:, :, 2] = fg[:, :, 2] * pha_arr / 255
    fg = fg.astype("uint8")

    bg = new_bgr.astype("float32")
    bg[:, :, 0] = bg[:, :, 0] * inv_pha / 255
    bg[:, :, 1] = bg[:, :, 1] * inv_pha / 255
    bg[:, :, 2] = bg[:, :, 2] * inv_pha / 255
    bg = bg.astype("uint8")

    composite = bg + fg

    # ---- checks
    h, w = SIZE[1], SIZE[0]
    assert pha.shape == (1, 1, h, w) and fgr.shape == (1, 3, h, w)
    assert pha_arr.shape == (h, w) and fgr_arr.shape == (h, w, 3)
    assert composite.shape == (h, w, 3) and composite.dtype == np.uint8
    a = pha[0, 0].numpy()[:, :, None]
    exact = fgr[0].permute(1, 2, 0).numpy() * 255 * a + new_bgr * (1 - a)
    assert np.abs(composite.astype(float) - exact).max() <= 4  # the tutorial truncates three times
    assert "torchvision" not in sys.modules
