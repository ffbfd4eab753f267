"""PlateAligner: recovers known camera drift on background pixels, and falls back without raising."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from cleanplate.plate.track import PlateAligner
from tests.clips import background

SIZE = (120, 160)


def _drift(tx: float, ty: float, angle: float, scale: float) -> np.ndarray:
    h, w = SIZE
    centre = np.array([[1, 0, -w / 2], [0, 1, -h / 2], [0, 0, 1.0]])
    rot = np.vstack([cv2.getRotationMatrix2D((0, 0), angle, scale), [0, 0, 1]])
    return np.linalg.inv(centre) @ rot @ centre @ np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1.0]])


def _corner_error(a: np.ndarray, b: np.ndarray) -> float:
    h, w = SIZE
    corners = np.float32([[0, 0], [w, 0], [w, h], [0, h]]).reshape(-1, 1, 2)
    return float(
        np.linalg.norm(cv2.perspectiveTransform(corners, a) - cv2.perspectiveTransform(corners, b), axis=2).max()
    )


def _frame(plate: np.ndarray, h: np.ndarray, rng, gain: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    frame = cv2.warpPerspective(plate, h, SIZE[::-1], borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
    alpha = np.zeros(SIZE, np.float32)
    alpha[40:, 60:100] = 1  # the subject covers part of the background
    frame = frame * (1 - alpha[..., None]) + np.array([220, 40, 40]) * alpha[..., None]
    frame = frame * gain + rng.normal(0, 2, frame.shape)  # exposure drift + noise
    return np.clip(frame, 0, 255).astype(np.uint8), alpha


def test_tracks_a_drifting_handheld_camera(data_dir) -> None:
    plate = background(data_dir, SIZE)
    aligner = PlateAligner(plate, SIZE)
    rng = np.random.default_rng(0)
    alpha = None
    errors = []
    for i in range(6):
        truth = _drift(2.0 * i - 5, 1.5 * i - 3, 0.4 * i - 1, 1 + 0.01 * i)
        frame, alpha_true = _frame(plate, truth, rng, gain=1.1)
        errors.append(_corner_error(aligner.estimate(frame, alpha), truth))
        alpha = alpha_true  # the next frame masks with "the previous matte"
    assert max(errors) < 0.5, errors  # pixels at full resolution
    assert aligner.stats.fallbacks == 0 and aligner.stats.frames == 6
    assert aligner.stats.note() is None
    assert aligner.stats.tracked >= 4  # the cheap ECC path carries most frames


def test_warp_puts_the_plate_on_the_frame(data_dir) -> None:
    plate = background(data_dir, SIZE)
    truth = _drift(4, -3, 1.0, 1.02)
    frame, alpha = _frame(plate, truth, np.random.default_rng(1))
    warped = PlateAligner(plate, SIZE).warp(frame, alpha)
    bg = alpha == 0
    aligned = np.abs(warped.astype(float) - frame)[bg].mean()
    unaligned = np.abs(plate.astype(float) - frame)[bg].mean()
    assert aligned < 0.3 * unaligned, (aligned, unaligned)


def test_falls_back_without_raising(data_dir) -> None:
    plate = background(data_dir, SIZE)
    aligner = PlateAligner(plate, SIZE)
    flat = np.full((*SIZE, 3), 128, np.uint8)
    assert np.allclose(aligner.estimate(flat), aligner.base)  # nothing known yet: plain resize
    good, _ = _frame(plate, _drift(3, 2, 0.5, 1.0), np.random.default_rng(2))
    fitted = aligner.estimate(good)
    again = aligner.estimate(flat)  # lost: keep the last good warp (the camera moves smoothly)
    assert np.allclose(again, fitted)
    assert aligner.stats.resized == 1 and aligner.stats.reused == 1 and aligner.stats.fallbacks == 2
    assert aligner.stats.note() == (
        "plate alignment fell back on 2 of 3 frames (too few background features); "
        "those frames reuse the last good alignment"
    )


@pytest.mark.parametrize("plate_size", [(240, 320), (60, 80)])
def test_plate_of_another_resolution(data_dir, plate_size) -> None:
    plate = background(data_dir, plate_size)
    frame, alpha = _frame(background(data_dir, SIZE), _drift(3, 0, 0, 1.0), np.random.default_rng(3))
    h = PlateAligner(plate, SIZE).estimate(frame, alpha)
    scale = np.diag([SIZE[1] / plate_size[1], SIZE[0] / plate_size[0], 1.0])
    assert _corner_error(h, _drift(3, 0, 0, 1.0) @ scale) < 1.0


def test_a_fit_that_misaligns_the_background_is_refused(data_dir, monkeypatch) -> None:
    import cleanplate.plate.geometry as module

    plate = background(data_dir, SIZE)
    frame, alpha = _frame(plate, np.eye(3), np.random.default_rng(0))  # the camera did not move
    wrong = _drift(5.0, -4.0, 0.0, 1.0)
    real = cv2.findHomography

    def bad_fit(src, dst, *args, **kwargs):
        _, inliers = real(src, dst, *args, **kwargs)
        return wrong, np.ones_like(inliers)

    monkeypatch.setattr(module.cv2, "findHomography", bad_fit)
    aligner = PlateAligner(plate, SIZE, ecc=False)
    assert _corner_error(aligner.estimate(frame, alpha), np.eye(3)) < 1e-6
    assert aligner.stats.resized == 1 and aligner.stats.fitted == 0
