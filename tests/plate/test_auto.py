"""A plate from the clip itself (``--plate auto``): the masked median, never-seen marking, and the
acceptance numbers: mattes within 1.5× of the true plate's error, static and drifting camera."""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from cleanplate.errors import InputError
from cleanplate.io.formats import parse_output
from cleanplate.pipeline import VideoOptions, process_video
from cleanplate.plate.auto import NeverSeenWarning, estimate_plate, masked_median
from tests.clips import FakeMatter, render


def test_masked_median_matches_numpy() -> None:
    rng = np.random.default_rng(0)
    stack = rng.integers(0, 256, (9, 7, 5, 3), dtype=np.uint8)
    use = rng.random((9, 7, 5)) > 0.4
    use[:, 0, 0] = False  # a pixel no frame may use
    out, count = masked_median(stack, use)
    masked = np.where(use[..., None], stack.astype(np.float64), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the all-NaN pixel
        expected = np.nanmedian(masked, axis=0)
    ok = count > 0
    assert np.array_equal(count, use.sum(0))
    assert np.abs(out[ok].astype(np.float64) - np.rint(expected[ok])).max() <= 0.5 + 1e-9
    assert out[0, 0].max() == 0 and count[0, 0] == 0


def _slow_walk(data_dir: Path, travel: int, n: int = 15) -> tuple[list[np.ndarray], np.ndarray]:
    """A subject that moves only ``travel`` px in ``n`` frames (it covers its middle in most of them)."""
    from tests.clips import _subject, background

    h, w = 96, 128
    bg = background(data_dir, (h, w)).astype(np.float32) / 255
    fgr, pha = _subject(data_dir, int(h * 0.8))
    sh, sw = pha.shape
    rng = np.random.default_rng(0)
    frames, alphas = [], []
    for i in range(n):
        x = 40 + round(travel * i / (n - 1))
        a = np.zeros((h, w), np.float32)
        f = np.zeros((h, w, 3), np.float32)
        a[h - sh :, x : x + sw], f[h - sh :, x : x + sw] = pha, fgr
        img = f * a[..., None] + bg * (1 - a[..., None])
        frames.append(np.clip(np.rint(img * 255 + rng.normal(0, 2, img.shape)), 0, 255).astype(np.uint8))
        alphas.append(a)
    return frames, np.stack(alphas)


def test_where_the_subject_covered_most_frames_is_marked_never_seen(data_dir: Path) -> None:
    frames, alphas = _slow_walk(data_dir, travel=20)
    with pytest.warns(NeverSeenWarning, match="never seen"):
        result = estimate_plate(frames, FakeMatter())
    covered = (alphas > 0.05).mean(0)
    marked = result.never_seen
    assert marked.mean() > 0.01
    assert (covered[marked] >= 0.5).mean() > 0.75  # the marks are where the background hid most of the time
    assert (covered[marked] == 0).mean() < 0.01  # never where the background was always visible
    assert result.confidence[marked].max() == 0.0
    assert result.confidence[covered == 0].mean() > 0.8


def test_a_subject_that_never_moves_is_warned_about(data_dir: Path) -> None:
    frames, _ = render(data_dir, (96, 128), 7, static=True, noise=2.0)
    with pytest.warns(NeverSeenWarning, match="no moving subject"):
        result = estimate_plate(frames, FakeMatter(), rounds=2)
    assert not result.subject_found


def test_a_walk_leaves_nothing_unseen_and_the_plate_is_the_background(data_dir: Path) -> None:
    from tests.clips import background

    frames, _ = render(data_dir, (96, 128), 15, noise=2.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NeverSeenWarning)
        result = estimate_plate(frames, FakeMatter())
    truth = background(data_dir, (96, 128)).astype(np.int16)
    error = np.abs(result.plate.astype(np.int16) - truth).max(axis=2)
    assert result.never_seen.mean() == 0.0
    assert float(error.mean()) < 3.0 and float((error > 20).mean()) < 0.002


def test_too_few_frames_and_a_bad_matter_are_one_line_errors(data_dir: Path) -> None:
    frames, _ = render(data_dir, (48, 64), 2)
    with pytest.raises(InputError, match="at least 3 frames"):
        estimate_plate(frames)
    frames, _ = render(data_dir, (48, 64), 3)
    with pytest.raises(InputError, match="matte_tensor"):
        estimate_plate(frames, matter=42)


def _alphas(folder: Path) -> np.ndarray:
    return np.stack([cv2.imread(str(p), cv2.IMREAD_UNCHANGED)[..., 3] / 255.0 for p in sorted(folder.glob("*.png"))])


def _mad(matter, clip, plate, folder: Path, **options) -> tuple[float, object]:
    result = process_video(
        matter, clip.path, [parse_output(f"rgba={folder}/")], plate, options=VideoOptions(progress=False, **options)
    )
    return float(np.abs(_alphas(folder) - np.stack(clip.alphas))[1:].mean()), result


@pytest.mark.parametrize(("drift", "align"), [(0.0, False), (1.5, True)], ids=["static", "drifting+align"])
def test_acceptance_auto_plate_matte_within_1_5x_of_the_true_plate(
    clip_factory, tmp_path: Path, capsys, drift: float, align: bool
) -> None:
    """A subject walks across the scene (the drifting clip: a 1.5 px/frame pan with a slow roll)."""
    clip = clip_factory("walk.mp4", n=15, noise=2.0, drift=drift)
    true_mad, _ = _mad(FakeMatter(), clip, clip.plate, tmp_path / "true", align=align)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", NeverSeenWarning)
        auto_mad, result = _mad(FakeMatter(), clip, "auto", tmp_path / "auto", align=align)
    auto = result.auto_plate
    with capsys.disabled():
        print(
            f"\n--plate auto ({'drifting, --align' if align else 'static'}): matte MAD {auto_mad:.4f} vs true plate "
            f"{true_mad:.4f} (ratio {auto_mad / true_mad:.2f}); never seen {100 * auto.never_seen_fraction:.1f} %"
        )
    assert auto_mad <= 1.5 * true_mad, (auto_mad, true_mad)
    if not align:
        assert auto.never_seen_fraction == 0 and not caught
    else:  # the roll and pan make the subject cover some places in most frames: flagged, with a warning
        assert auto.never_seen_fraction < 0.1
        assert bool(caught) == (auto.warning() is not None)


@pytest.mark.slow
def test_auto_plate_with_the_classical_keyer(clip_factory, tmp_path: Path, capsys) -> None:
    """The same acceptance with a real keyer instead of the exact difference matte."""
    import cleanplate

    matter = cleanplate.load("classical", device="cpu")
    clip = clip_factory("walk.mp4", n=15, noise=2.0)
    true_mad, _ = _mad(matter, clip, clip.plate, tmp_path / "true")
    with warnings.catch_warnings():  # a few places were covered in most of the 9 frames: flagged, tested above
        warnings.simplefilter("ignore", NeverSeenWarning)
        auto_mad, _ = _mad(matter, clip, "auto", tmp_path / "auto", auto_plate=_options(frames=9, rounds=2))
    with capsys.disabled():
        print(f"\n--plate auto, classical keyer: MAD {auto_mad:.4f} vs true plate {true_mad:.4f}")
    assert auto_mad <= 1.5 * true_mad, (auto_mad, true_mad)


def _options(**kwargs):
    from cleanplate.plate.auto import AutoPlateOptions

    return AutoPlateOptions(**kwargs)


def test_plate_outputs_need_auto_and_are_written(clip_factory, tmp_path: Path) -> None:
    clip = clip_factory("walk.mp4", n=7, noise=2.0)
    outputs = {"never_seen": tmp_path / "never.png", "confidence": tmp_path / "conf.png", "plate": tmp_path / "p.png"}
    with pytest.raises(InputError, match="needs --plate auto"):
        process_video(
            FakeMatter(), clip.path, [parse_output(f"rgba={tmp_path}/x/")], clip.plate,
            options=VideoOptions(progress=False, plate_outputs={"confidence": tmp_path / "c.png"}),
        )  # fmt: skip
    process_video(
        FakeMatter(), clip.path, [parse_output(f"rgba={tmp_path}/y/")], "auto",
        options=VideoOptions(progress=False, plate_outputs=outputs),
    )  # fmt: skip
    never = cv2.imread(str(outputs["never_seen"]), cv2.IMREAD_GRAYSCALE)
    assert never.shape == clip.plate.shape[:2] and set(np.unique(never)) <= {0, 255}
    assert cv2.imread(str(outputs["plate"])).shape == clip.plate.shape
    assert cv2.imread(str(outputs["confidence"]), cv2.IMREAD_GRAYSCALE).mean() > 200
