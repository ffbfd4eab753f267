"""Matte controls (levels, choke, feather, garbage/holdout): each one measured, through the pure
functions, the per-frame step of the video pipeline, and the still-image path."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from cleanplate.errors import InputError
from cleanplate.pipeline.controls import (
    Controls,
    MatteControls,
    choke,
    control_matte,
    feather,
    levels,
    read_mask,
)
from tests.ground_truth import disk


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, np.float32))[None, None]


def _radius(alpha: torch.Tensor) -> float:
    """Equivalent radius of a disk matte from its area."""
    return math.sqrt(float(alpha.sum()) / math.pi)


def test_levels_map_black_and_white_points() -> None:
    a = torch.tensor([0.0, 0.05, 0.1, 0.5, 0.9, 0.95, 1.0])
    out = levels(a, 0.1, 0.9)
    assert torch.allclose(out, torch.tensor([0.0, 0.0, 0.0, 0.5, 1.0, 1.0, 1.0]))
    assert levels(a, 0.0, 1.0) is a  # neutral: untouched


@pytest.mark.parametrize("px", [1.0, 3.0, 6.0])
def test_choke_moves_the_edge_by_that_many_pixels(px: float) -> None:
    a = _t(disk(96, 96, 48, 48, 25))
    assert _radius(choke(a, px)) == pytest.approx(25 - px, abs=0.6)
    assert _radius(choke(a, -px)) == pytest.approx(25 + px, abs=0.6)


def test_fractional_choke_is_continuous_and_zero_is_identity() -> None:
    a = _t(disk(64, 64, 32, 32, 16))
    radii = [_radius(choke(a, px)) for px in (2.0, 2.25, 2.5, 2.75, 3.0)]
    assert all(b < c for b, c in zip(radii[1:], radii[:-1], strict=True)), radii  # strictly shrinking
    assert choke(a, 0.0) is a


def test_feather_softens_only_the_edge() -> None:
    hard = (disk(80, 80, 40, 40, 20) > 0.5).astype(np.float32)
    out = feather(_t(hard), 4.0)[0, 0].numpy()
    soft = lambda x: ((x > 0.02) & (x < 0.98)).sum()  # noqa: E731
    assert soft(out) > 4 * max(1, soft(hard))  # a wider ramp
    assert out[40, 40] == pytest.approx(1.0, abs=1e-4) and out[2, 2] == pytest.approx(0.0, abs=1e-4)
    assert float(out.sum()) == pytest.approx(float(hard.sum()), rel=0.02)  # blurred, not grown or shrunk


def _mask_file(path: Path, mask: np.ndarray) -> Path:
    cv2.imwrite(str(path), (mask * 255).astype(np.uint8))
    return path


def test_garbage_and_holdout_masks_resized_to_the_frame(tmp_path: Path) -> None:
    h, w = 60, 80
    alpha = np.zeros((h, w), np.float32)
    alpha[20:40, 30:50] = 1.0  # the subject
    alpha[5:10, 5:10] = 1.0  # a light stand the model kept
    garbage = np.zeros((h * 2, w * 2), np.float32)  # drawn at twice the size
    garbage[:30, :30] = 1.0
    holdout = np.zeros((h, w), np.float32)
    holdout[45:55, 60:75] = 1.0  # a prop the plate also shows: the model says background
    frame = np.full((h, w, 3), 200, np.uint8)
    fgr = np.zeros((h, w, 3), np.float32)
    controls = MatteControls(
        garbage=_mask_file(tmp_path / "g.png", garbage), holdout=_mask_file(tmp_path / "h.png", holdout)
    )
    a, f = control_matte(alpha, fgr, frame, controls)
    assert a[5:10, 5:10].max() == 0.0  # garbage: always background
    assert a[45:55, 60:75].min() == 1.0  # holdout: always subject
    assert np.allclose(f[47:53, 62:73], 200 / 255)  # ... and shows the frame itself there
    assert np.array_equal(a[20:40, 30:50], alpha[20:40, 30:50])  # the subject untouched


def test_holdout_wins_over_garbage(tmp_path: Path) -> None:
    both = _mask_file(tmp_path / "m.png", np.ones((10, 10), np.float32))
    zeros = np.zeros((10, 10, 3), np.float32)
    a, _ = control_matte(zeros[..., 0], zeros, zeros.astype(np.uint8), MatteControls(garbage=both, holdout=both))
    assert a.min() == 1.0


def test_mask_of_another_aspect_is_refused(tmp_path: Path) -> None:
    path = _mask_file(tmp_path / "wide.png", np.ones((10, 40), np.float32))
    with pytest.raises(InputError, match="another aspect ratio"):
        read_mask(path, (30, 40), "garbage")


@pytest.mark.parametrize(
    ("controls", "message"),
    [
        (MatteControls(choke=1e6), "--choke must be within"),
        (MatteControls(choke=float("nan")), "--choke must be a finite number"),
        (MatteControls(feather=-1), "--feather must be in"),
        (MatteControls(clip_black=0.6, clip_white=0.4), "black < white"),
        (MatteControls(clip_white=1.5), "black < white"),
        (MatteControls(garbage=Path("/nonexistent/mask.png")), "no such file"),
    ],
)
def test_absurd_values_are_one_line_errors(controls: MatteControls, message: str) -> None:
    with pytest.raises(InputError, match=message):
        controls.check()


def test_inactive_controls_and_the_order_levels_choke_feather() -> None:
    assert not MatteControls().active
    a = _t(disk(64, 64, 32, 32, 16) * 0.8)  # a semi-transparent disk
    c = Controls(MatteControls(clip_white=0.8, choke=2), (64, 64))
    out, _ = c(a, torch.zeros(1, 3, 64, 64), torch.zeros(1, 3, 64, 64))
    assert float(out.max()) == 1.0  # levels first: 0.8 became opaque
    assert _radius(out) == pytest.approx(14, abs=0.6)  # then the choke


def test_controls_run_in_the_video_step(clip_factory, tmp_path: Path) -> None:
    """The same controls in FrameStep: a garbage mask over the right half empties it in every frame."""
    from cleanplate.io.formats import parse_output
    from cleanplate.pipeline import VideoOptions, process_video
    from tests.clips import FakeMatter

    clip = clip_factory(n=4, noise=1.0)
    h, w = clip.plate.shape[:2]
    garbage = np.zeros((h, w), np.float32)
    garbage[:, w // 2 :] = 1
    mask = _mask_file(tmp_path / "garbage.png", garbage)
    out = tmp_path / "frames"
    options = VideoOptions(progress=False, controls=MatteControls(garbage=mask, choke=1.0))
    process_video(FakeMatter(), clip.path, [parse_output(f"alpha={out}/")], clip.plate, options=options)
    alphas = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in sorted(out.glob("*.png"))]
    assert len(alphas) == 4
    assert all(a[:, w // 2 :].max() == 0 for a in alphas)
    truth_left = sum(float((a[:, : w // 2] > 0.5).sum()) for a in clip.alphas)
    assert sum(float((a[:, : w // 2] > 127).sum()) for a in alphas) > 0.3 * truth_left  # the rest is kept
