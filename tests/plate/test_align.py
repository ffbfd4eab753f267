"""Plate alignment: recovers a known warp, and falls back with a warning instead of failing."""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from cleanplate.io.image import read_image
from cleanplate.plate.align import (
    AlignmentWarning,
    PlateCoverageWarning,
    _coverage_note,
    align_plate,
    coverage,
    estimate_homography,
    trimmed_residual,
)


def _known_warp(w: int, h: int, angle: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
    m[:, 2] += shift
    return np.vstack([m, [0, 0, 1]])


@pytest.fixture(scope="module")
def handheld(data_dir: Path):
    """A frame (background + a flat 'subject'), its plate taken from a moved camera, and the truth.

    The plate is the background seen through a known rotation/scale/shift; warping it back with
    the recovered homography must reproduce the background behind the frame.
    """
    background = read_image(data_dir / "train" / "backgrounds" / "kodak_kodim08.jpg")  # 768x512, textured
    h, w = 360, 480
    top, left = 60, 140
    frame_bg = background[top : top + h, left : left + w]
    # camera motion: the plate shows the scene rotated 3 degrees, scaled 1.04, shifted (14, -9)
    truth = _known_warp(w, h, 3.0, 1.04, (14.0, -9.0))  # frame -> plate
    full = np.eye(3)
    full[:2, 2] = (left, top)
    plate = cv2.warpPerspective(background, truth @ np.linalg.inv(full), (w, h), flags=cv2.INTER_LINEAR)
    frame = frame_bg.copy()
    yy, xx = np.mgrid[0:h, 0:w]
    subject = ((yy - 200) / 150) ** 2 + ((xx - 230) / 70) ** 2 < 1
    frame[subject] = (200, 60, 40)
    valid = cv2.warpPerspective(np.ones((h, w), np.uint8), np.linalg.inv(truth), (w, h)) > 0
    keep = valid & ~cv2.dilate(subject.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    keep[:8], keep[-8:], keep[:, :8], keep[:, -8:] = False, False, False, False
    return frame, plate, frame_bg, keep, truth


def _corner_error(h_fit: np.ndarray, h_true: np.ndarray, w: int, h: int) -> float:
    corners = np.float32([[0, 0], [w, 0], [w, h], [0, h]]).reshape(-1, 1, 2)
    a = cv2.perspectiveTransform(corners, h_fit)
    b = cv2.perspectiveTransform(corners, h_true)
    return float(np.linalg.norm(a - b, axis=2).max())


def test_recovers_a_known_camera_move(handheld):
    frame, plate, frame_bg, keep, truth = handheld
    with warnings.catch_warnings():
        warnings.simplefilter("error", AlignmentWarning)
        aligned = align_plate(plate, frame)
    assert aligned.shape == frame.shape
    # as good as warping back with the true motion (both pay the same interpolation blur)
    ideal = cv2.warpPerspective(plate, np.linalg.inv(truth), (480, 360), flags=cv2.INTER_LINEAR)
    before = np.abs(plate.astype(float) - frame_bg)[keep].mean()
    after = np.abs(aligned.astype(float) - frame_bg)[keep].mean()
    best = np.abs(ideal.astype(float) - frame_bg)[keep].mean()
    assert after < best + 1.0, f"mean abs error {after:.2f}, ideal {best:.2f}, unaligned {before:.2f}"
    assert after < before / 5


def test_reported_fit_is_sane_and_subpixel(handheld):
    frame, plate, _, _, truth = handheld
    fit = estimate_homography(plate, frame)
    assert 24 <= fit.inliers <= fit.matches
    assert 5 < fit.corner_shift < 60
    assert _corner_error(fit.homography, np.linalg.inv(truth), 480, 360) < 1.5


def test_plate_at_another_resolution_is_aligned_too(handheld):
    frame, plate, _, _, truth = handheld
    big = cv2.resize(plate, (960, 720), interpolation=cv2.INTER_CUBIC)
    fit = estimate_homography(big, frame)
    # big -> frame = (plate -> frame) after (big -> plate) = inv(truth) @ diag(1/2)
    expected = np.linalg.inv(truth) @ np.diag([0.5, 0.5, 1.0])
    assert _corner_error(fit.homography, expected, 960, 720) < 2.0
    assert align_plate(big, frame).shape == frame.shape


def test_featureless_plate_warns_and_falls_back():
    frame = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    flat = np.full((120, 160, 3), 128, np.uint8)
    with pytest.warns(AlignmentWarning, match="alignment failed"):
        out = align_plate(flat, frame)
    assert (out == flat).all()


def test_unrelated_plate_warns_and_is_resized(data_dir: Path):
    frame = read_image(data_dir / "train" / "backgrounds" / "kodak_kodim08.jpg")[:240, :320]
    other = read_image(data_dir / "train" / "backgrounds" / "skimage_brick.jpg")[:480, :640]
    with pytest.warns(AlignmentWarning):
        out = align_plate(other, frame)
    assert out.shape == frame.shape


def test_other_aspect_failure_says_it_stretches():
    frame = np.random.default_rng(1).integers(0, 255, (60, 80, 3), dtype=np.uint8)
    with pytest.warns(AlignmentWarning, match="stretched"):
        out = align_plate(np.full((50, 50, 3), 9, np.uint8), frame)
    assert out.shape == (60, 80, 3)


@pytest.mark.slow
def test_real_handheld_pair(shared_data_dir: Path):
    """bgm1_rooftop (CC-BY-NC-SA, read from ../shared only): 23-47 px handheld shift between plate and frame.

    The licence forbids copying the pair into the repository, so without ../shared this one skips;
    the synthetic ``handheld`` tests above cover the same code.
    """
    pairs = shared_data_dir / "train" / "pairs"
    frame = read_image(pairs / "bgm1_rooftop_src_0001.png")
    plate = read_image(pairs / "bgm1_rooftop_plate.png")
    aligned = align_plate(plate, frame)
    # compare on the top band (sky line / city), away from the subject in the middle
    band = (slice(0, 200), slice(0, None))
    before = np.abs(plate[band].astype(float) - frame[band]).mean()
    after = np.abs(aligned[band].astype(float) - frame[band]).mean()
    assert after < before * 0.6, (before, after)


def test_a_wrong_fit_loses_to_the_plain_plate(handheld, monkeypatch):
    # Matches on a big subject or a repetitive wall can agree on a wrong warp; the background
    # residual must catch it and keep the plate as it is.
    import cleanplate.plate.align as align

    frame, plate, *_ = handheld
    aligned_plate = align_plate(plate, frame)  # the right warp, as a stand-in for a well-aligned plate
    wrong = np.array([[1.0, 0.0, 6.0], [0.0, 1.0, -4.0], [0.0, 0.0, 1.0]])
    monkeypatch.setattr(align, "estimate_homography", lambda p, f: align.Alignment(wrong, 99, 100, 7.2, None))
    assert np.array_equal(align_plate(aligned_plate, frame), aligned_plate)


def test_trimmed_residual_ignores_a_subject_smaller_than_half_the_view():
    rng = np.random.default_rng(0)
    bg = rng.integers(0, 255, (100, 100)).astype(np.uint8)
    frame = bg.copy()
    frame[20:60, 20:80] = 255 - frame[20:60, 20:80]  # a 'subject' on 24% of the view
    assert trimmed_residual(bg, frame) == 0
    assert trimmed_residual(np.roll(bg, 2, axis=1), frame) > 20


def test_a_strip_the_moved_plate_does_not_reach_is_reported(handheld):
    """The plate was shot turned, zoomed and shifted: warped onto the frame it leaves wedges along
    the edges uncovered; the warning says how much, within a tenth of the true share."""
    frame, plate, _, _, truth = handheld
    with pytest.warns(PlateCoverageWarning, match="% of the frame uncovered") as caught:
        align_plate(plate, frame)
    true_share = 1 - coverage(plate.shape[:2], np.linalg.inv(truth), frame.shape[:2]).mean()
    said = float(str(caught[0].message).split("leaves ")[1].split(" %")[0]) / 100
    assert abs(said - true_share) < 0.1 * true_share + 0.002


def test_coverage_note_names_the_edges_and_stays_quiet_when_covered():
    inside = np.ones((100, 200), bool)
    assert _coverage_note(inside) is None
    inside[:, :3] = False  # 1.5 % along the left edge
    assert "1.5 %" in _coverage_note(inside) and "along the left edge" in _coverage_note(inside)
    inside[-4:] = False
    assert "along the bottom and left edges" in _coverage_note(inside)
    corner = np.ones((100, 200), bool)
    corner[:12, :12] = False
    assert "at a corner" in _coverage_note(corner)
    shifted = coverage((100, 200), np.array([[1.0, 0, 0.5], [0, 1, 0], [0, 0, 1]]), (100, 200))
    assert _coverage_note(shifted) is None  # half a pixel: nothing to say
