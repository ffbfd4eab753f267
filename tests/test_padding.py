"""Padding to the network's size multiple and cropping back (property-based)."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cleanplate.padding import crop_to, pad_to_multiple, padded_size


@settings(max_examples=80, deadline=None)
@given(
    st.integers(1, 3),
    st.integers(1, 4),
    st.integers(1, 40),
    st.integers(1, 40),
    st.sampled_from([1, 2, 4, 8, 16]),
    st.integers(0, 2**16),
)
def test_pad_then_crop_round_trips(b, c, h, w, multiple, seed):
    x = torch.rand(b, c, h, w, generator=torch.Generator().manual_seed(seed))
    padded, size = pad_to_multiple(x, multiple)
    assert size == (h, w)
    assert padded.shape[-2] % multiple == 0 and padded.shape[-1] % multiple == 0
    assert padded.shape[-2] - h < multiple and padded.shape[-1] - w < multiple
    assert torch.equal(crop_to(padded, size), x)
    # replicate padding: the added rows/columns copy the last row/column
    assert torch.equal(padded[..., h:, :w], x[..., -1:, :].expand_as(padded[..., h:, :w]))
    assert torch.equal(padded[..., :h, w:], x[..., :, -1:].expand_as(padded[..., :h, w:]))


def test_aligned_input_is_not_copied():
    x = torch.rand(1, 3, 8, 12)
    padded, _ = pad_to_multiple(x, 4)
    assert padded is x


@given(st.integers(1, 10_000), st.sampled_from([1, 4, 8]))
def test_padded_size(n, m):
    p = padded_size(n, m)
    assert p % m == 0 and n <= p < n + m
