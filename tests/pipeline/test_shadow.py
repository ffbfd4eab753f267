"""The shadow layer: a synthetic cast shadow is recovered (error measured), and --keep-shadow
darkens the new background exactly where it fell (pure functions, the video pipeline, stills)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from cleanplate.pipeline.shadow import shadow_composite, shadow_layer
from tests.ground_truth import disk, texture

H, W = 72, 96


def _scene(seed: int = 0, noise: float = 2.0):
    """A textured floor (the plate), a disk subject, and its soft elliptical shadow beside it."""
    rng = np.random.default_rng(seed)
    plate = texture(H, W, seed + 3)  # float in [0.2, 0.8]
    alpha = disk(H, W, 30, 30, 14)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    ellipse = ((yy - 52) / 9) ** 2 + ((xx - 60) / 22) ** 2
    shadow = (0.55 * np.clip(1.5 - ellipse, 0, 1).clip(0, 1)).astype(np.float32)  # soft edge, 0.55 deep
    shadow *= 1 - alpha
    fgr = np.broadcast_to(np.float32([0.85, 0.3, 0.25]), (H, W, 3))
    bg = plate * (1 - shadow[..., None])
    frame = fgr * alpha[..., None] + bg * (1 - alpha[..., None])
    frame = np.clip(np.rint(frame * 255 + rng.normal(0, noise, frame.shape)), 0, 255).astype(np.uint8)
    return frame, (plate * 255).round().astype(np.uint8), alpha, shadow


def _t(x: np.ndarray) -> torch.Tensor:
    x = np.asarray(x, np.float32)
    return torch.from_numpy(x if x.ndim == 3 else x[..., None]).permute(2, 0, 1)[None]


def test_shadow_layer_recovers_a_synthetic_cast_shadow(capsys) -> None:
    frame, plate, alpha, truth = _scene()
    s = shadow_layer(_t(frame) / 255, _t(plate) / 255, _t(alpha))[0, 0].numpy()
    outside = alpha < 0.01
    error = float(np.abs(s - truth)[outside].mean())
    inside = truth > 0.3
    depth = float(s[inside].mean() / truth[inside].mean())
    with capsys.disabled():
        print(f"\nshadow layer: mean abs error {error:.4f} (noise σ=2/255), depth recovered {depth:.3f}")
    assert error < 0.02, error
    assert 0.9 < depth < 1.1, depth
    assert s[truth == 0].mean() < 0.005  # no shadow where there is none
    assert s[alpha > 0.99].max() == 0.0  # and none inside the subject
    assert s.min() >= 0 and s.max() <= 1


def test_noise_alone_gives_no_shadow() -> None:
    rng = np.random.default_rng(1)
    plate = (texture(H, W, 5) * 255).round().astype(np.uint8)
    frame = np.clip(plate + rng.normal(0, 3, plate.shape), 0, 255).astype(np.uint8)
    s = shadow_layer(_t(frame) / 255, _t(plate) / 255, torch.zeros(1, 1, H, W))
    assert float(s.mean()) < 0.002


def test_keep_shadow_darkens_the_new_background_only_where_the_shadow_fell() -> None:
    _, _, alpha, shadow = _scene()
    fgr = torch.full((1, 3, H, W), 0.5)
    bg = torch.tensor([0.2, 0.9, 0.3]).view(1, 3, 1, 1)
    plain = shadow_composite(fgr, _t(alpha), bg, torch.zeros(1, 1, H, W), 1.0)
    kept = shadow_composite(fgr, _t(alpha), bg, _t(shadow), 1.0)
    half = shadow_composite(fgr, _t(alpha), bg, _t(shadow), 0.5)
    where = torch.from_numpy(shadow > 0.3)
    ratio = (kept[0, 1] / plain[0, 1])[where]
    expected = torch.from_numpy(1 - shadow)[where]
    assert torch.allclose(ratio, expected, atol=1e-5)
    assert torch.allclose(kept[0][:, torch.from_numpy(shadow == 0)], plain[0][:, torch.from_numpy(shadow == 0)])
    assert bool((half[0, 1][where] > kept[0, 1][where]).all())  # half strength, half as dark


def test_shadow_output_and_keep_shadow_through_the_video_pipeline(tmp_path: Path) -> None:
    """An oracle matter (the true alpha) isolates the shadow code from any model's errors."""
    import av

    from cleanplate.io.formats import parse_output
    from cleanplate.pipeline import VideoOptions, process_video

    frame, plate, alpha, truth = _scene(noise=1.0)
    path = tmp_path / "shadow.mkv"
    with av.open(str(path), "w") as out:  # lossless, so the test measures the layer, not the codec
        stream = out.add_stream("ffv1", rate=10)
        stream.width, stream.height, stream.pix_fmt = W, H, "bgr0"
        for _ in range(3):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)

    class Oracle:
        device = "cpu"

        def matte_tensor(self, src, bgr):
            a = _t(alpha).expand(len(src), -1, -1, -1)
            return a, src, torch.zeros_like(a), torch.zeros_like(a)

    outs = [parse_output(f"shadow={tmp_path / 'shadow'}/"), parse_output(f"comp={tmp_path / 'comp'}/")]
    options = VideoOptions(progress=False, background="white", keep_shadow=1.0)
    process_video(Oracle(), path, outs, plate, options=options)
    layers = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) / 255.0 for p in sorted((tmp_path / "shadow").glob("*.png"))]
    assert len(layers) == 3
    assert float(np.abs(layers[0] - truth)[alpha < 0.01].mean()) < 0.02
    comp = cv2.cvtColor(cv2.imread(str(sorted((tmp_path / "comp").glob("*.png"))[0])), cv2.COLOR_BGR2RGB) / 255.0
    deep = truth > 0.4
    clear = cv2.erode(((truth == 0) & (alpha < 0.01)).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    assert comp[deep].mean() < 0.6  # white, darkened in the shadow (truth there: 1 − 0.5 on average)
    assert comp[clear].min() > 0.99  # and untouched away from it


def test_still_path_shares_the_shadow_functions() -> None:
    from cleanplate.api.matte import Matte
    from cleanplate.pipeline.still import StillOptions, finish_matte

    frame, plate, alpha, truth = _scene()
    matte = Matte(alpha=alpha, foreground=frame.astype(np.float32) / 255)
    done = finish_matte(matte, frame, plate, StillOptions(shadow=True, keep_shadow=1.0))
    assert done.shadow is not None and float(np.abs(done.shadow - truth)[alpha < 0.01].mean()) < 0.02
    comp = done.composite("white").astype(np.float32) / 255
    assert comp[truth > 0.4].mean() == pytest.approx(1 - truth[truth > 0.4].mean(), abs=0.06)
    assert done.to_array("shadow").dtype == np.uint8
