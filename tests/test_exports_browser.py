"""Issue 30 defects 6 and 8 in a real browser (Debian's Chromium via Playwright): the export's
download buttons are disabled until Export has written their files, and uploading a zip in the
Audit tab chooses "uploaded zip" as the images to audit."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from ui_fixtures import launch_tiny_app, write_samples

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.browser,
    pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="needs /usr/bin/chromium"),
]


def test_download_buttons_wait_for_their_files_and_a_zip_chooses_itself(tmp_path, monkeypatch):
    pytest.importorskip("playwright")
    from playwright.sync_api import expect, sync_playwright

    from scripts.screenshot import CHROMIUM, CHROMIUM_ARGS, _open_app

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    images, _ = write_samples(tmp_path / "set")
    for image in images.glob("*.png"):  # class folders: circle/circle_0.png, ...
        (images / image.stem.split("_")[0]).mkdir(exist_ok=True)
        image.rename(images / image.stem.split("_")[0] / image.name)
    upload = shutil.make_archive(str(tmp_path / "set"), "zip", images)
    demo, url = launch_tiny_app(tmp_path)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                                 headless=True)
            try:
                page = browser.new_page(viewport={"width": 1500, "height": 1250})
                page.set_default_timeout(90_000)
                _open_app(page, url)
                page.locator("#export").get_by_text("Export this view").click()
                for name in ("Figure (PNG)", "Numbers (JSON)", "Heatmaps (.npy)",
                             "Download the report"):
                    expect(page.get_by_role("button", name=name)).to_be_disabled()
                page.get_by_label("Sample image").click()
                page.get_by_role("option", name="square_0").click()
                expect(page.get_by_label("True class (if known)")).to_have_value(
                    "square", timeout=60_000)
                page.locator("#explain-button").click()
                expect(page.locator("#explain-summary")).to_contain_text("Tiny", timeout=60_000)
                page.get_by_role("button", name="Export", exact=True).click()
                expect(page.get_by_role("button", name="Numbers (JSON)")).to_be_enabled(
                    timeout=60_000)
                page.get_by_role("tab", name="Audit").click()
                page.locator("#audit-upload input[type=file]").set_input_files(upload)
                expect(page.get_by_role("combobox", name="Images")).to_have_value("uploaded zip",
                                                                  timeout=60_000)
            finally:
                browser.close()
    finally:
        demo.close()
