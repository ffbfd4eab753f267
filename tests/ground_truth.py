"""Tiny ground-truth folders written on the fly (eval and CLI tests): two subjects, two backgrounds, two triples."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest


def _write_rgb(path: Path, rgb: np.ndarray) -> None:
    cv2.imwrite(str(path), cv2.cvtColor((np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8), cv2.COLOR_RGB2BGR))


def _write_gray(path: Path, gray: np.ndarray) -> None:
    cv2.imwrite(str(path), (np.clip(gray, 0, 1) * 255 + 0.5).astype(np.uint8))


def disk(h: int, w: int, cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.clip(r - np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2) + 0.5, 0, 1).astype(np.float32)


def texture(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    bg = cv2.GaussianBlur(rng.random((h, w, 3)).astype(np.float32), (0, 0), 2.5)
    return (bg - bg.min()) / (bg.max() - bg.min()) * 0.6 + 0.2


@pytest.fixture
def gt_dirs(tmp_path: Path) -> tuple[Path, Path]:
    """gt/ with subjects 'ball' (clean fgr) and 'ring' (fgr as an image with its old background), bgs/ with 2 photos."""
    gt, bgs = tmp_path / "gt", tmp_path / "bgs"
    gt.mkdir()
    bgs.mkdir()
    h, w = 72, 96
    ball = disk(h, w, 36, 40, 20)
    _write_gray(gt / "ball_pha.png", ball)
    _write_rgb(gt / "ball_fgr.png", np.broadcast_to(np.float32([0.9, 0.2, 0.2]), (h, w, 3)))
    ring = np.clip(disk(h, w, 30, 50, 22) - disk(h, w, 30, 50, 8), 0, 1)
    _write_gray(gt / "ring_pha.png", ring)
    _write_rgb(gt / "ring_img.png", ring[..., None] * np.float32([0.1, 0.3, 0.9]) + (1 - ring[..., None]) * 0.5)
    _write_rgb(bgs / "stripes.png", texture(120, 160, 1))
    _write_rgb(bgs / "blotches.jpg", texture(90, 90, 2))
    return gt, bgs


@pytest.fixture
def triples_dir(tmp_path: Path) -> Path:
    """triples/ with 'one' (png, with fgr) and 'two' (jpg src/plate), 48x64."""
    folder = tmp_path / "triples"
    folder.mkdir()
    for i, (name, ext) in enumerate((("one", ".png"), ("two", ".jpg"))):
        plate = texture(48, 64, 10 + i)
        alpha = disk(48, 64, 24, 30, 12)
        fgr = np.broadcast_to(np.float32([0.2, 0.8, 0.3]), plate.shape)
        src = alpha[..., None] * fgr + (1 - alpha[..., None]) * plate
        _write_rgb(folder / f"{name}_src{ext}", src)
        _write_rgb(folder / f"{name}_plate{ext}", plate)
        _write_gray(folder / f"{name}_alpha.png", alpha)
        if name == "one":
            _write_rgb(folder / f"{name}_fgr.png", fgr)
    return folder
