"""cleanplate.load / Matter / Matte: inputs of any kind and size, batching, options and errors."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import cleanplate
from cleanplate.api import Matte, Matter, auto_backbone_scale, load
from cleanplate.errors import CheckpointError, InputError, PlateMismatchError
from cleanplate.models import MattingBase, MattingRefine
from cleanplate.models.registry import DEFAULT_WEIGHTS, list_models
from cleanplate.padding import pad_to_multiple
from cleanplate.samples import sample_pair


@pytest.fixture(scope="module")
def ckpt(seed7_ckpt: Path) -> Path:
    return seed7_ckpt


@pytest.fixture(scope="module")
def matter(ckpt: Path) -> Matter:
    return load(ckpt, device="cpu")


def _scene(h: int, w: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A smooth plate and the same plate with a bright disc (the 'subject')."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    plate = np.stack([x * 255 / max(w, 1), y * 255 / max(h, 1), np.full((h, w), 90.0)], axis=2)
    plate = np.clip(plate + rng.normal(0, 2, plate.shape), 0, 255).astype(np.uint8)
    src = plate.copy()
    disc = (y - h / 2) ** 2 + (x - w / 2) ** 2 < (min(h, w) / 4) ** 2
    src[disc] = (230, 40, 200)
    return src, plate


def test_public_names():
    assert cleanplate.load is load and cleanplate.Matter is Matter and cleanplate.Matte is Matte
    assert cleanplate.MattingRefine is MattingRefine and cleanplate.MattingBase is MattingBase
    assert isinstance(cleanplate.__version__, str)
    assert set(list_models()) == {"default", "fast", "bgmv2", "classical"}


@pytest.mark.parametrize(
    ("size", "scale"),
    [
        ((100, 200), 0.5),
        ((511, 100), 0.5),
        ((576, 768), 0.5),
        ((600, 1024), 0.5),
        ((864, 1280), 0.25),
        ((1080, 1920), 0.25),
        ((1440, 2560), 0.25),
        ((2160, 3840), 0.125),
    ],
)
def test_auto_backbone_scale(size, scale):
    assert auto_backbone_scale(*size) == scale


@pytest.mark.parametrize("size", [(1, 1), (3, 7), (37, 53), (64, 96)])
def test_any_size_is_padded_and_cropped_back(matter, size):
    src, plate = _scene(*size)
    m = matter.matte(src, plate)
    assert m.alpha.shape == size and m.alpha.dtype == np.float32
    assert m.foreground.shape == (*size, 3) and m.foreground.dtype == np.float32
    assert m.error.shape == size and m.refined.shape == size and m.refined.dtype == bool
    for arr in (m.alpha, m.foreground, m.error):
        assert arr.min() >= 0.0 and arr.max() <= 1.0
    assert m.rgba().shape == (*size, 4) and m.rgba().dtype == np.uint8
    assert m.composite("green").shape == (*size, 3)


def test_matte_tensor_equals_the_network_on_aligned_sizes(ckpt):
    """With sizes divisible by 4 and the scale fixed, the wrapper adds nothing to the network's output."""
    matter = load(ckpt, device="cpu", backbone_scale=0.25, fast=False)
    src, plate = (torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255 for a in _scene(64, 96))
    alpha, fgr, err, ref = matter.matte_tensor(src, plate)
    with torch.inference_mode():
        pha, fgr_net, *_, err_sm, ref_sm = matter.model(src, plate)
    assert torch.equal(alpha, pha) and torch.equal(fgr, fgr_net)
    assert err.shape == (1, 1, 64, 96) and ref.shape == (1, 1, 64, 96)
    assert torch.equal(ref[..., ::4, ::4], ref_sm)
    assert set(ref.unique().tolist()) <= {0.0, 1.0}


def test_odd_sizes_match_the_network_on_the_padded_input(ckpt):
    matter = load(ckpt, device="cpu", backbone_scale=0.5, fast=False)
    src, plate = (torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255 for a in _scene(45, 71))
    alpha, fgr, _, _ = matter.matte_tensor(src, plate)
    (src_p, _), (plate_p, _) = pad_to_multiple(src), pad_to_multiple(plate)
    with torch.inference_mode():
        pha, fgr_net = matter.model(src_p, plate_p)[:2]
    assert torch.equal(alpha, pha[..., :45, :71]) and torch.equal(fgr, fgr_net[..., :45, :71])


def test_auto_scale_is_applied_and_user_scale_kept(ckpt):
    auto = load(ckpt, device="cpu")
    src, plate = _scene(36, 48)
    auto.matte(src, plate)
    assert auto.model.backbone_scale == 0.5
    fixed = load(ckpt, device="cpu", backbone_scale=0.25)
    fixed.matte(src, plate)
    assert fixed.model.backbone_scale == 0.25 and fixed.backbone_scale == 0.25


