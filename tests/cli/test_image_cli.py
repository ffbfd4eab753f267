"""``cleanplate image``: outputs, naming, batching, and one clear line for every user mistake.

Until the bundled default model exists these use the reference checkpoint (random weights in
the official layout): the mattes are meaningless but every piece of plumbing runs.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cleanplate.cli.app import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ckpt(seed7_ckpt: Path) -> Path:
    return seed7_ckpt


def _scene(h: int, w: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    plate = np.stack([x * 255 / w, y * 255 / h, np.full((h, w), 90.0)], axis=2)
    plate = np.clip(plate + rng.normal(0, 2, plate.shape), 0, 255).astype(np.uint8)
    src = plate.copy()
    src[(y - h / 2) ** 2 + (x - w / 2) ** 2 < (min(h, w) / 4) ** 2] = (230, 40, 200)
    return src, plate


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """shots/a.png, shots/b.jpg (frames) and shots/plate.png, 48x64."""
    folder = tmp_path / "shots"
    folder.mkdir()
    for i, name in enumerate(("a.png", "b.jpg")):
        src, plate = _scene(48, 64, seed=i)
        Image.fromarray(src).save(folder / name)
    Image.fromarray(plate).save(folder / "plate.png")
    return folder


def run(capsys, *args) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def assert_user_error(code: int, err: str, *needles: str) -> None:
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("cleanplate: error:"), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


# ----------------------------------------------------------------------------------- success


def test_default_output_is_lossless_straight_rgba(capsys, shots, tmp_path, ckpt):
    out = tmp_path / "out"
    code, _, err = run(capsys, "image", shots / "a.png", "--plate", shots / "plate.png", "-o", out, "--model", ckpt)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["a.png"]
    written = np.asarray(Image.open(out / "a.png"))
    assert written.shape == (48, 64, 4) and written.dtype == np.uint8
    from cleanplate import load

    expected = load(ckpt, device="cpu").matte(shots / "a.png", shots / "plate.png").rgba()
    assert (written == expected).all()  # PNG is lossless and the CLI adds nothing


def test_every_output_kind_folder_input_and_background_image(capsys, shots, tmp_path, ckpt):
    bg = tmp_path / "beach.png"
    Image.fromarray(np.full((30, 100, 3), (10, 20, 250), np.uint8)).save(bg)
    out = tmp_path / "out"
    code, _, err = run(
        capsys, "image", shots, "--plate", shots / "plate.png", "-o", out, "--model", ckpt,
        "--save", "rgba,alpha,fgr,comp,err,ref", "--background", bg, "--batch-size", "2",
    )  # fmt: skip
    assert code == 0, err
    names = sorted(p.name for p in out.iterdir())
    kinds = ["", "_alpha", "_comp", "_err", "_fgr", "_ref"]
    assert names == sorted(f"{stem}{k}.png" for stem in ("a", "b") for k in kinds)  # the plate is not an input
    assert np.asarray(Image.open(out / "a_alpha.png")).shape == (48, 64)
    assert np.asarray(Image.open(out / "a_comp.png")).shape == (48, 64, 3)
    assert set(np.unique(np.asarray(Image.open(out / "a_ref.png")))) <= {0, 255}
    rgba = np.asarray(Image.open(out / "a.png")).astype(float) / 255
    comp = np.asarray(Image.open(out / "a_comp.png")).astype(float)
    a = rgba[..., 3:]
    expected = (rgba[..., :3] * a + np.array([10, 20, 250]) / 255 * (1 - a)) * 255
    assert np.abs(comp - expected).max() <= 1.5


def test_background_colour_implies_comp(capsys, shots, tmp_path, ckpt):
    out = tmp_path / "out"
    args = ("image", shots / "a.png", "--plate", shots / "plate.png", "-o", out, "--model", ckpt, "-b", "#00ff00")
    code, _, err = run(capsys, *args)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "a_comp.png"]


def test_glob_and_plate_dir_matched_by_stem(capsys, tmp_path, ckpt):
    frames, plates = tmp_path / "frames", tmp_path / "plates"
    frames.mkdir()
    plates.mkdir()
    for i, stem in enumerate(("x", "y")):
        src, plate = _scene(40, 40, seed=i)
        Image.fromarray(src).save(frames / f"{stem}.png")
        Image.fromarray(plate).save(plates / f"{stem}.jpg")
    out = tmp_path / "out"
    code, _, err = run(capsys, "image", f"{frames}/*.png", "--plate-dir", plates, "-o", out, "--model", ckpt)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["x.png", "y.png"]


def test_force_overwrites(capsys, shots, tmp_path, ckpt):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.png").write_bytes(b"old")
    args = ("image", shots / "a.png", "--plate", shots / "plate.png", "-o", out, "--model", ckpt)
    code, _, err = run(capsys, *args, "--force")
    assert code == 0, err
    assert np.asarray(Image.open(out / "a.png")).shape == (48, 64, 4)


def test_classical_model(capsys, shots, tmp_path):
    if importlib.util.find_spec("cleanplate.models.classical") is None:
        pytest.skip("cleanplate.models.classical is not in this checkout")
    out = tmp_path / "out"
    code, _, err = run(capsys, "image", shots / "a.png", "--plate", shots / "plate.png", "-o", out, "-m", "classical")
    assert code == 0, err
    alpha = np.asarray(Image.open(out / "a.png"))[..., 3]
    assert alpha[24, 32] > 200 and alpha[2, 2] < 50  # the disc is foreground


def test_align_warning_is_one_line_and_the_run_succeeds(capsys, tmp_path, ckpt):
    src, _ = _scene(48, 64)
    Image.fromarray(src).save(tmp_path / "f.png")
    Image.fromarray(np.full((48, 64, 3), 128, np.uint8)).save(tmp_path / "flat.png")
    args = ("image", tmp_path / "f.png", "--plate", tmp_path / "flat.png", "-o", tmp_path / "o", "-m", ckpt)
    code, _, err = run(capsys, *args, "--align")
    assert code == 0
    assert any(line.startswith("cleanplate: warning:") and "alignment failed" in line for line in err.splitlines())


@pytest.mark.slow
def test_subprocess_end_to_end(shots, tmp_path, ckpt):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "cleanplate", "image", str(shots / "a.png"), "--plate", str(shots / "plate.png"),
           "-o", str(out), "--model", str(ckpt), "--save", "alpha"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (out / "a_alpha.png").is_file()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [f"cleanplate: error: output {out / 'a_alpha.png'} already exists "
                                                "(use --force to overwrite)"]  # fmt: skip


# ------------------------------------------------------------------------------ user mistakes


def test_missing_source(capsys, shots, tmp_path):
    code, _, err = run(capsys, "image", tmp_path / "nope.png", "--plate", shots / "plate.png", "-o", tmp_path / "o")
    assert_user_error(code, err, "nope.png", "no such file")


def test_glob_without_matches(capsys, shots, tmp_path):
    code, _, err = run(capsys, "image", f"{tmp_path}/*.tif", "--plate", shots / "plate.png", "-o", tmp_path / "o")
    assert_user_error(code, err, "no files match")


def test_missing_plate(capsys, shots, tmp_path):
    code, _, err = run(capsys, "image", shots / "a.png", "--plate", tmp_path / "none.png", "-o", tmp_path / "o")
    assert_user_error(code, err, "none.png", "no such file")


def test_non_image_source(capsys, shots, tmp_path):
    (tmp_path / "notes.png").write_text("this is text")
    code, _, err = run(capsys, "image", tmp_path / "notes.png", "--plate", shots / "plate.png", "-o", tmp_path / "o")
    assert_user_error(code, err, "notes.png", "not an image")
    assert not (tmp_path / "o").exists()  # failed before creating anything


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_truncated_source(capsys, shots, tmp_path, ckpt, ext):
    big = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    Image.fromarray(big).save(tmp_path / f"full{ext}")
    data = (tmp_path / f"full{ext}").read_bytes()
    (tmp_path / f"cut{ext}").write_bytes(data[: len(data) // 2])
    args = ("image", tmp_path / f"cut{ext}", "--plate", shots / "plate.png", "-o", tmp_path / "o", "-m", ckpt)
    code, _, err = run(capsys, *args)
    assert_user_error(code, err, f"cut{ext}", "truncated or corrupt")
    assert list((tmp_path / "o").glob("*")) == []


def test_plate_aspect_mismatch(capsys, shots, tmp_path, ckpt):
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "square.png")
    code, _, err = run(capsys, "image", shots / "a.png", "--plate", tmp_path / "square.png", "-o", tmp_path / "o",
                       "-m", ckpt)  # fmt: skip
    assert_user_error(code, err, "plate is 64x64 but the frame is 64x48", "--align")


def test_plate_dir_without_a_matching_plate(capsys, shots, tmp_path):
    (tmp_path / "plates").mkdir()
    code, _, err = run(capsys, "image", shots / "a.png", "--plate-dir", tmp_path / "plates", "-o", tmp_path / "o")
    assert_user_error(code, err, "no plate named a.*")


@pytest.mark.parametrize("extra", [[], ["--plate", "x.png", "--plate-dir", "."]])
def test_exactly_one_plate_source(capsys, shots, tmp_path, extra):
    code, _, err = run(capsys, "image", shots / "a.png", "-o", tmp_path / "o", *extra)
    assert_user_error(code, err, "exactly one of --plate")


def test_non_checkpoint_model(capsys, shots, tmp_path):
    (tmp_path / "weights.pth").write_text("not weights")
    code, _, err = run(capsys, "image", shots / "a.png", "--plate", shots / "plate.png", "-o", tmp_path / "o",
                       "--model", tmp_path / "weights.pth")  # fmt: skip
    assert_user_error(code, err, "weights.pth", "not a PyTorch checkpoint")


def test_truncated_checkpoint(capsys, shots, tmp_path, ckpt):
    (tmp_path / "cut.pth").write_bytes(ckpt.read_bytes()[:100_000])
    code, _, err = run(capsys, "image", shots / "a.png", "--plate", shots / "plate.png", "-o", tmp_path / "o",
                       "--model", tmp_path / "cut.pth")  # fmt: skip
    assert_user_error(code, err, "cut.pth", "truncated")


def test_wrong_architecture_checkpoint_names_the_key(capsys, shots, tmp_path, ckpt):
    import torch

    state = torch.load(ckpt, weights_only=True)
    state["aspp.convs.0.0.weight"] = state["aspp.convs.0.0.weight"][:, :100]
    torch.save(state, tmp_path / "other.pth")
    code, _, err = run(capsys, "image", shots / "a.png", "--plate", shots / "plate.png", "-o", tmp_path / "o",
                       "--model", tmp_path / "other.pth")  # fmt: skip
    assert_user_error(code, err, "'aspp.convs.0.0.weight'", "expected")


def test_unknown_model_name(capsys, shots, tmp_path):
    code, _, err = run(capsys, "image", shots / "a.png", "--plate", shots / "plate.png", "-o", tmp_path / "o",
                       "--model", "resnet-best")  # fmt: skip
    assert_user_error(code, err, "resnet-best", "default, fast, bgmv2, classical")


@pytest.mark.parametrize(
    ("option", "value", "needle"),
    [
        ("--refine-mode", "best", "--refine-mode"),
        ("--backbone-scale", "2", "--backbone-scale"),
        ("--backbone-scale", "abc", "--backbone-scale"),
        ("--sample-pixels", "3", "--sample-pixels"),
        ("--threshold", "-1", "--threshold"),
        ("--device", "tpu", "unknown device 'tpu'"),
        ("--backend", "tensorrt", "--backend"),
        ("--save", "rgba,depth", "unknown output 'depth'"),
        ("--background", "no-such-colour", "neither a colour"),
        ("--batch-size", "0", "--batch-size"),
        ("--frobnicate", "1", "--frobnicate"),
    ],
)
def test_bad_option_values(capsys, shots, tmp_path, ckpt, option, value, needle):
    code, _, err = run(capsys, "image", shots / "a.png", "--plate", shots / "plate.png", "-o", tmp_path / "o",
                       "-m", ckpt, option, value)  # fmt: skip
    assert_user_error(code, err, needle)


def test_unwritable_output_folder(capsys, shots, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    code, _, err = run(capsys, "image", shots / "a.png", "--plate", shots / "plate.png", "-o", blocker / "out")
    assert_user_error(code, err, "a-file is a file")
    code, _, err = run(capsys, "image", shots / "a.png", "--plate", shots / "plate.png", "-o", blocker)
    assert_user_error(code, err, "is a file")


def test_existing_output_stops_before_any_work(capsys, shots, tmp_path, ckpt):
    out = tmp_path / "out"
    out.mkdir()
    (out / "b.png").write_bytes(b"precious")  # the second input's output exists
    code, _, err = run(capsys, "image", shots / "a.png", shots / "b.jpg", "--plate", shots / "plate.png", "-o", out,
                       "-m", ckpt)  # fmt: skip
    assert_user_error(code, err, "b.png", "already exists", "--force")
    assert sorted(p.name for p in out.iterdir()) == ["b.png"]  # a.png was not written either
    assert (out / "b.png").read_bytes() == b"precious"


def test_output_would_overwrite_an_input(capsys, shots, ckpt):
    code, _, err = run(capsys, "image", shots / "a.png", "--plate", shots / "plate.png", "-o", shots, "-m", ckpt,
                       "--force")  # fmt: skip
    assert_user_error(code, err, "would overwrite an input")


def test_two_inputs_with_one_name(capsys, shots, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.jpg").write_bytes((shots / "b.jpg").read_bytes())
    code, _, err = run(capsys, "image", shots / "a.png", other / "a.jpg", "--plate", shots / "plate.png",
                       "-o", tmp_path / "o")  # fmt: skip
    assert_user_error(code, err, "would both write")


def test_default_model_missing_is_one_line(capsys, shots, tmp_path):
    from cleanplate.models.registry import DEFAULT_WEIGHTS

    if DEFAULT_WEIGHTS.is_file():
        pytest.skip("the default model is installed")
    code, _, err = run(capsys, "image", shots / "a.png", "--plate", shots / "plate.png", "-o", tmp_path / "o")
    assert_user_error(code, err, "default model is not installed")


def test_bundled_sample_runs_without_arguments(capsys, tmp_path):
    out = tmp_path / "out"
    code, _, err = run(capsys, "image", "--sample", "vtest", "-o", out, "-m", "classical", "--save", "rgba,comp")
    assert code == 0, err
    rgba = np.asarray(Image.open(out / "vtest_src.png"))
    assert rgba.shape == (576, 768, 4)
    assert (out / "vtest_src_comp.png").is_file()


def test_sample_and_sources_are_exclusive(capsys, shots, tmp_path):
    code, _, err = run(capsys, "image", shots / "a.png", "--sample", "vtest", "-o", tmp_path / "o")
    assert_user_error(code, err, "--sample")
