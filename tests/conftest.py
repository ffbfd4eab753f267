"""Shared fixtures: the read-only ../shared folder (skips with a reason when absent)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from tests.clips import clip_factory, fast_matter  # noqa: F401  (fixtures for every folder)
from tests.shared_paths import DATA, REFERENCE

torch.set_num_threads(1)


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent: the shared reference material is not beside this checkout")
    return path


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    return _need(REFERENCE)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return _need(DATA)


@pytest.fixture(scope="session")
def gen_weights(reference_dir: Path):
    """The reference weight generator, imported from ../shared/reference/gen_weights.py."""
    spec = importlib.util.spec_from_file_location("gen_weights", reference_dir / "gen_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def make_weights(reference_dir: Path, gen_weights):
    """``make_weights(entry, seed)``: a deterministic state dict in the official layout."""
    keys = str(reference_dir / "checkpoint_keys.json")
    cache: dict = {}

    def make(entry: str, seed: int = 7) -> dict[str, torch.Tensor]:
        if (entry, seed) not in cache:
            cache[entry, seed] = gen_weights.make_state_dict(gen_weights.load_entries(keys, entry), seed)
        return cache[entry, seed]

    return make