def test_uint8_tensors_accepted_and_bad_tensors_rejected(matter):
    src, plate = (torch.from_numpy(a).permute(2, 0, 1)[None] for a in _scene(32, 32))
    a8 = matter.matte_tensor(src, plate)[0]
    af = matter.matte_tensor(src.float() / 255, plate.float() / 255)[0]
    assert torch.allclose(a8, af)
    with pytest.raises(InputError, match=r"\(B, 3, H, W\)"):
        matter.matte_tensor(src[0], plate[0])
    with pytest.raises(InputError, match="same shape"):
        matter.matte_tensor(src.float(), plate[..., :16].float())
    with pytest.raises(InputError, match="tensors"):
        matter.matte_tensor(np.zeros((1, 3, 4, 4)), np.zeros((1, 3, 4, 4)))


def test_input_kinds_agree(matter, tmp_path):
    src, plate = _scene(40, 60, seed=3)
    ref = matter.matte(src, plate)
    Image.fromarray(src).save(tmp_path / "src.png")
    Image.fromarray(plate).save(tmp_path / "plate.png")
    rgba = np.concatenate([src, np.full((40, 60, 1), 7, np.uint8)], axis=2)
    variants = [
        (tmp_path / "src.png", str(tmp_path / "plate.png")),
        (Image.fromarray(src), Image.fromarray(plate)),
        (rgba, plate),
        (src.astype(np.float32) / 255, plate),
    ]
    for s, p in variants:
        np.testing.assert_allclose(matter.matte(s, p).alpha, ref.alpha, atol=1e-6)
    gray = matter.matte(src[:, :, 0], plate[:, :, 0])
    assert gray.alpha.shape == (40, 60)


def test_exif_orientation_is_respected(matter, tmp_path):
    src, plate = _scene(40, 60)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    Image.fromarray(src).save(tmp_path / "src.jpg", exif=exif)
    m = matter.matte(tmp_path / "src.jpg", np.rot90(plate, k=-1))
    assert m.alpha.shape == (60, 40)


def test_bad_inputs(matter, tmp_path):
    src, plate = _scene(40, 60)
    with pytest.raises(InputError, match="no such file"):
        matter.matte(tmp_path / "missing.png", plate)
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(InputError, match="not an image"):
        matter.matte(src, tmp_path / "notes.png")
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        matter.matte(src.astype(np.float32), plate)
    with pytest.raises(InputError, match="shape"):
        matter.matte(np.zeros((4, 4, 2), np.uint8), plate)
    with pytest.raises(InputError, match="path, a PIL image or a numpy array"):
        matter.matte([1, 2, 3], plate)


def test_plate_of_same_aspect_is_resized_other_aspect_rejected(matter):
    src, plate = _scene(48, 64)
    big = np.asarray(Image.fromarray(plate).resize((128, 96), Image.BICUBIC))
    same = matter.matte(src, plate)
    resized = matter.matte(src, big)
    assert np.abs(resized.alpha - same.alpha).mean() < 0.05
    with pytest.raises(PlateMismatchError, match="plate is 64x64 but the frame is 64x48"):
        matter.matte(src, np.zeros((64, 64, 3), np.uint8))


def test_align_true_on_a_featureless_pair_warns_and_still_mattes(matter):
    src, plate = _scene(48, 64)
    flat = np.full((48, 64, 3), 128, np.uint8)
    with pytest.warns(UserWarning, match="alignment failed"):
        m = matter.matte(src, flat, align=True)
    assert m.alpha.shape == (48, 64)


def test_matte_batch_matches_single_calls(matter):
    pairs = [_scene(32, 48, seed=i) for i in range(3)] + [_scene(40, 40, seed=9)]
    srcs = [s for s, _ in pairs]
    plates = [p for _, p in pairs]
    batch = matter.matte_batch(srcs, plates, batch_size=2)
    assert len(batch) == 4
    for (s, p), got in zip(pairs, batch, strict=True):
        np.testing.assert_allclose(got.alpha, matter.matte(s, p).alpha, atol=1e-5)
    shared = matter.matte_batch(srcs[:3], plates[0])
    np.testing.assert_allclose(shared[0].alpha, batch[0].alpha, atol=1e-5)
    with pytest.raises(InputError, match="3 frames but 2 plates"):
        matter.matte_batch(srcs[:3], plates[:2])
    with pytest.raises(InputError, match="batch_size"):
        matter.matte_batch(srcs, plates, batch_size=0)


