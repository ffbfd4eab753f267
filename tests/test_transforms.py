"""cleanplate.transforms: torchvision's to_tensor / to_pil_image semantics without torchvision."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cleanplate.errors import InputError
from cleanplate.transforms import resize, to_pil_image, to_tensor


def _rgb(h: int = 5, w: int = 7) -> np.ndarray:
    return (np.random.default_rng(0).random((h, w, 3)) * 255).astype(np.uint8)


def test_to_tensor_scales_uint8_to_float_chw() -> None:
    arr = _rgb()
    for pic in (Image.fromarray(arr), arr):
        t = to_tensor(pic)
        assert t.shape == (3, 5, 7) and t.dtype == torch.float32
        np.testing.assert_allclose(t.permute(1, 2, 0).numpy(), arr / 255, atol=1e-7)
    gray = to_tensor(Image.fromarray(arr[:, :, 0]))
    assert gray.shape == (1, 5, 7)
    floats = np.random.default_rng(1).random((4, 4, 3)).astype(np.float32)
    assert torch.equal(to_tensor(floats), torch.from_numpy(floats).permute(2, 0, 1))  # not rescaled


def test_to_pil_image_truncates_like_torchvision() -> None:
    t = torch.tensor([[[0.0, 0.5, 0.999, 1.0]]])
    assert np.array(to_pil_image(t)).tolist() == [[0, 127, 254, 255]]  # x*255, truncated
    assert to_pil_image(t).mode == "L"
    assert to_pil_image(torch.rand(3, 2, 2)).mode == "RGB" and to_pil_image(torch.rand(4, 2, 2)).mode == "RGBA"
    arr = _rgb()
    assert np.array_equal(np.array(to_pil_image(torch.from_numpy(arr).permute(2, 0, 1))), arr)  # uint8 as is
    assert np.array_equal(np.array(to_pil_image(arr)), arr)


def test_round_trip_and_resize() -> None:
    img = Image.fromarray(_rgb(8, 12))
    assert to_pil_image(to_tensor(img)).size == img.size
    assert resize(img, 4).size == (6, 4)  # short side 4, aspect kept
    assert resize(to_tensor(img), (4, 6)).shape == (3, 4, 6)
    assert resize(torch.zeros(2, 3, 8, 12, dtype=torch.uint8), 4).dtype == torch.uint8


def test_bad_inputs_are_one_line_errors() -> None:
    with pytest.raises(InputError, match="PIL image or a numpy array"):
        to_tensor([1, 2, 3])
    with pytest.raises(InputError, match="channels"):
        to_pil_image(torch.rand(5, 2, 2))
