"""Plates from clips: temporal median, bounded frame sampling, frame-range parsing."""

from __future__ import annotations

import numpy as np
import pytest

from cleanplate.errors import InputError
from cleanplate.plate.load import _EvenSample, parse_frame_range, temporal_median


def test_median_removes_a_passer_by() -> None:
    scene = np.full((8, 8, 3), 50, np.uint8)
    frames = []
    for i in range(5):
        f = scene.copy()
        f[:, i] = 255  # something crossing, one column per frame
        frames.append(f)
    assert np.array_equal(temporal_median(frames), scene)


def test_even_sample_is_bounded_and_spread() -> None:
    sample = _EvenSample(5)
    for i in range(100):
        sample.add(np.array(i))
    kept = [int(x) for x in sample.items]
    assert len(kept) <= 5 and kept[0] == 0 and kept[-1] >= 60  # spans the clip, not just its start


@pytest.mark.parametrize(("text", "want"), [("0:30", (0, 30)), ("12:", (12, None)), (" 3 : 9 ", (3, 9))])
def test_frame_range(text, want) -> None:
    assert parse_frame_range(text) == want


@pytest.mark.parametrize("text", ["0", "5:2", "a:b", "-1:3", ""])
def test_bad_frame_range(text) -> None:
    with pytest.raises(InputError):
        parse_frame_range(text)


def test_a_bare_count_is_the_first_frames_with_a_deprecation_warning() -> None:
    with pytest.warns(FutureWarning, match="read as --plate-frames 0:30"):
        assert parse_frame_range("30") == (0, 30)
