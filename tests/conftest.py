"""Shared fixtures. Only the parity tests need the read-only ../shared folder (they skip without it).

- ``reference_dir``: ../shared/reference (parity fixtures); skips with a reason when absent.
- ``data_dir``: the small redistributable test assets in tests/assets/data (same layout as ../shared/data).
- ``shared_data_dir``: ../shared/data itself, for the few tests of data that may not be redistributed.
- ``make_weights`` / ``seed7_ckpt``: deterministic random weights in the official layout, from
  tests/weights.py (a copy of ../shared/reference/gen_weights.py): the same tensors with or
  without ../shared.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import torch

from tests.clips import clip_factory, fast_matter  # noqa: F401  (fixtures for every folder)
from tests.shared_paths import ASSETS, DATA, REFERENCE

torch.set_num_threads(1)

# The tests that press Ctrl-C on a child process (batch, video, serve) need it delivered as in a
# terminal. A suite started in the background of a non-interactive shell inherits SIGINT ignored,
# and so would every child (an ignored signal stays ignored across exec); a handler here resets to
# the default at exec, so the children get Python's usual KeyboardInterrupt.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent: the shared reference material is not beside this checkout")
    return path


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    return _need(REFERENCE)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return ASSETS


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    return _need(DATA)


@pytest.fixture(scope="session")
def gen_weights():
    """The reference weight generator (tests/weights.py, the same rules as ../shared/reference/gen_weights.py)."""
    from tests import weights

    return weights


@pytest.fixture(scope="session")
def make_weights(gen_weights):
    """``make_weights(entry, seed)``: a deterministic state dict in the official layout.

    The layout comes from ../shared/reference/checkpoint_keys.json when present, else from
    cleanplate's own networks (the parity tests check that both agree).
    """
    keys = REFERENCE / "checkpoint_keys.json"
    cache: dict = {}

    def make(entry: str, seed: int = 7) -> dict[str, torch.Tensor]:
        if (entry, seed) not in cache:
            entries = gen_weights.load_entries(str(keys), entry) if keys.exists() else gen_weights.entries_for(entry)
            cache[entry, seed] = gen_weights.make_state_dict(entries, seed)
        return cache[entry, seed]

    return make


@pytest.fixture(scope="session")
def seed7_ckpt(make_weights, tmp_path_factory) -> Path:
    """An official-layout MattingRefine mobilenetv2 checkpoint with the seed-7 reference weights.

    ../shared/reference/fixtures/mobilenetv2_seed7.pth when present; else the same tensors written
    the way the official files are (``torch.save(model.state_dict())``).
    """
    shared = REFERENCE / "fixtures" / "mobilenetv2_seed7.pth"
    if shared.exists():
        return shared
    from cleanplate.models.matting import MattingRefine

    net = MattingRefine("mobilenetv2")
    net.load_state_dict(make_weights("refine_mobilenetv2", 7), strict=True)
    path = tmp_path_factory.mktemp("weights") / "mobilenetv2_seed7.pth"
    torch.save(net.state_dict(), path)
    return path
