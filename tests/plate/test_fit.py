"""Plate checks: same size as is, same aspect resized, other aspect a clear error."""

from __future__ import annotations

import numpy as np
import pytest

from cleanplate.errors import InputError, PlateMismatchError
from cleanplate.plate.fit import aspect_matches, match_plate, plate_offset, shift_note


def _gradient(h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), np.zeros_like(x)], 2).astype(np.uint8)


def test_same_size_is_returned_unchanged():
    plate = _gradient(48, 64)
    assert match_plate(plate, (48, 64)) is plate


@pytest.mark.parametrize(
    ("plate_size", "frame_size"),
    [((96, 128), (48, 64)), ((1080, 1920), (720, 1280)), ((24, 32), (48, 64)), ((721, 1280), (360, 640))],
)
def test_same_aspect_is_resized(plate_size, frame_size):
    out = match_plate(_gradient(*plate_size), frame_size)
    assert out.shape == (*frame_size, 3) and out.dtype == np.uint8
    # a gradient stays a gradient: the left column is dark red, the right column bright
    assert out[:, 0, 0].mean() < 40 and out[:, -1, 0].mean() > 215


def test_shrinking_averages_instead_of_aliasing():
    stripes = np.zeros((40, 40, 3), np.uint8)
    stripes[:, ::2] = 255  # 1-px stripes: nearest/bilinear sampling would alias
    out = match_plate(stripes, (10, 10))
    assert np.abs(out.astype(int) - 128).max() <= 2


@pytest.mark.parametrize(
    ("plate_size", "frame_size"), [((48, 48), (48, 64)), ((1080, 1920), (1080, 1440)), ((100, 100), (100, 102))]
)
def test_other_aspect_is_a_clear_error(plate_size, frame_size):
    with pytest.raises(PlateMismatchError) as exc:
        match_plate(_gradient(*plate_size), frame_size)
    text = str(exc.value)
    assert f"plate is {plate_size[1]}x{plate_size[0]}" in text and f"frame is {frame_size[1]}x{frame_size[0]}" in text
    assert "--align" in text and "\n" not in text
    assert isinstance(exc.value, InputError)  # CLI: one line, exit 2


def test_aspect_tolerance_is_one_percent():
    assert aspect_matches((100, 100), (100, 100.9))
    assert not aspect_matches((100, 100), (100, 101.1))
    assert aspect_matches((1080, 1920), (720, 1280))


# ------------------------------------------------------------------ a shifted plate


def _shifted_pair(dx: float, dy: float) -> tuple[np.ndarray, np.ndarray]:
    """The vtest sample's plate as the frame, and the same plate moved by (dx, dy) px."""
    import cv2
    from PIL import Image

    from cleanplate.samples import sample_pair

    frame = np.asarray(Image.open(sample_pair("vtest")[1]).convert("RGB"))
    h, w = frame.shape[:2]
    move = np.float32([[1, 0, dx], [0, 1, dy]])
    return frame, cv2.warpAffine(frame, move, (w, h), borderMode=cv2.BORDER_REFLECT)


def test_phase_correlation_finds_a_large_shift_coarsely():
    frame, plate = _shifted_pair(-20, 8)  # the plate moved: the frame is the plate 20 px to the right
    dx, dy = plate_offset(frame, plate)
    assert abs(dx - 20) < 1 and abs(dy + 8) < 1
    assert np.hypot(*plate_offset(frame, frame)) < 0.5


def test_shift_note_names_the_shift_and_respects_jitter_and_the_models_own_registration():
    note = shift_note((20.2, -7.8), (576, 768))
    assert note is not None and "(+20, -8) px" in note and "--align" in note and "\n" not in note
    assert shift_note(None, (480, 640)) is None
    assert shift_note((1.5, 0.5), (576, 768)) is None  # below OFFSET_MIN_PX: ordinary jitter
    assert shift_note((12.0, 0.0), (576, 768)) is not None  # 1.6 % of the long side
    assert shift_note((12.0, 0.0), (576, 768), tolerance=0.02) is None
    beyond = shift_note((12.0, 0.0), (576, 768), tolerance=0.01)
    assert beyond is not None and "more than this model registers by itself" in beyond
