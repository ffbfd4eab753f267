"""Image reading (EXIF, modes, broken files) and atomic writing in every supported format."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cleanplate.errors import InputError, OutputError
from cleanplate.io.image import as_rgb, read_image, write_image


def _rgb(h: int = 20, w: int = 30) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 8 % 256, y * 12 % 256, (x + y) * 5 % 256], axis=2).astype(np.uint8)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "P", "I;16", "1", "CMYK"])
def test_read_any_mode_gives_uint8_rgb(tmp_path, mode):
    img = (
        Image.fromarray(_rgb()).convert(mode)
        if mode != "I;16"
        else Image.fromarray((np.arange(600).reshape(20, 30) * 100).astype(np.uint16))
    )
    ext = ".tif" if mode == "CMYK" else ".png"
    img.save(tmp_path / f"x{ext}")
    arr = read_image(tmp_path / f"x{ext}")
    assert arr.dtype == np.uint8 and arr.shape == (20, 30, 3)


def test_rgba_alpha_is_dropped_not_premultiplied(tmp_path):
    rgba = np.dstack([_rgb(), np.zeros((20, 30), np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "a.png")
    assert (read_image(tmp_path / "a.png") == _rgb()).all()


@pytest.mark.parametrize(("orientation", "shape"), [(1, (20, 30)), (3, (20, 30)), (6, (30, 20)), (8, (30, 20))])
def test_exif_orientation(tmp_path, orientation, shape):
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(_rgb()).save(tmp_path / "o.jpg", exif=exif, quality=95)
    arr = read_image(tmp_path / "o.jpg")
    assert arr.shape == (*shape, 3)
    if orientation == 6:  # displayed rotated 90° clockwise: the original top-left lands top-right
        plain = read_image(_save_plain(tmp_path))
        assert np.abs(arr.astype(int) - np.rot90(plain, k=-1)).mean() < 3


def _save_plain(tmp_path):
    Image.fromarray(_rgb()).save(tmp_path / "plain.jpg", quality=95)
    return tmp_path / "plain.jpg"


def test_missing_folder_and_non_image(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(InputError, match="folder"):
        read_image(tmp_path)
    (tmp_path / "text.jpg").write_text("hello")
    with pytest.raises(InputError, match="not an image"):
        read_image(tmp_path / "text.jpg")


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_truncated_files(tmp_path, ext):
    big = np.random.default_rng(0).integers(0, 255, (200, 300, 3), dtype=np.uint8)
    Image.fromarray(big).save(tmp_path / f"full{ext}")
    data = (tmp_path / f"full{ext}").read_bytes()
    (tmp_path / f"cut{ext}").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated or corrupt") as exc:
        read_image(tmp_path / f"cut{ext}")
    assert str(tmp_path / f"cut{ext}") in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize(
    ("arr", "expected"),
    [
        (np.full((4, 5), 7, np.uint8), 7),
        (np.full((4, 5, 1), 7, np.uint8), 7),
        (np.full((4, 5, 4), 7, np.uint8), 7),
        (np.full((4, 5, 3), 0.5, np.float32), 128),
        (np.full((4, 5), True), 255),
        (np.full((4, 5, 3), 65535, np.uint16), 255),
    ],
)
def test_as_rgb_array_kinds(arr, expected):
    out = as_rgb(arr)
    assert out.shape == (4, 5, 3) and out.dtype == np.uint8 and (out == expected).all()


@pytest.mark.parametrize(
    ("arr", "message"),
    [
        (np.zeros((4, 5, 2), np.uint8), "shape"),
        (np.zeros((0, 5, 3), np.uint8), "empty"),
        (np.full((4, 5, 3), 2.0, np.float32), r"\[0, 1\]"),
        (np.full((4, 5, 3), np.nan, np.float32), "NaN"),
        (np.zeros((4, 5, 3), np.int64), "dtype"),
    ],
)
def test_as_rgb_rejects(arr, message):
    with pytest.raises(InputError, match=message):
        as_rgb(arr, what="source")


@pytest.mark.parametrize("ext", [".png", ".tif", ".tiff", ".webp"])
@pytest.mark.parametrize("channels", [0, 3, 4])
def test_lossless_formats_round_trip(tmp_path, ext, channels):
    rgb = _rgb()
    arr = rgb[..., 0] if channels == 0 else rgb if channels == 3 else np.dstack([rgb, rgb[..., 1]])
    path = write_image(tmp_path / f"x{ext}", arr)
    back = np.asarray(Image.open(path))
    if ext == ".webp" and channels == 0:  # WebP has no gray mode: stored as equal RGB channels
        back = back[..., 0]
    assert back.shape == arr.shape and (back == arr).all()


def test_jpeg_is_close_and_refuses_alpha(tmp_path):
    write_image(tmp_path / "x.jpg", _rgb())
    assert np.abs(read_image(tmp_path / "x.jpg").astype(int) - _rgb()).mean() < 4
    with pytest.raises(InputError, match="cannot store alpha"):
        write_image(tmp_path / "y.jpeg", np.dstack([_rgb(), _rgb()[..., 0]]))
    assert not (tmp_path / "y.jpeg").exists()


def test_write_refuses_overwrite_unknown_extension_and_bad_folder(tmp_path):
    path = write_image(tmp_path / "x.png", _rgb())
    before = path.read_bytes()
    with pytest.raises(OutputError, match="already exists.*--force"):
        write_image(path, np.zeros((5, 5, 3), np.uint8))
    assert path.read_bytes() == before
    write_image(path, np.zeros((5, 5, 3), np.uint8), force=True)
    assert np.asarray(Image.open(path)).shape == (5, 5, 3)
    with pytest.raises(InputError, match="unsupported extension"):
        write_image(tmp_path / "x.gif", _rgb())
    with pytest.raises(OutputError):
        write_image(path / "inside-a-file.png", _rgb())
    with pytest.raises(OutputError, match="does not exist"):
        write_image(tmp_path / "nope" / "x.png", _rgb())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.png"]  # no temp files left behind


def test_write_float_and_bool_arrays(tmp_path):
    write_image(tmp_path / "f.png", np.full((3, 3), 1.0, np.float32))
    write_image(tmp_path / "b.png", np.eye(3, dtype=bool))
    assert (np.asarray(Image.open(tmp_path / "f.png")) == 255).all()
    assert np.asarray(Image.open(tmp_path / "b.png")).tolist()[0] == [255, 0, 0]
