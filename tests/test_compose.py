"""Compositing maths (property-based) and colour / cover-resize helpers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from cleanplate.compose import background_array, composite, cover_resize, is_color, parse_color, resize, to_uint8
from cleanplate.errors import InputError

unit = st.floats(0.0, 1.0, width=32, allow_nan=False)
sizes = st.tuples(st.integers(1, 12), st.integers(1, 12))


@st.composite
def layers(draw):
    h, w = draw(sizes)
    fg = draw(arrays(np.float32, (h, w, 3), elements=unit))
    bg = draw(arrays(np.float32, (h, w, 3), elements=unit))
    alpha = draw(arrays(np.float32, (h, w), elements=unit))
    return fg, alpha, bg


@settings(max_examples=60, deadline=None)
@given(layers())
def test_alpha_one_gives_foreground_zero_gives_background(data):
    fg, _, bg = data
    ones = np.ones(fg.shape[:2], np.float32)
    np.testing.assert_allclose(composite(fg, ones, bg), fg, atol=1e-6)
    np.testing.assert_allclose(composite(fg, 0 * ones, bg), bg, atol=1e-6)


@settings(max_examples=60, deadline=None)
@given(layers())
def test_result_lies_between_foreground_and_background(data):
    fg, alpha, bg = data
    out = composite(fg, alpha, bg)
    assert out.shape == fg.shape and out.dtype == np.float32
    assert (out >= np.minimum(fg, bg) - 1e-6).all() and (out <= np.maximum(fg, bg) + 1e-6).all()


@settings(max_examples=40, deadline=None)
@given(layers(), st.tuples(unit, unit, unit))
def test_colour_background_broadcasts_like_a_full_array(data, colour):
    fg, alpha, _ = data
    rgb = np.asarray(colour, np.float32)
    full = np.broadcast_to(rgb, fg.shape)
    np.testing.assert_allclose(composite(fg, alpha, rgb), composite(fg, alpha[:, :, None], full), atol=1e-6)


@settings(max_examples=60, deadline=None)
@given(st.tuples(st.integers(1, 40), st.integers(1, 40)), st.tuples(st.integers(1, 40), st.integers(1, 40)))
def test_cover_resize_always_gives_the_target_size(src_size, target):
    image = np.arange(src_size[0] * src_size[1] * 3, dtype=np.uint8).reshape(*src_size, 3)
    out = cover_resize(image, target)
    assert out.shape == (*target, 3) and out.dtype == np.uint8


def test_cover_resize_scales_to_cover_and_centre_crops():
    # a 10x40 image with a distinct column band at its centre, covered onto 10x10
    image = np.zeros((10, 40, 3), np.uint8)
    image[:, 18:22] = 255
    out = cover_resize(image, (10, 10))
    assert out.shape == (10, 10, 3)
    assert (out[:, 3:7] == 255).all() and (out[:, :2] == 0).all() and (out[:, 8:] == 0).all()
    # growing a small image: scale by the larger ratio, no borders
    grown = cover_resize(np.full((2, 3, 3), 9, np.uint8), (20, 20))
    assert grown.shape == (20, 20, 3) and (grown == 9).all()


def test_resize_keeps_constant_images_constant_both_ways():
    img = np.full((30, 40, 3), 77, np.uint8)
    assert (resize(img, (15, 20)) == 77).all() and (resize(img, (60, 80)) == 77).all()
    assert resize(img, (30, 40)) is img
    assert resize(np.zeros((8, 8, 1), np.float32), (4, 4)).shape == (4, 4, 1)


@pytest.mark.parametrize(
    ("spec", "rgb"),
    [
        ("green", (0, 255, 0)),
        (" White ", (255, 255, 255)),
        ("#00ff00", (0, 255, 0)),
        ("0f0", (0, 255, 0)),
        ("#123456", (0x12, 0x34, 0x56)),
        ("10, 20,30", (10, 20, 30)),
        ((1, 2, 3), (1, 2, 3)),
        ([0, 0, 255], (0, 0, 255)),
        (np.array([5, 6, 7]), (5, 6, 7)),
    ],
)
def test_parse_color(spec, rgb):
    assert parse_color(spec) == rgb


@pytest.mark.parametrize("spec", ["greenish", "#12345", "#gggggg", "300,0,0", (1, 2), (1.5, 2, 3), (0, 0, 256), 7])
def test_parse_color_rejects(spec):
    with pytest.raises(InputError):
        parse_color(spec)
    assert not is_color(spec)


def test_background_array_colour_or_image(tmp_path):
    colour = background_array("red", (4, 5))
    assert colour.shape == (3,) and colour.tolist() == [1.0, 0.0, 0.0]
    img = np.zeros((8, 20, 3), np.uint8)
    img[..., 2] = 255
    out = background_array(img, (4, 5))
    assert out.shape == (4, 5, 3) and out.dtype == np.float32 and (out[..., 2] == 1.0).all()
    with pytest.raises(InputError):
        background_array(tmp_path / "missing.png", (4, 5))


@settings(max_examples=60, deadline=None)
@given(arrays(np.float32, (3, 4), elements=st.floats(-2, 3, width=32)))
def test_to_uint8_rounds_and_clips(values):
    out = to_uint8(values)
    assert out.dtype == np.uint8
    expected = np.rint(np.clip(values, 0, 1) * 255)
    assert (out == expected).all()
