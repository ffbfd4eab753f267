"""Issue 15: bad inputs a new user tries. Each gives one clear line (exit 2) or a warning, a batch is
never stopped half-way by one bad image, and nothing is silently wrong or left behind.

The command line runs in a real process (``python -m cleanplate``) except where a failure has to be
injected (a full disk, Ctrl-C at a given image): those call the same ``main`` in-process. The model
is the classical keyer (no weights, fast on tiny images) wherever the model is not what is tested.
"""

from __future__ import annotations

import errno
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cleanplate.cli.app import main

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}


def cli(*args, limit_bytes: int | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """``python -m cleanplate ARGS`` in a fresh process (optionally under an address-space limit)."""

    def limit() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))

    return subprocess.run(
        [sys.executable, "-m", "cleanplate", *map(str, args)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=timeout,
        preexec_fn=limit if limit_bytes else None,
    )


def one_error_line(done: subprocess.CompletedProcess, *needles: str) -> str:
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cleanplate: error:"), done.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header declares ``width``×``height`` (a 'decompression bomb'), with no real data."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    )
    return path


def flat_png(path: Path, width: int, height: int, value: int = 128) -> Path:
    """A real, valid flat grey PNG of any size, written row by row (no width×height array in memory)."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    comp = zlib.compressobj(1)
    row = b"\x00" + bytes([value]) * (3 * width)
    body = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


def cut_jpeg(path: Path, image: np.ndarray) -> Path:
    """A JPEG whose header is complete but whose image data stops half-way (a copy cut short)."""
    Image.fromarray(image).save(path, quality=95)
    data = path.read_bytes()
    scan = data.index(b"\xff\xda")  # start of scan: everything before it is header
    path.write_bytes(data[: scan + (len(data) - scan) // 2])
    return path


def scene(h: int = 48, w: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frame, plate, true alpha): a textured colour plate and a red disc in front of it."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    plate = np.stack([x * 200 / w + 30, y * 200 / h + 30, 120 + 60 * np.sin(x / 3.0) * np.cos(y / 4.0)], axis=2)
    plate = np.clip(plate + rng.normal(0, 2, plate.shape), 0, 255).astype(np.uint8)
    alpha = ((y - h / 2) ** 2 + (x - w / 2) ** 2 < (min(h, w) / 4) ** 2).astype(np.float32)
    frame = plate.copy()
    frame[alpha > 0] = (230, 40, 60)
    return frame, plate, alpha


@pytest.fixture
def batch(tmp_path: Path) -> Path:
    """shots/1.png .. 5.png and plate.png, 48x64."""
    folder = tmp_path / "shots"
    folder.mkdir()
    for i in range(1, 6):
        Image.fromarray(scene(seed=i)[0]).save(folder / f"{i}.png")
    Image.fromarray(scene()[1]).save(tmp_path / "plate.png")
    return folder


# ------------------------------------------------------------------ tracebacks -> one line, exit 2


@pytest.mark.parametrize(("role", "size"), [("input", 60000), ("plate", 20000)])
def test_a_huge_declared_image_is_one_line(tmp_path: Path, role: str, size: int) -> None:
    bomb = png_header_only(tmp_path / "bomb.png", size, size)
    frame, plate = tmp_path / "f.png", tmp_path / "p.png"
    Image.fromarray(scene()[0]).save(frame)
    Image.fromarray(scene()[1]).save(plate)
    src, pl = (bomb, plate) if role == "input" else (frame, bomb)
    done = cli("image", src, "--plate", pl, "-o", tmp_path / "out", "-m", "classical")
    one_error_line(done, "bomb.png", "too large")
    assert not (tmp_path / "out").exists()


def test_a_tiny_backbone_scale_is_one_line_before_the_model_loads(tmp_path: Path, seed7_ckpt: Path) -> None:
    frame, plate = tmp_path / "f.png", tmp_path / "p.png"
    Image.fromarray(scene()[0]).save(frame)
    Image.fromarray(scene()[1]).save(plate)
    done = cli("image", frame, "--plate", plate, "-o", tmp_path / "out", "-m", seed7_ckpt, "--backbone-scale", "0.001")
    one_error_line(done, "f.png", "--backbone-scale 0.001 is too small", "64x48", "at least")


def test_backbone_scale_help_says_the_real_thresholds() -> None:
    from cleanplate.options import AUTO_SCALES, auto_backbone_scale

    done = cli("image", "--help")
    text = " ".join(done.stdout.split())
    assert "1/2 up to 1024 px, 1/4 up to 2560 px, 1/8 above" in text
    assert "below 512" not in text
    for limit, scale in AUTO_SCALES:  # the words and the code are one table
        assert auto_backbone_scale(limit, limit) == scale and auto_backbone_scale(limit + 1, 1) != scale


@pytest.mark.slow
def test_out_of_memory_names_the_file(tmp_path: Path) -> None:
    big = flat_png(tmp_path / "big.png", 12000, 9000)
    plate = tmp_path / "plate.png"
    Image.fromarray(np.full((90, 120, 3), 128, np.uint8)).save(plate)
    done = cli("image", big, "--plate", plate, "-o", tmp_path / "out", "-m", "classical", limit_bytes=1_700_000_000)
    one_error_line(done, "big.png", "not enough memory")
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ batches never stop half-way


def test_a_truncated_jpeg_third_of_five_fails_alone(batch: Path, tmp_path: Path) -> None:
    """Its header is sound (it passes the checks); decoding fails later: named, and the batch goes on."""
    cut_jpeg(batch / "3.jpg", scene(seed=3)[0])
    (batch / "3.png").unlink()
    out = tmp_path / "out"
    done = cli("image", batch, "--plate", tmp_path / "plate.png", "-o", out, "-m", "classical")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert any(line.startswith("cleanplate: error:") and "3.jpg" in line for line in lines), lines
    assert "4 done, 1 failed, 0 skipped" in lines[-1], lines
    assert sorted(p.name for p in out.iterdir()) == ["1.png", "2.png", "4.png", "5.png"]


@pytest.mark.parametrize("problem", ["truncated png", "other aspect"])
def test_predictable_problems_are_found_before_the_model_loads(tmp_path: Path, problem: str) -> None:
    frames, plates = tmp_path / "frames", tmp_path / "plates"
    frames.mkdir()
    plates.mkdir()
    for i in range(1, 6):
        frame, plate, _ = scene(seed=i)
        Image.fromarray(frame).save(frames / f"{i}.png")
        Image.fromarray(plate).save(plates / f"{i}.png")
    if problem == "truncated png":
        data = (frames / "3.png").read_bytes()
        (frames / "3.png").write_bytes(data[: len(data) // 2])
    else:
        Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(plates / "3.png")
    out = tmp_path / "out"
    done = cli("image", frames, "--plate-dir", plates, "-o", out, "-m", "classical")
    line = one_error_line(done, "3.png")
    assert ("truncated or corrupt" if problem == "truncated png" else "another aspect ratio") in line
    assert not out.exists()  # refused before anything was written


def test_skip_existing_resumes_a_batch(batch: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert cli("image", batch, "--plate", tmp_path / "plate.png", "-o", out, "-m", "classical").returncode == 0
    (out / "2.png").unlink()
    (out / "4.png").unlink()
    kept = (out / "1.png").stat().st_mtime_ns
    done = cli("image", batch, "--plate", tmp_path / "plate.png", "-o", out, "-m", "classical", "--skip-existing")
    assert done.returncode == 0, done.stderr
    assert "2 done, 0 failed, 3 skipped" in done.stderr.strip().splitlines()[-1]
    assert sorted(p.name for p in out.iterdir()) == [f"{i}.png" for i in range(1, 6)]
    assert (out / "1.png").stat().st_mtime_ns == kept
    again = cli("image", batch, "--plate", tmp_path / "plate.png", "-o", out, "-m", "classical", "--skip-existing")
    assert again.returncode == 0 and "nothing to do" in again.stderr


def test_ctrl_c_says_how_many_finished(batch: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    from cleanplate.api.matter import Matter

    real = Matter.matte_batch
    calls = []

    def interrupted_at_the_third(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Matter, "matte_batch", interrupted_at_the_third)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        main(["image", str(batch), "--plate", str(tmp_path / "plate.png"), "-o", str(out), "-m", "classical"])
    assert exc.value.code == 130
    err = capsys.readouterr().err
    assert "interrupted after 2 of 5 image(s)" in err and "--skip-existing" in err, err
    assert sorted(p.name for p in out.iterdir()) == ["1.png", "2.png"]


def test_no_empty_folder_is_left_when_the_only_image_fails_late(tmp_path: Path) -> None:
    cut_jpeg(tmp_path / "f.jpg", scene()[0])
    Image.fromarray(scene()[1]).save(tmp_path / "plate.png")
    out = tmp_path / "new" / "out"
    done = cli("image", tmp_path / "f.jpg", "--plate", tmp_path / "plate.png", "-o", out, "-m", "classical")
    one_error_line(done, "f.jpg", "truncated or corrupt")
    assert not (tmp_path / "new").exists()


def test_output_file_name_with_one_input(tmp_path: Path) -> None:
    Image.fromarray(scene()[0]).save(tmp_path / "f.png")
    Image.fromarray(scene()[1]).save(tmp_path / "plate.png")
    target = tmp_path / "result.png"
    done = cli("image", tmp_path / "f.png", "--plate", tmp_path / "plate.png", "-o", target, "-m", "classical")
    assert done.returncode == 0, done.stderr
    assert target.is_file() and np.asarray(Image.open(target)).shape == (48, 64, 4)
    Image.fromarray(scene(seed=1)[0]).save(tmp_path / "g.png")
    two = cli("image", tmp_path / "f.png", tmp_path / "g.png", "--plate", tmp_path / "plate.png",
              "-o", tmp_path / "two.png", "-m", "classical")  # fmt: skip
    assert two.returncode == 2 and "names one file" in two.stderr and not (tmp_path / "two.png").exists()


# ------------------------------------------------------------------ silently wrong -> handled or warned


def test_a_grey_frame_against_a_colour_plate(tmp_path: Path) -> None:
    frame, plate, alpha = scene(96, 128)
    grey = np.repeat(np.asarray(Image.fromarray(frame).convert("L"))[:, :, None], 3, axis=2)
    Image.fromarray(grey).save(tmp_path / "grey.png")
    Image.fromarray(plate).save(tmp_path / "plate.png")
    out = tmp_path / "out"
    done = cli("image", tmp_path / "grey.png", "--plate", tmp_path / "plate.png", "-o", out, "-m", "classical")
    assert done.returncode == 0, done.stderr
    assert "warning: " in done.stderr and "greyscale" in done.stderr
    matte = np.asarray(Image.open(out / "grey.png"))[..., 3] / 255
    assert float(np.abs(matte - alpha).mean()) < 0.05  # without the grey plate: most of the frame is "subject"
    assert float((matte > 0.5).mean()) < float(alpha.mean()) + 0.05


def test_a_shifted_plate_without_align_suggests_align(tmp_path: Path, data_dir: Path) -> None:
    """bgmv2 compares pixel by pixel: a (12, 10) px shift is reported. The keyer registers the plate
    itself (its matte matches the aligned plate's where the plate covers the frame): no warning."""
    bg = np.asarray(Image.open(data_dir / "train" / "backgrounds" / "kodak_kodim08.jpg").convert("RGB"))[:240, :320]
    frame = bg[10:210, 12:292].copy()  # the camera moved by (12, 10) px
    plate = bg[:200, :280]
    frame[70:140, 110:170] = (220, 30, 40)
    Image.fromarray(frame).save(tmp_path / "f.png")
    Image.fromarray(np.ascontiguousarray(plate)).save(tmp_path / "plate.png")
    done = cli("image", tmp_path / "f.png", "--plate", tmp_path / "plate.png", "-o", tmp_path / "o", "-m", "bgmv2")
    assert done.returncode == 0, done.stderr
    warning = [line for line in done.stderr.splitlines() if "shifted" in line]
    assert warning and "f.png" in warning[0] and "--align" in warning[0] and "(-12, -10)" in warning[0], done.stderr
    aligned = cli("image", tmp_path / "f.png", "--plate", tmp_path / "plate.png", "-o", tmp_path / "o2",
                  "-m", "bgmv2", "--align")  # fmt: skip
    assert aligned.returncode == 0 and "(-12, -10)" not in aligned.stderr, aligned.stderr  # no shift to report
    # registered, it leaves a strip of the frame without plate (12 of 280 columns, 10 of 200 rows): said once
    coverage = [line for line in aligned.stderr.splitlines() if "uncovered" in line]
    assert len(coverage) == 1 and "9.1 %" in coverage[0] and "bottom and right" in coverage[0], aligned.stderr
    keyer = cli(
        "image", tmp_path / "f.png", "--plate", tmp_path / "plate.png", "-o", tmp_path / "o3", "-m", "classical"
    )
    assert keyer.returncode == 0 and "warning" not in keyer.stderr, keyer.stderr


def test_an_aligned_plate_gives_no_warning(tmp_path: Path) -> None:
    frame, plate, _ = scene(96, 128)
    Image.fromarray(frame).save(tmp_path / "f.png")
    Image.fromarray(plate).save(tmp_path / "plate.png")
    done = cli("image", tmp_path / "f.png", "--plate", tmp_path / "plate.png", "-o", tmp_path / "o", "-m", "classical")
    assert done.returncode == 0 and "warning" not in done.stderr, done.stderr


# ------------------------------------------------------------------ leftovers and full disks


def test_stale_temp_files_of_a_killed_run_are_removed(tmp_path: Path) -> None:
    from cleanplate.io.atomic import stale_temp_files

    Image.fromarray(scene()[0]).save(tmp_path / "f.png")
    Image.fromarray(scene()[1]).save(tmp_path / "plate.png")
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = out / f".f.tmp-{int(dead.stdout)}-0badc0de.png"  # its writer was SIGKILLed
    stale.write_bytes(b"x" * 4096)
    live = out / f".f.tmp-{os.getpid()}-0c0ffee0.png"  # another run, still writing
    live.write_bytes(b"y")
    unrelated = out / ".notes.tmp"
    unrelated.write_bytes(b"z")
    assert stale_temp_files(out / "f.png") == [stale]
    done = cli("image", tmp_path / "f.png", "--plate", tmp_path / "plate.png", "-o", out, "-m", "classical")
    assert done.returncode == 0, done.stderr
    assert "removed 1 temp file(s)" in done.stderr
    assert not stale.exists() and live.exists() and unrelated.exists() and (out / "f.png").is_file()


def test_disk_full_names_the_image_not_its_temp_file(tmp_path: Path, monkeypatch, capsys) -> None:
    Image.fromarray(scene()[0]).save(tmp_path / "f.png")
    Image.fromarray(scene()[1]).save(tmp_path / "plate.png")

    def full(self, fp, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(fp))

    monkeypatch.setattr(Image.Image, "save", full)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        main(
            [
                "image",
                str(tmp_path / "f.png"),
                "--plate",
                str(tmp_path / "plate.png"),
                "-o",
                str(out),
                "-m",
                "classical",
            ]
        )
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2
    assert err == [f"cleanplate: error: cannot write {out / 'f.png'}: no space left on device"]
    assert not out.exists()  # no temp file, and the folder made for it is gone again


def test_disk_full_in_the_entry_point_names_the_final_file(capsys, monkeypatch) -> None:
    from cleanplate.cli import app

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", "/data/out/.take.tmp-123-0badc0de.mov")

    monkeypatch.setattr(app.cli, "main", full)
    with pytest.raises(SystemExit) as exc:
        app.main(["video"])
    assert exc.value.code == 2
    assert (
        capsys.readouterr().err.strip() == "cleanplate: error: cannot write /data/out/take.mov: no space left on device"
    )


# ------------------------------------------------------------------ video


def faststart(src: Path, dst: Path) -> Path:
    """Remux an mp4 with its index (moov) at the front, as streaming encoders write it."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w", options={"movflags": "faststart"}) as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is None:
                continue
            packet.stream = stream
            out.mux(packet)
    return dst


def test_a_truncated_video_warns_with_frames_written_vs_expected(clip_factory, tmp_path: Path) -> None:
    clip = clip_factory(n=40)
    whole = faststart(clip.path, tmp_path / "whole.mp4")
    data = whole.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])  # the index says 40 frames; half of them are gone
    Image.fromarray(clip.plate).save(tmp_path / "plate.png")
    done = cli("video", cut, "--plate", tmp_path / "plate.png", "-o", tmp_path / "out.mkv", "-m", "classical", "-q")
    assert "Traceback" not in done.stderr, done.stderr
    from tests.clips import decode_all

    written = len(decode_all(tmp_path / "out.mkv")) if done.returncode == 0 else 0
    if done.returncode == 0:  # kept what decoded, and said so
        assert 0 < written < 40
        assert f"only {written} of the 40 frames" in done.stderr and "truncated" in done.stderr, done.stderr
    else:  # or refused with one clear line
        one_error_line(done, "cut.mp4")


def test_a_video_output_leaves_no_stale_temp_file(clip_factory, tmp_path: Path) -> None:
    clip = clip_factory(n=4)
    Image.fromarray(clip.plate).save(tmp_path / "plate.png")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".out.tmp-{int(dead.stdout)}-0badc0de.mkv"  # a SIGKILLed run's leftover
    stale.write_bytes(b"\0" * 100_000)
    done = cli("video", clip.path, "--plate", tmp_path / "plate.png", "-o", tmp_path / "out.mkv", "-m", "classical")
    assert done.returncode == 0, done.stderr
    assert "removed 1 temp file(s)" in done.stderr and not stale.exists()
    assert (tmp_path / "out.mkv").is_file()


def test_a_full_disk_while_encoding_names_the_video(clip_factory, tmp_path: Path, monkeypatch, capsys) -> None:
    from cleanplate.io import video_writer

    clip = clip_factory(n=4)
    Image.fromarray(clip.plate).save(tmp_path / "plate.png")
    real = video_writer.VideoFileWriter.write

    def full(self, image, pts):
        if self.frames == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.tmp))
        return real(self, image, pts)

    monkeypatch.setattr(video_writer.VideoFileWriter, "write", full)
    out = tmp_path / "out.mkv"
    with pytest.raises(SystemExit) as exc:
        main(["video", str(clip.path), "--plate", str(tmp_path / "plate.png"), "-o", str(out), "-m", "classical", "-q"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith(f"cleanplate: error: cannot write {out}: no space left on device"), err
    assert ".tmp-" not in err[-1]


def test_a_full_disk_writing_png_frames_names_the_frame(tmp_path: Path, monkeypatch) -> None:
    from fractions import Fraction

    from cleanplate.errors import OutputError
    from cleanplate.io.formats import parse_output
    from cleanplate.io.video_writer import open_writer

    spec = parse_output(f"rgba={tmp_path / 'frames'}", None)
    writer = open_writer(spec, time_base=Fraction(1, 25))
    writer.write(np.zeros((8, 8, 4), np.uint8), 0)
    real_open = open

    def full(path, mode="r", *args, **kwargs):
        if "w" in mode and ".tmp-" in str(path):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", full)
    with pytest.raises(OutputError, match=r"frames/000001\.png: no space left on device"):
        writer.write(np.zeros((8, 8, 4), np.uint8), 1)
    monkeypatch.undo()
    assert writer.abort() is not None  # the frame done is kept as a partial folder


def test_a_greyscale_video_against_a_colour_plate(clip_factory, tmp_path: Path) -> None:
    clip = clip_factory(n=3, static=True)
    import av

    grey = tmp_path / "grey.mkv"
    with av.open(str(grey), "w") as out:
        stream = out.add_stream("ffv1", rate=12)
        stream.width, stream.height, stream.pix_fmt = clip.frames[0].shape[1], clip.frames[0].shape[0], "gray"
        for img in clip.frames:
            g = np.asarray(Image.fromarray(img).convert("L"))
            for packet in stream.encode(av.VideoFrame.from_ndarray(g, format="gray")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    Image.fromarray(clip.plate).save(tmp_path / "plate.png")
    out = tmp_path / "alpha.mkv"
    done = cli("video", grey, "--plate", tmp_path / "plate.png", "-o", f"alpha={out}", "-m", "classical", "-q")
    assert done.returncode == 0, done.stderr
    assert "greyscale" in done.stderr
    from tests.clips import decode_all

    alpha = decode_all(out)[1].image[..., 0] / 255
    assert float(np.abs(alpha - clip.alphas[1]).mean()) < 0.1
