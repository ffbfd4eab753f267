"""OpenEXR (half float, premultiplied RGBA) and 16-bit PNG: written, read back, checked."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from cleanplate.errors import InputError, OutputError
from cleanplate.io.exr import HALF_EPS, read_exr, write_exr, write_png16
from cleanplate.io.formats import parse_output

pytest.importorskip("OpenEXR")


def _rgba(h: int = 24, w: int = 32) -> np.ndarray:
    rng = np.random.default_rng(0)
    rgba = rng.random((h, w, 4)).astype(np.float32)
    rgba[0, 0, 3], rgba[0, 1, 3] = 0.0, 1.0
    return rgba


def test_rgba_exr_is_premultiplied_half_float_within_precision(tmp_path: Path) -> None:
    rgba = _rgba()
    path = write_exr(tmp_path / "a.exr", rgba)
    back, names = read_exr(path)
    assert names == "RGBA" and back.shape == rgba.shape
    assert np.abs(back[..., 3] - rgba[..., 3]).max() <= HALF_EPS  # half float: 11 significant bits
    premultiplied = rgba[..., :3] * rgba[..., 3:]
    assert np.abs(back[..., :3] - premultiplied).max() <= HALF_EPS
    assert np.abs(back[..., :3] - rgba[..., :3]).max() > 0.1  # really premultiplied, not straight
    assert back[0, 0, :3].max() == 0.0  # alpha 0: no colour


def test_grey_and_rgb_layers_and_no_overwrite(tmp_path: Path) -> None:
    grey = np.linspace(0, 1, 40, dtype=np.float32).reshape(5, 8)
    back, names = read_exr(write_exr(tmp_path / "y.exr", grey))
    assert names == "Y" and np.abs(back[..., 0] - grey).max() <= HALF_EPS
    _, names = read_exr(write_exr(tmp_path / "rgb.exr", np.zeros((4, 4, 3), np.float32)))
    assert names == "RGB"
    with pytest.raises(OutputError, match="already exists"):
        write_exr(tmp_path / "y.exr", grey)
    write_exr(tmp_path / "y.exr", grey, force=True)
    with pytest.raises(InputError, match="not a readable EXR"):
        (tmp_path / "bad.exr").write_bytes(b"not an exr")
        read_exr(tmp_path / "bad.exr")


def test_png16_keeps_sixteen_bits(tmp_path: Path) -> None:
    grey = np.linspace(0, 1, 1000, dtype=np.float32).reshape(20, 50)
    back = cv2.imread(str(write_png16(tmp_path / "a.png", grey)), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint16
    assert np.abs(back / 65535 - grey).max() <= 0.5 / 65535 + 1e-7
    rgba = cv2.imread(str(write_png16(tmp_path / "b.png", _rgba())), cv2.IMREAD_UNCHANGED)
    assert rgba.dtype == np.uint16 and rgba.shape[2] == 4


def test_matte_saves_exr_and_png16(tmp_path: Path) -> None:
    from cleanplate.api.matte import Matte

    rgba = _rgba()
    matte = Matte(alpha=rgba[..., 3], foreground=rgba[..., :3])
    back, _ = read_exr(matte.save(tmp_path / "m.exr"))
    assert np.abs(back[..., 3] - rgba[..., 3]).max() <= HALF_EPS
    alpha16 = cv2.imread(str(matte.save(tmp_path / "m_alpha.png", "alpha", depth=16)), cv2.IMREAD_UNCHANGED)
    assert alpha16.dtype == np.uint16 and np.abs(alpha16 / 65535 - rgba[..., 3]).max() < 1e-4
    with pytest.raises(InputError, match="16-bit output is written as .png"):
        matte.save(tmp_path / "m.tif", "alpha", depth=16)


def test_sequence_outputs_pick_exr_and_png16() -> None:
    spec = parse_output("rgba=frames/%05d.exr")
    assert spec.preset.name == "exr" and spec.pattern == "%05d.exr" and spec.preset.sample == "float"
    assert parse_output("alpha=mattes/", "png16").preset.name == "png16"
    assert parse_output("rgba=out/", "exr").pattern == "%06d.exr"
    assert parse_output("shadow=sh.mp4").preset.name == "h264"
    with pytest.raises(InputError, match="EXR output of a video is a sequence"):
        parse_output("rgba=out.exr")
    with pytest.raises(InputError, match="writes .png frames"):
        parse_output("rgba=out/%05d.exr", "png16")


def test_video_exr_sequence_reads_back(clip_factory, tmp_path: Path) -> None:
    """The same frames as EXR and as 8-bit PNG: alpha equal within quantisation, colour premultiplied."""
    from cleanplate.pipeline import VideoOptions, process_video
    from tests.clips import FakeMatter

    clip = clip_factory(n=3)

    class Soft(FakeMatter):  # fractional alpha, so premultiplication shows
        def matte_tensor(self, src, bgr):
            alpha, fgr, z, _ = super().matte_tensor(src, bgr)
            return alpha * 0.7, fgr, z, z

    outs = [
        parse_output(f"rgba={tmp_path / 'exr'}/%05d.exr"),
        parse_output(f"rgba={tmp_path / 'png'}/"),
        parse_output(f"alpha={tmp_path / 'a16'}/", "png16"),
    ]
    process_video(Soft(), clip.path, outs, clip.plate, options=VideoOptions(progress=False))
    exrs = sorted((tmp_path / "exr").glob("*.exr"))
    pngs = sorted((tmp_path / "png").glob("*.png"))
    a16 = sorted((tmp_path / "a16").glob("*.png"))
    assert [p.name for p in exrs] == ["00000.exr", "00001.exr", "00002.exr"] and len(pngs) == len(a16) == 3
    back, names = read_exr(exrs[1])
    png = cv2.cvtColor(cv2.imread(str(pngs[1]), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGRA2RGBA) / 255.0
    assert names == "RGBA"
    assert np.abs(back[..., 3] - png[..., 3]).max() <= 0.5 / 255 + HALF_EPS
    assert np.isclose(back[..., 3].max(), 0.7, atol=HALF_EPS)
    assert np.abs(back[..., :3] - png[..., :3] * back[..., 3:]).max() <= 1 / 255 + HALF_EPS
    alpha16 = cv2.imread(str(a16[1]), cv2.IMREAD_UNCHANGED)
    assert alpha16.dtype == np.uint16 and np.abs(alpha16 / 65535 - back[..., 3]).max() <= HALF_EPS
