"""Where the read-only shared material lives (../shared beside the checkout, or $CLEANPLATE_SHARED)."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CLEANPLATE_SHARED", ROOT.parent / "shared"))
REFERENCE = SHARED / "reference"
DATA = SHARED / "data"
