"""Data generation: determinism, value ranges, the documented split and licence filtering."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cleanplate.data import perturb
from cleanplate.data.procedural import _canopy, _foliage, _hair_volume, _lattice, _own_colour, procedural_subject
from cleanplate.data.split import is_holdout_background, is_holdout_subject, license_allows_training
from cleanplate.data.subjects import Subject, estimate_foreground
from cleanplate.train.dataset import Mix, load_training_pool, make_sample


def _pool() -> tuple[list[Subject], list[np.ndarray]]:
    rng = np.random.default_rng(1)
    subject = procedural_subject(rng, 96)
    backgrounds = [rng.uniform(0, 1, (80, 120, 3)).astype(np.float32)]
    return [subject], backgrounds


def test_sample_is_a_pure_function_of_its_seed() -> None:
    subjects, backgrounds = _pool()
    a = make_sample(np.random.default_rng([3, 7]), subjects, backgrounds, (64, 96), Mix())
    b = make_sample(np.random.default_rng([3, 7]), subjects, backgrounds, (64, 96), Mix())
    c = make_sample(np.random.default_rng([3, 8]), subjects, backgrounds, (64, 96), Mix())
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert any(not np.array_equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize("seed", range(6))
def test_sample_shapes_ranges_and_compositing(seed: int) -> None:
    subjects, backgrounds = _pool()
    s = make_sample(np.random.default_rng(seed), subjects, backgrounds, (64, 96), Mix(shadow=0, background_change=0))
    assert s["src"].shape == s["bgr"].shape == s["fgr"].shape == (64, 96, 3)
    assert s["pha"].shape == (64, 96)
    for arr in s.values():
        assert arr.dtype == np.float32 and arr.min() >= 0 and arr.max() <= 1
    # Where the subject is opaque the frame shows the foreground (up to sensor noise).
    opaque = s["pha"] > 0.999
    if opaque.any():
        assert np.abs(s["src"][opaque] - s["fgr"][opaque]).mean() < 0.03


def test_photo_textured_subjects_take_their_colours_from_the_photos() -> None:
    # A photo of two flat halves: every texel of a photo-textured subject is one of them (x gain).
    photo = np.zeros((60, 80, 3), np.float32)
    photo[:, :40] = (0.2, 0.4, 0.6)
    photo[:, 40:] = (0.6, 0.4, 0.2)
    for seed in range(4):
        fgr = procedural_subject(np.random.default_rng(seed), 64, photos=[photo], photo_p=1.0).fgr
        ratio = fgr[..., 0] / fgr[..., 2]  # a channel gain cannot turn one half into the other
        assert np.all((ratio < 0.6 * 1.2 / 0.8 + 1e-3) | (ratio > 3 * 0.8 / 1.2 - 1e-3))
    plain = procedural_subject(np.random.default_rng(0), 64, photos=[photo], photo_p=0.0).fgr
    assert np.unique(plain.reshape(-1, 3), axis=0).shape[0] > 100  # the smooth random field


def test_large_placement_covers_more_of_the_frame() -> None:
    subjects, backgrounds = _pool()

    def coverage(large: float) -> float:
        mix = Mix(real=1, procedural=0, empty=0, large=large, shadow=0, background_change=0)
        return np.mean(
            [
                make_sample(np.random.default_rng(i), subjects, backgrounds, (64, 64), mix)["pha"].mean()
                for i in range(12)
            ]
        )

    assert coverage(1.0) > 1.3 * coverage(0.0)


def test_empty_frames_have_zero_alpha() -> None:
    subjects, backgrounds = _pool()
    s = make_sample(np.random.default_rng(0), subjects, backgrounds, (32, 32), Mix(real=0, procedural=0, empty=1))
    assert s["pha"].max() == 0


def test_plate_drift_levels_grow() -> None:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:64, 0:64]
    plate = np.stack([np.sin(xx / 3), np.cos(yy / 4), np.sin((xx + yy) / 5)], -1).astype(np.float32) * 0.4 + 0.5
    diffs = [
        np.abs(perturb.perturb_plate(plate, np.random.default_rng(5), lvl) - plate).mean() for lvl in perturb.LEVELS
    ]
    assert diffs[0] < 0.02 < diffs[2]
    assert diffs[0] < diffs[1] < diffs[2]
    assert perturb.perturb_plate(plate, rng, "high").dtype == np.float32


def test_blur_fusion_recovers_a_flat_foreground() -> None:
    fg, bg = np.array([0.9, 0.2, 0.1], np.float32), np.array([0.1, 0.3, 0.8], np.float32)
    alpha = np.zeros((40, 40), np.float32)
    alpha[:, 20:] = 1
    alpha[:, 18:22] = np.linspace(0.2, 0.8, 4)
    image = alpha[..., None] * fg + (1 - alpha[..., None]) * bg
    est = estimate_foreground(image, alpha)
    assert np.abs(est[:, 18:] - fg).max() < 0.03  # the image itself is off by up to 0.64 there
    assert np.abs(image[:, 18] - fg).max() > 0.5


def test_split_and_licences() -> None:
    assert is_holdout_subject("am_GT01") and is_holdout_subject("vm_valid_00011")
    assert not is_holdout_subject("vm_train_00001")
    assert is_holdout_background("skimage_brick")
    assert license_allows_training("MIT") and license_allows_training("CC0-1.0")
    assert not license_allows_training("CC-BY-NC-SA-4.0")
    assert not license_allows_training("unstated (research benchmark)")


def _pool_dirs(data_dir: Path, tmp_path: Path) -> Path:
    """The test assets plus two subjects training must never see: a held-out one, and one whose
    licence is unstated (procedural stand-ins named like the real ones)."""
    import json
    import shutil

    root = tmp_path / "data"
    shutil.copytree(data_dir, root)
    gt = root / "train" / "gt"
    rng = np.random.default_rng(0)
    for sid in ("am_GT99", "vm_valid_00011"):
        Image.fromarray((rng.random((24, 16, 3)) * 255).astype(np.uint8)).save(gt / f"{sid}_fgr.png")
        Image.fromarray(np.full((24, 16), 255, np.uint8)).save(gt / f"{sid}_pha.png")
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["gt_subjects"].append({"id": "am_GT99", "license": "unstated (research benchmark)"})
    manifest["gt_subjects"].append({"id": "vm_valid_00011", "license": "MIT"})
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


@pytest.mark.parametrize("which", ["assets", "shared"])
def test_training_pool_never_contains_holdout_or_noncommercial(which: str, data_dir: Path, tmp_path: Path) -> None:
    if which == "shared":
        from tests.shared_paths import DATA

        if not DATA.exists():
            pytest.skip(f"{DATA} is absent (the full data set is checked when it is beside the checkout)")
        root = DATA
    else:
        root = _pool_dirs(data_dir, tmp_path)
    folder = root / "train" / "backgrounds"
    subjects, backgrounds, sources = load_training_pool(root / "train" / "gt", [folder], long_side=64)
    ids = {s.id for s in subjects}
    assert ids and not any(is_holdout_subject(i) for i in ids)
    assert not any(i.startswith("am_") for i in ids)
    assert not any("skimage_brick" in s for s in sources)
    every = [p for p in folder.iterdir() if p.suffix in (".jpg", ".png")]
    assert len(backgrounds) == len(every) - sum(is_holdout_background(p.stem) for p in every) > 0
    if which == "shared":
        assert len(backgrounds) == 34 - 6


def test_snap_alpha_removes_jpeg_veil() -> None:
    from cleanplate.data.subjects import snap_alpha

    pha = np.array([0.0, 1 / 255, 0.5, 254 / 255, 1.0], np.float32)
    np.testing.assert_array_equal(snap_alpha(pha), [0, 0, 0.5, 1, 1])


def _outline_ratio(alpha: np.ndarray) -> float:
    """Outline length over the square root of the area: large for ragged, holey shapes."""
    binary = alpha > 0.2
    edges = binary ^ np.roll(binary, 1, 0) | binary ^ np.roll(binary, 1, 1)
    return edges.sum() / np.sqrt(max(binary.sum(), 1))


def test_structured_subjects_are_more_ragged_and_stay_in_range() -> None:
    photo = np.random.default_rng(0).uniform(0, 1, (120, 160, 3)).astype(np.float32)
    plain, structured = [], []
    for seed in range(12):
        a = procedural_subject(np.random.default_rng(seed), 128, photos=[photo], photo_p=0.5, structure_p=0.0)
        b = procedural_subject(np.random.default_rng(seed), 128, photos=[photo], photo_p=0.5, structure_p=1.0)
        assert b.pha.dtype == np.float32 and b.pha.min() >= 0 and b.pha.max() <= 1
        assert b.fgr.shape[:2] == b.pha.shape
        plain.append(_outline_ratio(a.pha))
        structured.append(_outline_ratio(b.pha))
    assert np.mean(structured) > 1.2 * np.mean(plain)
    assert sum(b >= a for a, b in zip(plain, structured, strict=True)) >= 9


def test_lattice_and_foliage() -> None:
    rng = np.random.default_rng(0)
    cut = _lattice(rng, 200, 200)
    assert cut.min() == 0 and cut.max() == 1 and 0.2 < cut.mean() < 0.95  # bars and holes
    mask = np.zeros((200, 200), np.float32)
    mask[60:140, 60:140] = 1
    leaves = _foliage(rng, 200, 200, mask)
    outside = leaves[mask == 0]
    assert leaves.max() <= 1 and (outside > 0.5).sum() > 50  # leaves reach out of the body


def test_structure_off_draws_no_random_numbers() -> None:
    # Configs without the option must keep their exact samples (the shipped model's recipe).
    photo = np.random.default_rng(0).uniform(0, 1, (60, 80, 3)).astype(np.float32)
    r1, r2 = np.random.default_rng(5), np.random.default_rng(5)
    procedural_subject(r1, 64, photos=[photo], photo_p=0.5)
    procedural_subject(r2, 64, photos=[photo], photo_p=0.5, structure_p=0.0)
    assert r1.random() == r2.random()


def _camouflage_scene(lo: float, hi: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A solid light-grey square subject (alpha, foreground) and a random background in [lo, hi)."""
    h, w = 64, 80
    pha = np.zeros((h, w), np.float32)
    pha[8:56, 16:64] = 1.0
    fgr = np.full((h, w, 3), 0.9, np.float32)
    return pha, fgr, np.random.default_rng(2).uniform(lo, hi, (h, w, 3)).astype(np.float32)


