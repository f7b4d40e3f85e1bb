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


def _error_boxes(page) -> list[str]:
    """The visible red "Error" boxes Gradio draws over components whose event failed (toasts,
    which go away by themselves, are not counted)."""
    return page.evaluate("""() => [...document.querySelectorAll('.error')].filter(e => {
            const r = e.getBoundingClientRect();
            return r.width > 0 && r.height > 0 && e.textContent.trim() === 'Error'
                && !e.closest('.toast-wrap, [data-testid="toast-body"]');
        }).map(e => (e.closest('[id]') || e).id || e.className)""")


def test_a_failed_load_puts_no_other_component_in_an_error_state(page_at, tmp_path):
    """Defect 4: a checkpoint that is no checkpoint fails to load; Explain's model pickers and
    the model cards stay usable (at most the loaded-model card itself shows the failure)."""
    bad = tmp_path / "notes.pt"
    bad.write_text("not a checkpoint")
    page = page_at(1500)
    page.get_by_role("tab", name="Models").click()
    page.locator("#checkpoint-upload input[type=file]").set_input_files(str(bad))
    time.sleep(1.0)
    page.get_by_role("button", name="Load checkpoint").click()
    page.get_by_text("not a checkpoint").first.wait_for()  # the refusal is shown
    time.sleep(1.0)
    assert len(_error_boxes(page)) <= 1, _error_boxes(page)
    page.get_by_role("tab", name="Explain").click()
    time.sleep(0.5)
    assert _error_boxes(page) == []


def _box(page, selector: str) -> dict:
    box = page.locator(selector).first.bounding_box()
    assert box is not None, f"{selector} is not shown"
    return box


def test_at_420_px_samples_show_and_the_two_maps_sit_side_by_side(page_at):
    """Defect 11 on a phone: the samples the help text says to click are there; the shares read
    "—" before a run; after Explain the two models' maps sit side by side, both on screen; an ε
    of −3 is named at its field at once."""
    page = page_at(420)
    gallery = page.locator("#sample-gallery img").first
    gallery.wait_for()
    assert _box(page, "#sample-gallery img")["width"] > 30
    for side in ("left", "right"):
        assert "—" in page.locator(f"#{side}-share-pending").inner_text()
        assert not page.locator(f"#{side}-share input").is_visible()  # it would read "0"
    gallery.click()
    time.sleep(3.0)  # the sample reaches the editor (no event to wait for)
    page.locator("#explain-button").click()
    page.locator("#left-overlay").scroll_into_view_if_needed()  # the pictures load lazily
    for side in ("left", "right"):
        page.locator(f"#{side}-overlay img").wait_for()
    left, right = _box(page, "#left-overlay img"), _box(page, "#right-overlay img")
    assert abs(left["y"] - right["y"]) < 5, (left, right)
    assert left["x"] + left["width"] <= right["x"] + 1 and right["x"] + right["width"] <= 420
    page.locator("#left-share input").wait_for()  # the share replaces the "—"
    assert not page.locator("#left-share-pending").is_visible()
    page.locator("#epsilon input").fill("-3")
    page.get_by_text("cannot be negative").first.wait_for(timeout=15_000)
