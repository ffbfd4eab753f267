"""cleanplate.speed and ``cleanplate bench``: the table, the ratio column and argument errors (no timing asserts)."""

from __future__ import annotations

import pytest

from cleanplate.cli.app import main
from cleanplate.errors import InputError
from cleanplate.speed import bench_model, format_table, parse_size, run_benchmark


def test_parse_size() -> None:
    assert parse_size("1080p") == ("1080p", (1080, 1920))
    assert parse_size("4K") == ("4k", (2160, 3840))
    assert parse_size("64x96") == ("64x96", (64, 96))
    for bad in ("huge", "65x96", "0x8"):
        with pytest.raises(InputError):
            parse_size(bad)


def test_run_benchmark_interleaves_and_checks_outputs() -> None:
    model = bench_model("mobilenetv2", refine_sample_pixels=1600)
    timings = run_benchmark(model, (64, 96), label="tiny", variants=["torch"], repeat=2, warmup=0)
    assert [t.variant for t in timings] == ["eager", "torch"]
    assert all(len(t.times) == 2 for t in timings)
    fast = timings[1]
    assert fast.check is not None and fast.check.ok(), fast.check.summary()
    assert fast.check.refined_cells == 100  # 1600 // 16 patches: the error head bias gives them work
    table = format_table(timings)
    assert table.count("\n") == 3 and "| mobilenetv2 | tiny | torch |" in table and "1.00x" in table


def test_cli_errors(capsys) -> None:
    for args, needle in ((["--sizes", "huge"], "unknown size"), (["--backend", "tensorrt"], "tensorrt")):
        with pytest.raises(SystemExit) as exc:
            main(["bench", *args])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and needle in err and "Traceback" not in err


def test_cli_table(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--sizes", "64x96", "--backend", "torch", "--repeat", "1", "--sample-pixels", "1600"])
    out = capsys.readouterr().out
    assert exc.value.code == 0
    assert "| mobilenetv2 | 64x96 | eager |" in out and "| mobilenetv2 | 64x96 | torch |" in out