def test_camouflage_paints_the_background_inside_the_subject_and_keeps_alpha() -> None:
    pha, fgr, bg = _camouflage_scene(0, 0.5)
    out = perturb.camouflage(fgr, pha, bg, np.random.default_rng(0))
    changed = np.abs(out - fgr).max(-1) > 0.05
    assert changed.any() and not changed[pha == 0].any()  # only inside the subject
    near = 0.8 * bg + 0.2 * fgr  # the blob's centre: mostly the background's colours, slightly tinted
    core = np.abs(out - near).max(-1) < 0.05
    assert (core & (pha == 1)).sum() > 20
    assert out.dtype == np.float32 and out.min() >= 0 and out.max() <= 1
    assert perturb.camouflage(fgr, np.zeros_like(pha), bg, np.random.default_rng(0)) is fgr  # no interior


def test_camouflage_is_used_only_when_asked(monkeypatch) -> None:
    """At 0 (every config before it) it is never reached, and the guard draws no random number, so
    those configs keep their exact samples; at 1 every subject gets it."""
    subjects, backgrounds = _pool()
    calls = []
    real = perturb.camouflage
    monkeypatch.setattr(perturb, "camouflage", lambda *a, **k: calls.append(1) or real(*a, **k))
    for seed in range(4):
        make_sample(np.random.default_rng(seed), subjects, backgrounds, (64, 96), Mix(empty=0.0, real=0.7))
    assert not calls
    s = make_sample(np.random.default_rng(4), subjects, backgrounds, (64, 96), Mix(camouflage=1.0, empty=0.0, real=0.7))
    assert calls and s["src"].shape == (64, 96, 3)