def test_base_checkpoint_is_usable(tmp_path, make_weights):
    from cleanplate.models.checkpoint import save_checkpoint

    base = MattingBase("mobilenetv2")
    base.load_state_dict(make_weights("base_mobilenetv2", 3))
    matter = load(save_checkpoint(base, tmp_path / "base.pt"), device="cpu")
    m = matter.matte(*_scene(30, 50))
    assert m.alpha.shape == (30, 50) and not m.refined.any()


def test_module_instances_are_accepted(make_weights):
    net = MattingRefine("mobilenetv2")
    net.load_state_dict(make_weights("refine_mobilenetv2", 7))
    matter = load(net, device="cpu", backbone_scale=0.25)
    assert matter.model is net and not net.training
    with pytest.raises(InputError, match="existing module"):
        load(net, refine_mode="full")


# ------------------------------------------------------------------------------ load options


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"refine_mode": "best"}, "unknown refine_mode 'best'"),
        ({"refine_threshold": -0.1}, "refine_threshold must be in"),
        ({"refine_sample_pixels": 8}, "refine_sample_pixels must be an integer"),
        ({"refine_sample_pixels": 1.5e4}, "refine_sample_pixels must be an integer"),
        ({"backbone_scale": 0.75}, "backbone_scale must be in"),
        ({"backbone_scale": "1/4"}, "backbone_scale must be a number"),
        ({"backbone": "vgg"}, "unknown backbone 'vgg'"),
        ({"refine_kernel_size": 5}, "unknown refine_kernel_size 5"),
        ({"refine_speed": 2}, "unknown option 'refine_speed'"),
        ({"device": "tpu"}, "unknown device 'tpu'"),
        ({"backend": "tensorrt"}, "unknown backend 'tensorrt'"),
        ({"precision": "int8"}, "unknown precision 'int8'"),
    ],
)
def test_bad_options_are_one_line_input_errors(ckpt, options, message):
    with pytest.raises(InputError, match=message) as exc:
        load(ckpt, **options)
    assert "\n" not in str(exc.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only errors")
def test_cuda_and_fp16_need_a_gpu(ckpt):
    with pytest.raises(InputError, match="CUDA is not available"):
        load(ckpt, device="cuda")
    with pytest.raises(InputError, match="fp16 needs a CUDA device"):
        load(ckpt, device="cpu", precision="fp16")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fp16_on_cuda_matches_fp32(ckpt):
    src, plate = _scene(64, 96)
    a32 = load(ckpt, device="cuda").matte(src, plate).alpha
    a16 = load(ckpt, device="cuda", precision="fp16").matte(src, plate).alpha
    assert a16.dtype == np.float32 and np.abs(a16 - a32).max() < 0.05


@pytest.mark.slow
def test_onnxruntime_backend_matches_torch(ckpt):
    pytest.importorskip("onnxruntime")
    src, plate = _scene(64, 96)
    want = load(ckpt, device="cpu").matte(src, plate).alpha
    got = load(ckpt, device="cpu", backend="onnxruntime").matte(src, plate).alpha
    assert got.shape == want.shape
    assert np.abs(got - want).max() < 1e-4, np.abs(got - want).max()


def test_default_model(tmp_path):
    if DEFAULT_WEIGHTS.is_file():
        matter = load(device="cpu")
        assert matter.info["name"] == "default"
        assert matter.matte(*_scene(32, 32)).alpha.shape == (32, 32)
    else:
        with pytest.raises(CheckpointError, match="default model is not installed") as exc:
            load()
        assert "\n" not in str(exc.value)


def test_classical_builtin():
    if importlib.util.find_spec("cleanplate.models.classical") is None:
        pytest.skip("cleanplate.models.classical is not in this checkout")
    matter = load("classical", device="cpu")
    src, plate = _scene(48, 64)
    m = matter.matte(src, plate)
    assert m.alpha.shape == (48, 64)
    assert m.alpha[24, 32] > 0.5 > m.alpha[2, 2]  # the disc is foreground, the corner is not
    with pytest.raises(InputError, match="do not apply"):
        load("classical", refine_mode="full")


def test_samples_are_shipped():
    for name in ("carpark", "vtest"):
        src, plate = sample_pair(name)
        assert src.is_file() and plate.is_file()
        assert Image.open(src).size == Image.open(plate).size
    with pytest.raises(InputError, match="unknown sample"):
        sample_pair("beach")


# ------------------------------------------------------------------------------------- Matte


def _toy_matte() -> Matte:
    alpha = np.array([[0.0, 0.5], [1.0, 0.25]], np.float32)
    fgr = np.zeros((2, 2, 3), np.float32)
    fgr[..., 0] = 1.0  # pure red foreground
    return Matte(alpha=alpha, foreground=fgr, error=np.zeros((2, 2), np.float32), refined=np.eye(2, dtype=bool))


def test_rgba_is_straight_alpha():
    rgba = _toy_matte().rgba()
    assert rgba.dtype == np.uint8 and rgba.shape == (2, 2, 4)
    assert (rgba[..., 0] == 255).all()  # colour not multiplied by alpha
    assert rgba[..., 3].tolist() == [[0, 128], [255, 64]]


def test_composite_over_colour_image_and_array(tmp_path):
    m = _toy_matte()
    over_blue = m.composite("blue")
    assert over_blue[0, 0].tolist() == [0, 0, 255]
    assert over_blue[1, 0].tolist() == [255, 0, 0]
    assert over_blue[0, 1].tolist() == [128, 0, 128]
    assert (m.composite((0, 0, 255)) == over_blue).all() and (m.composite("#0000ff") == over_blue).all()
    white = np.full((2, 2, 3), 255, np.uint8)
    assert m.composite(white)[0, 0].tolist() == [255, 255, 255]
    Image.fromarray(np.full((10, 30, 3), 255, np.uint8)).save(tmp_path / "bg.png")
    assert (m.composite(tmp_path / "bg.png") == m.composite(white)).all()
    with pytest.raises(InputError):
        m.composite("no-such-colour-or-file")


def test_save_kinds(tmp_path):
    m = _toy_matte()
    for kind in ("rgba", "alpha", "fgr", "comp", "err", "ref"):
        path = m.save(tmp_path / f"{kind}.png", kind)
        back = np.asarray(Image.open(path))
        assert (back == m.to_array(kind)).all(), kind
    assert np.asarray(Image.open(tmp_path / "ref.png")).tolist() == [[255, 0], [0, 255]]
    with pytest.raises(InputError, match="unknown output"):
        m.to_array("depth")


def _moved_plate(dx: float) -> tuple[np.ndarray, np.ndarray]:
    """The vtest frame and its plate moved ``dx`` px to the right (a bumped camera)."""
    import cv2

    src_path, plate_path = sample_pair("vtest")
    src = np.asarray(Image.open(src_path).convert("RGB"))
    plate = np.asarray(Image.open(plate_path).convert("RGB"))
    move = np.float32([[1, 0, -dx], [0, 1, 0]])
    return src, cv2.warpAffine(plate, move, plate.shape[1::-1], borderMode=cv2.BORDER_REFLECT)


def _shift_warnings(matter: Matter, src: np.ndarray, plate: np.ndarray) -> list[str]:
    import warnings

    from cleanplate.plate.fit import PlateWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        matter.matte(src, plate)
    return [str(w.message) for w in caught if issubclass(w.category, PlateWarning)]


@pytest.mark.parametrize(
    ("model", "dx", "warned"),
    [
        ("default", 7, False),  # 0.9 % of 768 px: the default registers it inside the network
        ("default", 40, True),  # 5 %: beyond that
        ("bgmv2", 7, True),  # compares pixel by pixel: any clear shift leaks the background
        ("classical", 40, False),  # the keyer registers it with features (align on by default)
    ],
)
def test_a_shifted_plate_is_reported_only_beyond_what_the_model_registers(model: str, dx: int, warned: bool):
    matter = load(model, device="cpu")
    notes = _shift_warnings(matter, *_moved_plate(dx))
    assert bool(notes) == warned, notes
    if warned:  # the shift as measured with the people in the frame: within a pixel or two
        import re

        found = re.search(r"about \(([+-]\d+), ([+-]\d+)\) px", notes[0])
        assert found and abs(int(found[1]) - dx) <= 2 and abs(int(found[2])) <= 2 and "--align" in notes[0], notes
    assert (matter.plate_shift_tolerance(576, 768) > 0) == (model != "bgmv2")


def test_the_default_is_the_sub_pixel_network_and_agrees_with_fast_on_a_sample():
    """``default`` is GuidedMatting with sub-pixel features, ``fast`` the plain one, each with its own
    weights; on the carpark pair both matte the same person (masks overlap, IoU > 0.7: they differ in
    the blobs each leaves where the real plate drifted), not a broken file."""
    from cleanplate.models.guided import GuidedMatting

    default, fast = load("default", device="cpu"), load("fast", device="cpu")
    assert isinstance(default.model, GuidedMatting) and default.model.subpixel
    assert isinstance(fast.model, GuidedMatting) and not fast.model.subpixel
    src, plate = sample_pair("carpark")
    a, b = default.matte(src, plate).alpha > 0.5, fast.matte(src, plate).alpha > 0.5
    assert a.mean() > 0.02 and (a & b).sum() / (a | b).sum() > 0.7
