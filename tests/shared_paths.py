"""Where the test material lives: the committed assets, and the read-only ../shared beside the checkout.

``CLEANPLATE_SHARED`` overrides the shared folder (point it at a missing folder to run the suite as
a fresh clone would: only the parity tests skip).
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "tests" / "assets" / "data"
SHARED = Path(os.environ.get("CLEANPLATE_SHARED", ROOT.parent / "shared"))
REFERENCE = SHARED / "reference"
DATA = SHARED / "data"
