"""Shared CLI options: in sync with the models, cheap to import, mapped onto cleanplate.load."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import click.testing
import pytest

from cleanplate.cli import options
from cleanplate.models.matting import BACKBONES
from cleanplate.models.refiner import REFINE_MODES

ROOT = Path(__file__).resolve().parents[2]


def test_choices_mirror_the_models():
    # one source: cleanplate.options, read by the CLI, cleanplate.load and the networks alike
    import cleanplate.options as choices
    from cleanplate.api import BACKENDS
    from cleanplate.cli import bench

    assert set(options.REFINE_MODES) == set(REFINE_MODES)
    assert set(options.BACKBONES) == set(BACKBONES)
    assert set(options.BACKENDS) == set(BACKENDS)
    assert options.REFINE_MODES is choices.REFINE_MODES is REFINE_MODES and BACKBONES is choices.BACKBONES
    assert bench.BACKEND_CHOICES is choices.BACKENDS and set(bench.BENCH_PRECISIONS) < set(choices.PRECISIONS)


@pytest.mark.parametrize(("text", "value"), [("0.25", 0.25), ("1/4", 0.25), (" 1/8 ", 0.125), ("0.5", 0.5)])
def test_scale_type_accepts_decimals_and_fractions(text, value):
    assert options.ScaleType().convert(text, None, None) == value


@pytest.mark.parametrize("text", ["0", "0.75", "1/0", "quarter", "-1/4"])
def test_scale_type_rejects(text):
    with pytest.raises(click.BadParameter):
        options.ScaleType().convert(text, None, None)


def test_refine_kwargs_only_passes_what_was_set():
    assert options.refine_kwargs(model="x", device="cpu") == {}
    assert options.refine_kwargs(backbone_scale=0.25, refine_mode="full", sample_pixels=320, threshold=0.2) == {
        "backbone_scale": 0.25,
        "refine_mode": "full",
        "refine_sample_pixels": 320,
        "refine_threshold": 0.2,
    }


def test_matting_options_decorate_a_command():
    @click.command()
    @options.matting_options
    @options.force_option
    def cmd(**kwargs):
        click.echo(sorted(kwargs.items()))

    result = click.testing.CliRunner().invoke(cmd, ["--backbone-scale", "1/4", "--refine-mode", "full", "-f"])
    assert result.exit_code == 0, result.output
    assert "('backbone_scale', 0.25)" in result.output and "('force', True)" in result.output
    assert "('device', 'auto')" in result.output and "('model', None)" in result.output


def test_help_and_options_do_not_import_torch():
    code = (
        "import sys; import cleanplate.cli.options, cleanplate.cli.image, cleanplate.cli.info; "
        "assert 'torch' not in sys.modules and 'cv2' not in sys.modules, 'heavy import'"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    done = subprocess.run([sys.executable, "-m", "cleanplate", "image", "--help"], capture_output=True, text=True,
                          env=env, timeout=120)  # fmt: skip
    assert done.returncode == 0 and "--plate-dir" in done.stdout and "--backbone-scale" in done.stdout


def test_train_blend_argument() -> None:
    from cleanplate.cli.train import _parse_blend

    assert _parse_blend("runs/g/step690.pt") == ("runs/g/step690.pt", 0.5)
    assert _parse_blend("runs/g/step690.pt:0.3") == ("runs/g/step690.pt", 0.3)
    assert _parse_blend("C:model.pt") == ("C:model.pt", 0.5)
    assert _parse_blend("default") == ("default", 0.5)
