"""Regenerate docs/serve_screenshot.png: the browser app after matting the bundled carpark sample.

    python docs/make_serve_screenshot.py

It runs the end-to-end browser test (tests/serve/test_browser.py: a real server with the
built-in model, headless Chromium through Playwright) and keeps the screenshot that test takes,
so the README's picture is exactly what the test checked. Needs ``chromium`` (Debian package) and
the dev extra.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "docs" / "serve_screenshot.png"

if __name__ == "__main__":
    env = {**os.environ, "CLEANPLATE_SCREENSHOT": str(TARGET), "CI": "true"}  # CI: fail, never skip
    test = "tests/serve/test_browser.py::test_browser_app_mattes_the_sample"
    code = subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test], cwd=ROOT, env=env)
    if code == 0:
        print(f"wrote {TARGET.relative_to(ROOT)}")
    sys.exit(code)