def test_dark_camouflage_looks_like_a_deep_shadow_but_keeps_alpha() -> None:
    """With ``shade`` the blob is frame = shade x plate (what a shadow darker than any cast shadow
    would give) while alpha stays 1: only the shape can tell it from a shadow."""
    pha, fgr, bg = _camouflage_scene(0.3, 0.8)
    out = perturb.camouflage(fgr, pha, bg, np.random.default_rng(0), shade=0.25)
    near = 0.95 * 0.25 * bg + 0.05 * fgr  # the blob's centre: the plate at a quarter of its light
    core = (np.abs(out - near).max(-1) < 0.02) & (pha == 1)
    assert core.sum() > 20
    assert (out[core] / bg[core]).max() < 0.45  # darker than any cast shadow, in every channel
    assert not (np.abs(out - fgr).max(-1) > 0.05)[pha == 0].any()


def test_dark_camouflage_is_drawn_only_when_asked(monkeypatch) -> None:
    """``camouflage_dark`` 0 draws no extra random number (earlier configs keep their samples); at 1
    every blob gets a shade in the dark range, below any cast shadow's."""
    from cleanplate.train import dataset

    subjects, backgrounds = _pool()
    shades = []
    real = perturb.camouflage
    monkeypatch.setattr(
        perturb, "camouflage", lambda *a, shade=None, **k: shades.append(shade) or real(*a, shade=shade, **k)
    )
    plain = [
        make_sample(np.random.default_rng(s), subjects, backgrounds, (64, 96), Mix(camouflage=1.0, empty=0.0, real=0.7))
        for s in range(3)
    ]
    assert shades and all(s is None for s in shades)
    shades.clear()
    for s in range(3):
        make_sample(
            np.random.default_rng(s),
            subjects,
            backgrounds,
            (64, 96),
            Mix(camouflage=1.0, camouflage_dark=1.0, empty=0.0, real=0.7),
        )
    assert shades and all(dataset.DARK[0] <= s <= dataset.DARK[1] for s in shades)
    assert dataset.DARK[1] < 0.5  # cast shadows keep at least half the light (perturb.cast_shadow)
    again = make_sample(
        np.random.default_rng(0),
        subjects,
        backgrounds,
        (64, 96),
        Mix(camouflage=1.0, camouflage_dark=0.0, empty=0.0, real=0.7),
    )
    assert np.array_equal(again["src"], plain[0]["src"])


