"""The Explain tab's visual defects of issue 30, in a real browser (Debian's Chromium via
Playwright): no ghost mask beside a non-square photo, a failed load puts no other component
into an error state, and the phone layout keeps the samples and the comparison.

One tiny app is launched for the module; each test opens its own page (its own session).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from ui_fixtures import launch_tiny_app

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.browser,
    pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="needs /usr/bin/chromium"),
]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    pytest.importorskip("playwright")
    demo, url = launch_tiny_app(tmp_path_factory.mktemp("explain-browser"))
    yield url
    demo.close()


@pytest.fixture()
def page_at(app_url):
    """A function (width) → a fresh page of the app at that viewport width, editor drawn."""
    from playwright.sync_api import sync_playwright

    from scripts.screenshot import CHROMIUM, CHROMIUM_ARGS, _open_app

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                             headless=True)

        def open_page(width: int):
            page = browser.new_page(viewport={"width": width, "height": 1250})
            page.set_default_timeout(60_000)
            _open_app(page, app_url)
            return page

        try:
            yield open_page
        finally:
            browser.close()


def _editor_pixels(page) -> np.ndarray:
    """The mask editor's block as an (H, W, 3) uint8 screenshot."""
    import io

    shot = page.locator("#mask-editor").screenshot()
    return np.asarray(Image.open(io.BytesIO(shot)).convert("RGB")).astype(np.int16)


def _green_on_blank(before: np.ndarray, after: np.ndarray) -> int:
    """Pixels that were blank (near white: no image there) before and are mask-green after."""
    blank = (before > 235).all(axis=2)
    red, green, blue = after[..., 0], after[..., 1], after[..., 2]
    greenish = (green > 180) & (green - red > 50) & (green - blue > 25)
    return int((blank & greenish).sum())


@pytest.mark.parametrize("button", ["Auto mask: threshold", "Auto mask: GrabCut"])
def test_auto_mask_on_a_wide_photo_draws_no_ghost_mask(page_at, tmp_path, button):
    """Defect 2: chelsea (451×300 JPEG), then an automatic mask: the tinted mask lies on the
    image only; no enlarged, shifted copy of it appears beside or below the image."""
    from skimage import data

    photo = tmp_path / "chelsea.jpg"
    Image.fromarray(data.chelsea()).save(photo)
    page = page_at(1500)
    page.locator("#image-upload input[type=file]").set_input_files(str(photo))
    time.sleep(3.0)  # the editor lays the background out (no event to wait for)
    before = _editor_pixels(page)
    page.get_by_role("button", name=button).click()
    time.sleep(5.0)  # the mask is drawn by WebGL after the answer (no event to wait for)
    after = _editor_pixels(page)
    assert before.shape == after.shape
    assert _green_on_blank(before, after) < 50, "a copy of the mask is drawn outside the image"
    assert (after != before).any(axis=2).mean() > 0.02, "the mask should be drawn on the image"
