"""End to end in headless Chromium: the browser app mattes the bundled sample and shows the composite.

Driven by Playwright with Debian's ``chromium`` (``executable_path``; Playwright's own browser
downloads are never used). Outside CI a missing browser skips with the reason; with ``CI=true``
it fails instead, so CI cannot silently stop testing the app.

``CLEANPLATE_SCREENSHOT=docs/serve_screenshot.png`` also writes the README's screenshot
(``python docs/make_serve_screenshot.py`` does that).
"""

from __future__ import annotations

import base64
import io
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cleanplate.samples import sample_pair

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
COMP_COLOR = (0, 177, 64)  # the app's default background colour, #00b140


def _chromium() -> str:
    """Path of a Chromium to drive; skips (fails with CI=true) when there is none."""
    wanted = os.environ.get("CLEANPLATE_CHROMIUM")
    if wanted:
        found = wanted if Path(wanted).is_file() else None
    else:
        found = next((p for p in CHROMIUM_CANDIDATES if Path(p).exists()), None) or shutil.which("chromium")
    reason = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        reason = "playwright is not installed (pip install 'cleanplate[dev]')"
    if reason is None and not found:
        reason = f"no Chromium at {wanted}" if wanted else "no Chromium found (apt-get install chromium)"
    if reason is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI must run the browser test: {reason}")
        pytest.skip(reason)
    return found


def _until(page, expression: str, timeout: float = 30.0) -> None:
    """Poll a JS expression from Python (the app's CSP forbids the eval behind wait_for_function)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"not true within {timeout} s: {expression}"
        page.wait_for_timeout(50)


@pytest.mark.parametrize("ci", ["true", ""])
def test_a_missing_browser_skips_outside_ci_and_fails_in_ci(monkeypatch, tmp_path: Path, ci: str) -> None:
    monkeypatch.setenv("CLEANPLATE_CHROMIUM", str(tmp_path / "no-chromium"))
    monkeypatch.setenv("CI", ci)
    expected = pytest.fail.Exception if ci else pytest.skip.Exception
    with pytest.raises(expected, match="no Chromium at"):
        _chromium()


@pytest.fixture(scope="module")
def browser():
    path = _chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, headless=True, args=["--no-sandbox"])
        yield browser
        browser.close()


def _composite_pixels(page) -> np.ndarray:
    """The composite canvas, read back losslessly (as a PNG data URL) as uint8 H×W×3."""
    url = page.evaluate("() => document.getElementById('view-comp').toDataURL('image/png')")
    assert url.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB"))


@pytest.mark.slow
def test_browser_app_mattes_the_sample(serve, browser, tmp_path: Path) -> None:
    live = serve(model="default")
    src, plate = sample_pair("carpark")
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.goto(live.url + "/")
    page.wait_for_selector("main[data-ready='true']")

    # keyboard: the controls are real, focusable elements
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    page.locator("#subject").set_input_files(str(src))
    page.locator("#plate").set_input_files(str(plate))
    page.locator("#run").focus()
    page.keyboard.press("Enter")
    page.wait_for_selector("main[data-state='done']", timeout=120_000)
    status = page.inner_text("#status")
    assert status.startswith("Done"), status

    # the server's own answer, for comparison: the RGBA PNG the app received
    with live.client() as c:
        r = c.post("/v1/matte", files={"image": src.read_bytes(), "plate": plate.read_bytes()})
    assert r.status_code == 200
    rgba = np.asarray(Image.open(io.BytesIO(r.content)), np.float32)
    a = rgba[..., 3:] / 255
    expected = rgba[..., :3] * a + np.array(COMP_COLOR, np.float32) * (1 - a)

    comp = _composite_pixels(page).astype(np.float32)
    assert comp.shape == expected.shape
    diff = np.abs(comp - expected)
    assert diff.mean() < 1.0 and np.percentile(diff, 99.5) <= 4, (diff.mean(), np.percentile(diff, 99.5))
    # not a trivial picture: both subject and background are there
    background = (np.abs(comp - COMP_COLOR).max(axis=2) <= 3).mean()
    assert 0.3 < background < 0.99, background

    # the alpha view and both downloads are offered
    assert page.locator("#view-alpha").is_visible()
    assert page.locator("#dl-rgba").get_attribute("href").startswith("blob:")
    assert page.locator("#dl-comp").is_visible()

    # switching the background redraws without a request
    page.locator("#bg-checker").check()
    checker = _composite_pixels(page)
    assert np.abs(checker.astype(int) - comp).mean() > 5

    # back to colour for the picture in the README
    page.locator("#bg-color").check()
    shot = tmp_path / "serve_screenshot.png"
    page.screenshot(path=str(shot), full_page=True)
    assert Image.open(shot).size[0] == 1280
    target = os.environ.get("CLEANPLATE_SCREENSHOT")
    if target:
        shutil.copyfile(shot, target)
    assert not errors, errors
    page.close()


def test_browser_app_fits_a_phone(serve, browser) -> None:
    """At phone width nothing scrolls sideways and the panes stack."""
    live = serve()
    page = browser.new_page(viewport={"width": 375, "height": 800})
    page.goto(live.url + "/")
    page.wait_for_selector("main[data-ready='true']")
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= 375, scroll_width
    boxes = [page.locator(sel).bounding_box() for sel in ("#drop-subject", "#drop-plate")]
    assert boxes[1]["y"] > boxes[0]["y"] + boxes[0]["height"] - 1  # stacked, not side by side
    page.close()


def _page_with_pair(browser, live, frame: Path, plate: Path):
    """The app, loaded and ready, with ``frame`` and ``plate`` picked (not yet run)."""
    page = browser.new_page()
    page.goto(live.url + "/")
    page.wait_for_selector("main[data-ready='true']")
    page.locator("#subject").set_input_files(str(frame))
    page.locator("#plate").set_input_files(str(plate))
    return page


def test_browser_app_shows_server_errors(serve, browser, tmp_path: Path) -> None:
    """A plate of another aspect: the problem's one-line detail reaches the page."""
    live = serve()
    frame = tmp_path / "frame.png"
    plate = tmp_path / "plate.png"
    Image.new("RGB", (64, 48), (10, 20, 30)).save(frame)
    Image.new("RGB", (48, 64), (10, 20, 30)).save(plate)
    page = _page_with_pair(browser, live, frame, plate)
    page.locator("#run").click()
    page.wait_for_selector("main[data-state='error']", timeout=60_000)
    assert "aspect" in page.inner_text("#status")
    page.close()