def _textured_camouflage_scene() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A square subject and a background, each with its own independent fine texture."""
    h, w = 96, 112
    pha = np.zeros((h, w), np.float32)
    pha[8:88, 16:96] = 1.0
    rng = np.random.default_rng(5)
    fgr = (0.5 + 0.3 * rng.uniform(-1, 1, (h, w, 1)) * np.ones(3)).astype(np.float32)
    bg = (np.float32([0.6, 0.45, 0.3]) * (1 + 0.3 * rng.uniform(-1, 1, (h, w, 1)))).astype(np.float32)
    return pha, fgr, bg


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_dark_camouflage_in_its_own_texture_is_not_the_darkened_plate() -> None:
    """``own_texture``: the blob's colour is the background's local colour at ``shade`` of its light
    (what a shadow would leave), its texture the subject's, unrelated to the plate's; a plain dark
    blob's texture is the plate's (a shadow's in every local respect)."""
    pha, fgr, bg = _textured_camouflage_scene()
    luma = np.float32([0.299, 0.587, 0.114])
    own = perturb.camouflage(fgr, pha, bg, np.random.default_rng(0), shade=0.5, own_texture=True)
    plain = perturb.camouflage(fgr, pha, bg, np.random.default_rng(0), shade=0.5)
    core = (np.abs(plain - (0.95 * 0.5 * bg + 0.05 * fgr)).max(-1) < 0.03) & (pha == 1)
    assert core.sum() > 100
    ratio = own[core].mean(0) / bg[core].mean(0)  # the colour of a shadow at half the light, per channel
    assert np.allclose(ratio, 0.5, atol=0.08)
    assert _corr((own @ luma)[core], (fgr @ luma)[core]) > 0.7  # the subject's own texture
    assert abs(_corr((own @ luma)[core], (bg @ luma)[core])) < 0.2  # not the plate's
    assert _corr((plain @ luma)[core], (bg @ luma)[core]) > 0.9  # the plain dark blob: the plate's
    assert not (np.abs(own - fgr).max(-1) > 0.05)[pha == 0].any()


def test_dark_own_texture_is_drawn_only_when_asked(monkeypatch) -> None:
    """``dark_own_texture`` 0 draws no extra random number (round eight keeps its samples); at 1
    every dark blob keeps the subject's texture, at a shade over the cast shadows' range too."""
    from cleanplate.train import dataset

    subjects, backgrounds = _pool()
    calls = []
    real = perturb.camouflage
    monkeypatch.setattr(
        perturb,
        "camouflage",
        lambda *a, shade=None, own_texture=False: (
            calls.append((shade, own_texture)) or real(*a, shade=shade, own_texture=own_texture)
        ),
    )

    def sample(seed: int, **mix: float) -> dict[str, np.ndarray]:
        return make_sample(
            np.random.default_rng(seed),
            subjects,
            backgrounds,
            (64, 96),
            Mix(camouflage=1.0, empty=0.0, real=0.7, **mix),
        )

    dark = [sample(s, camouflage_dark=1.0) for s in range(3)]
    assert calls and not any(own for _, own in calls)
    calls.clear()
    again = sample(0, camouflage_dark=1.0, dark_own_texture=0.0)
    assert np.array_equal(again["src"], dark[0]["src"])
    calls.clear()
    for s in range(3):
        sample(s, camouflage_dark=1.0, dark_own_texture=1.0)
    assert calls and all(own and dataset.DARK_OWN[0] <= shade <= dataset.DARK_OWN[1] for shade, own in calls)
    assert dataset.DARK_OWN[1] > 0.5  # overlaps the cast shadows' range: texture, not darkness, tells them apart


def _square_mask(n: int = 200) -> np.ndarray:
    mask = np.zeros((n, n), np.float32)
    mask[60:140, 60:140] = 1
    return mask


def test_hair_volume_is_a_region_of_partial_coverage() -> None:
    """Many pixels between 0 and 1 (sub-pixel strands), some near solid where strands pile up, and
    strands reaching well out of the body."""
    mask = _square_mask()
    for seed in range(4):
        hair = _hair_volume(np.random.default_rng(seed), 200, 200, mask)
        assert hair.dtype == np.float32 and hair.min() >= 0 and hair.max() <= 1
        outside = hair[mask == 0]
        partial = ((outside > 0.05) & (outside < 0.95)).sum()
        assert partial > 300, partial
        assert partial > (outside >= 0.95).sum()  # mostly fractional, not a solid halo


def test_canopy_has_gaps_of_background_inside_its_crown() -> None:
    mask = _square_mask()
    for seed in range(4):
        crown = _canopy(np.random.default_rng(seed), 200, 200, mask)
        assert crown.min() >= 0 and crown.max() <= 1
        covered = crown > 0.5
        assert covered.sum() > 200
        ys, xs = np.nonzero(covered)
        box = crown[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
        assert (box < 0.05).mean() > 0.1  # background shows through between leaves and twigs


def test_volume_off_draws_no_random_numbers_and_on_adds_partial_coverage() -> None:
    photo = np.random.default_rng(0).uniform(0, 1, (60, 80, 3)).astype(np.float32)
    r1, r2 = np.random.default_rng(5), np.random.default_rng(5)
    procedural_subject(r1, 64, photos=[photo], photo_p=0.5, structure_p=0.5)
    procedural_subject(r2, 64, photos=[photo], photo_p=0.5, structure_p=0.5, volume_p=0.0)
    assert r1.random() == r2.random()
    soft = lambda a: ((a > 0.05) & (a < 0.95)).mean()  # noqa: E731
    plain = [soft(procedural_subject(np.random.default_rng(s), 128).pha) for s in range(8)]
    volume = [soft(procedural_subject(np.random.default_rng(s), 128, volume_p=1.0).pha) for s in range(8)]
    assert np.mean(volume) > 1.5 * np.mean(plain)
    subjects, backgrounds = _pool()
    s = make_sample(
        np.random.default_rng(1), subjects, backgrounds, (64, 96), Mix(volume=1.0, real=0.0, procedural=1.0, empty=0.0)
    )
    assert s["pha"].shape == (64, 96) and s["pha"].min() >= 0 and s["pha"].max() <= 1


def test_own_colour_recolours_only_near_the_added_coverage_in_one_hue() -> None:
    fgr = np.random.default_rng(0).uniform(0, 1, (96, 96, 3)).astype(np.float32)
    added = np.zeros((96, 96), np.float32)
    added[30:60, 30:60] = 0.5  # the coverage a volume added beyond the body
    out = _own_colour(np.random.default_rng(1), fgr, added)
    assert out.shape == fgr.shape and out.dtype == np.float32 and out.min() >= 0 and out.max() <= 1
    far = np.ones((96, 96), bool)
    far[18:72, 18:72] = False  # 4 sigma of the blur around the region
    assert np.array_equal(out[far], fgr[far])
    inside = out[36:54, 36:54].reshape(-1, 3)
    assert inside.std(0).max() < 0.1 < fgr[36:54, 36:54].reshape(-1, 3).std(0).min()  # one hue, not the body's texture


def test_volume_colour_changes_only_colour_and_is_off_by_default() -> None:
    def draw(seed: int, p: float) -> Subject:
        return procedural_subject(np.random.default_rng(seed), 128, volume_p=1.0, volume_colour_p=p)

    changed = []
    for seed in range(6):
        plain, coloured = draw(seed, 0.0), draw(seed, 1.0)
        assert np.array_equal(plain.pha, coloured.pha)  # the same shapes: the colour is drawn last
        soft = (plain.pha > 0.05) & (plain.pha < 0.95)
        changed.append(np.abs(coloured.fgr - plain.fgr).max(-1)[soft].mean())
    assert np.mean(changed) > 0.1
    # off: not a single random number drawn, so older configs keep their exact samples
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    procedural_subject(a, 64, volume_p=1.0)
    procedural_subject(b, 64, volume_p=1.0, volume_colour_p=0.0)
    assert a.random() == b.random()
