"""The VFX options on the command line: --plate auto, cleanplate plate, matte controls, shadow,
EXR / 16-bit output; and one clear line (exit 2) for each bad input."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from cleanplate.cli.app import main

CLASSICAL = ["-m", "classical", "--device", "cpu"]
QUICK_AUTO = ["--auto-frames", "5", "--auto-rounds", "2"]


def _cli(capsys, *args) -> tuple[int, str]:
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in args])
    return info.value.code, capsys.readouterr().err


@pytest.fixture
def still(tmp_path: Path) -> tuple[Path, Path]:
    from tests.ground_truth import disk, texture

    plate = (texture(48, 64, 3) * 255).astype(np.uint8)
    alpha = disk(48, 64, 24, 32, 12)
    frame = (alpha[..., None] * np.float32([230, 40, 40]) + (1 - alpha[..., None]) * plate).astype(np.uint8)
    paths = tmp_path / "shot.png", tmp_path / "plate.png"
    for path, img in zip(paths, (frame, plate), strict=True):
        cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    return paths


def test_video_plate_auto_writes_the_never_seen_mask(clip_factory, tmp_path: Path, capsys) -> None:
    clip = clip_factory("walk.mp4", n=7, noise=2.0)
    never, conf = tmp_path / "never.png", tmp_path / "conf.png"
    code, err = _cli(
        capsys, "video", clip.path, "--plate", "auto", "-o", f"alpha={tmp_path / 'a'}/",
        "--save", f"never_seen={never},confidence={conf}", *QUICK_AUTO, *CLASSICAL,
    )  # fmt: skip
    assert code == 0, err
    assert "building the plate from walk.mp4" in err
    assert cv2.imread(str(never), cv2.IMREAD_GRAYSCALE).shape == clip.plate.shape[:2]
    assert len(list((tmp_path / "a").glob("*.png"))) == 7
    code, err = _cli(capsys, "video", clip.path, "--plate", "auto", "-o", f"alpha={tmp_path / 'b'}/",
                     "--save", f"never_seen={never}", *QUICK_AUTO, *CLASSICAL)  # fmt: skip
    assert code == 2 and "already exists" in err  # refused before any work


def test_plate_command_builds_and_refuses_images(clip_factory, tmp_path: Path, capsys, still) -> None:
    clip = clip_factory("walk.mp4", n=7, noise=2.0)
    out, never = tmp_path / "built.png", tmp_path / "never.png"
    code, err = _cli(capsys, "plate", clip.path, "-o", out, "--never-seen", never, *QUICK_AUTO, *CLASSICAL)
    assert code == 0, err
    built = cv2.cvtColor(cv2.imread(str(out)), cv2.COLOR_BGR2RGB).astype(np.int16)
    assert np.abs(built - clip.plate).mean() < 6  # the background, without the subject
    code, err = _cli(capsys, "plate", clip.path, "-o", out, *CLASSICAL)
    assert code == 2 and "already exists" in err
    code, err = _cli(capsys, "plate", still[0], "-o", tmp_path / "p2.png", *CLASSICAL)
    assert code == 2 and "is an image" in err and "Traceback" not in err


def test_image_controls_shadow_and_exr(capsys, still, tmp_path: Path) -> None:
    pytest.importorskip("OpenEXR")
    from cleanplate.io.exr import read_exr

    shot, plate = still
    out = tmp_path / "out"
    code, err = _cli(capsys, "image", shot, "--plate", plate, "-o", out, "--save", "rgba,alpha,shadow",
                     "--format", "exr", "--choke", "2", *CLASSICAL)  # fmt: skip
    assert code == 0, err
    rgba, names = read_exr(out / "shot.exr")
    alpha, _ = read_exr(out / "shot_alpha.exr")
    assert names == "RGBA" and np.allclose(rgba[..., 3], alpha[..., 0])
    assert (out / "shot_shadow.exr").exists()
    code, err = _cli(capsys, "image", shot, "--plate", plate, "-o", tmp_path / "plain", "--save", "alpha", *CLASSICAL)
    plain = cv2.imread(str(tmp_path / "plain" / "shot_alpha.png"), cv2.IMREAD_GRAYSCALE) / 255
    assert alpha[..., 0].sum() < plain.sum() - 2 * np.pi * 12  # the choke took about 2 px off the disk
    code, err = _cli(capsys, "image", shot, "--plate", plate, "-o", tmp_path / "p16", "--save", "alpha",
                     "--format", "png16", *CLASSICAL)  # fmt: skip
    assert code == 0 and cv2.imread(str(tmp_path / "p16" / "shot_alpha.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint16


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--garbage", "missing.png"], "--garbage missing.png: no such file"),
        (["--choke", "1e9"], "--choke must be within"),
        (["--clip-black", "0.8", "--clip-white", "0.2"], "black < white"),
        (["--keep-shadow", "3"], "--keep-shadow must be in [0, 1]"),
    ],
)
def test_bad_control_values_are_one_line(capsys, still, tmp_path: Path, extra: list[str], message: str) -> None:
    shot, plate = still
    code, err = _cli(capsys, "image", shot, "--plate", plate, "-o", tmp_path / "o", *extra, *CLASSICAL)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_plate_auto_on_images_and_masks_of_another_aspect(capsys, still, clip_factory, tmp_path: Path) -> None:
    shot, plate = still
    code, err = _cli(capsys, "image", shot, "--plate", "auto", "-o", tmp_path / "o", *CLASSICAL)
    assert code == 2 and "--plate auto builds the plate from a video" in err
    clip = clip_factory("walk.mp4", n=3)
    wide = tmp_path / "wide.png"
    cv2.imwrite(str(wide), np.zeros((10, 80), np.uint8))
    code, err = _cli(capsys, "video", clip.path, "--plate", "auto", "-o", f"alpha={tmp_path / 'v'}/",
                     "--holdout", wide, *CLASSICAL)  # fmt: skip
    assert code == 2 and "another aspect ratio" in err and "Traceback" not in err
    code, err = _cli(capsys, "video", clip.path, "--plate", plate, "-o", f"rgba={tmp_path}/out.exr", *CLASSICAL)
    assert code == 2 and "EXR output of a video is a sequence" in err