def test_browser_app_shows_a_plate_warning(serve, browser, tmp_path: Path) -> None:
    """With "align" on, a pair too plain to align is still matted, and the page says so."""
    from .conftest import scene

    live = serve()
    frame_arr, plate_arr, _ = scene()
    frame, plate = tmp_path / "frame.png", tmp_path / "plate.png"
    Image.fromarray(frame_arr).save(frame)
    Image.fromarray(plate_arr).save(plate)
    page = _page_with_pair(browser, live, frame, plate)
    page.locator("#align").check()
    page.locator("#run").click()
    page.wait_for_selector("main[data-state='done']", timeout=60_000)
    status = page.inner_text("#status")
    assert status.startswith("Done") and "Warning: plate alignment failed" in status, status
    page.close()


def test_browser_app_mattes_a_video(serve, browser, tmp_path: Path) -> None:
    """A clip and its plate: progress is shown, the result plays in the page and can be downloaded."""
    from .conftest import encode, scene, write_clip

    live = serve()
    clip = write_clip(tmp_path / "take.mp4", n=12)
    plate = tmp_path / "plate.png"
    plate.write_bytes(encode(scene()[1]))
    page = browser.new_page()
    page.goto(live.url + "/")
    page.wait_for_selector("main[data-ready='true']")
    page.locator("#subject").set_input_files(str(clip))
    page.locator("#plate").set_input_files(str(plate))
    assert page.locator("#video-format").is_visible()  # the video choices appear for a clip
    page.locator("#run").click()
    page.wait_for_selector("main[data-state='done']", timeout=120_000)
    assert "12 frames" in page.inner_text("#status")
    assert page.evaluate("document.getElementById('progress').value") == 1
    link = page.locator("#dl-video")
    assert link.is_visible() and link.get_attribute("download") == "cleanplate_rgba.webm"
    with page.expect_download() as download:
        link.click()
    saved = tmp_path / "result.webm"
    download.value.save_as(saved)
    import av

    with av.open(str(saved)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 12
    _until(page, "document.querySelector('#pane-comp video').readyState >= 2")  # it plays in the page
    page.close()


def test_browser_app_captures_from_the_webcam(serve, browser) -> None:
    """Chromium's fake camera: capture the empty scene, then the subject, then matte the pair."""
    live = serve()
    fake_camera = ["--no-sandbox", "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
    camera_browser = browser.browser_type.launch(executable_path=_chromium(), headless=True, args=fake_camera)
    try:
        page = camera_browser.new_page()
        page.goto(live.url + "/")
        page.wait_for_selector("main[data-ready='true']")
        page.locator("#camera summary").click()
        page.locator("#cam-start").click()
        _until(page, "document.getElementById('cam').videoWidth > 0")
        assert page.evaluate("document.activeElement.id") == "cam-plate"  # focus moves to the next step
        page.keyboard.press("Enter")
        page.wait_for_selector("#thumb-plate img")
        page.wait_for_timeout(300)  # the fake camera's picture moves: the second capture differs
        page.locator("#cam-subject").click()
        page.wait_for_selector("#thumb-subject img")
        assert page.evaluate("document.activeElement.id") == "run"
        page.keyboard.press("Enter")
        page.wait_for_selector("main[data-state='done']", timeout=60_000)
        assert page.locator("#view-comp").is_visible()
        page.locator("#cam-stop").click()
    finally:
        camera_browser.close()
