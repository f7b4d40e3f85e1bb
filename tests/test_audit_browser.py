"""The Audit tab, the session report and the labels, in a real browser (Debian's Chromium via
Playwright): the report opens with no network, an audit fills the gallery and a click opens
the image in Explain, no label, button or caption covers the biased image or a gallery picture,
and no upload zone is cut off."""

from __future__ import annotations

from pathlib import Path

import pytest
from ui_fixtures import launch_tiny_app, make_context, object_image

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.browser,
    pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="needs /usr/bin/chromium"),
]


def _browser(playwright):
    from scripts.screenshot import CHROMIUM, CHROMIUM_ARGS

    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                      headless=True)


def test_session_report_opens_offline(tmp_path):
    pytest.importorskip("playwright")
    from playwright.sync_api import sync_playwright

    from explorer.handlers import export as hx
    from explorer.handlers.explain import explain_models

    ctx = make_context(tmp_path)
    entries = [ctx.store.get(i, None) for i in ctx.default_pair]
    image, mask = object_image(0)
    pair = explain_models(ctx, entries, image, mask)
    hx.record_pair(ctx, "s", "explain", "Explain", pair, entries, {})
    report = Path(hx.session_report(ctx, "s"))
    requests: list[str] = []
    with sync_playwright() as playwright:
        browser = _browser(playwright)
        try:
            context = browser.new_context(offline=True)
            page = context.new_page()
            page.on("request", lambda request: requests.append(request.url))
            page.goto(report.as_uri())
            widths = page.eval_on_selector_all("img", "els => els.map(e => e.naturalWidth)")
            title = page.title()
        finally:
            browser.close()
    assert title.startswith("ISNet Explorer") and len(widths) >= 4 and min(widths) > 0
    assert all(url.startswith(("file:", "data:")) for url in requests), requests


def _covering(page, image_selector: str) -> list[str]:
    """Visible labels, badges, buttons and gallery captions whose box overlaps the image's box
    (the image's own wrappers, which contain it, do not count)."""
    return page.eval_on_selector(image_selector, """image => {
        const box = image.getBoundingClientRect();
        const found = [];
        for (const e of document.querySelectorAll(
                "[data-testid='block-label'], label, button, .icon-button, .caption-label")) {
            if (e.contains(image)) continue;
            const r = e.getBoundingClientRect();
            const shown = r.width > 0 && r.height > 0
                && getComputedStyle(e).visibility !== "hidden";
            if (shown && r.left < box.right && box.left < r.right && r.top < box.bottom
                    && box.top < r.bottom) found.push(e.outerHTML.slice(0, 120));
        }
        return found;
    }""")


def _clipped_upload_text(page) -> list[str]:
    """Text of visible upload drop zones ("Drop File Here", "Click to Upload") that runs out of
    its block's box, where the block cuts it off."""
    return page.evaluate("""() => {
        const found = [];
        for (const zone of document.querySelectorAll(".upload-container")) {
            const box = zone.closest(".block").getBoundingClientRect();
            if (box.width === 0 || box.height === 0) continue;
            const walker = document.createTreeWalker(zone, NodeFilter.SHOW_TEXT);
            for (let node = walker.nextNode(); node; node = walker.nextNode()) {
                if (!node.textContent.trim()) continue;
                const range = document.createRange();
                range.selectNodeContents(node);
                const r = range.getBoundingClientRect();
                if (r.height > 0 && (r.bottom > box.bottom + 1 || r.top < box.top - 1))
                    found.push(node.textContent.trim());
            }
        }
        return found;
    }""")


def _covered_upload_icons(page) -> list[str]:
    """Labels of visible upload blocks whose floating label covers the drop zone's upload icon."""
    return page.evaluate("""() => {
        const found = [];
        for (const icon of document.querySelectorAll("[data-testid='upload-icon']")) {
            const label = icon.closest(".block")?.querySelector("[data-testid='block-label']");
            const a = icon.getBoundingClientRect();
            if (!label || a.width === 0 || a.height === 0) continue;
            const b = label.getBoundingClientRect();
            if (a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom)
                found.push(label.textContent.trim());
        }
        return found;
    }""")


def _words_split(page, selector: str) -> list[str]:
    """Words inside ``selector`` that the browser breaks over two lines ("unbias|ed")."""
    return page.eval_on_selector_all(selector, """cells => {
        const found = [];
        for (const cell of cells) {
            const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
            for (let node = walker.nextNode(); node; node = walker.nextNode()) {
                for (const match of node.textContent.matchAll(/\\S+/g)) {
                    const range = document.createRange();
                    range.setStart(node, match.index);
                    range.setEnd(node, match.index + match[0].length);
                    const lines = new Set([...range.getClientRects()]
                        .filter(r => r.width > 0).map(r => Math.round(r.top)));
                    if (lines.size > 1) found.push(match[0]);
                }
            }
        }
        return found;
    }""")


def _clipped_captions(page, gallery: str) -> list[str]:
    """Gallery captions that run out of the gallery's visible box (cut off or scrolled away)."""
    return page.eval_on_selector(gallery, """gallery => {
        const box = gallery.getBoundingClientRect();
        return [...gallery.querySelectorAll(".caption-label")].filter(c => {
            const r = c.getBoundingClientRect();
            return r.bottom > box.bottom + 1 || r.top < box.top - 1;
        }).map(c => c.textContent.trim());
    }""")


def test_audit_tab_and_no_label_covers_the_biased_image(tmp_path, monkeypatch):
    pytest.importorskip("playwright")
    from playwright.sync_api import expect, sync_playwright

    from scripts.screenshot import _open_app

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    demo, url = launch_tiny_app(tmp_path)
    try:
        with sync_playwright() as playwright:
            browser = _browser(playwright)
            try:
                page = browser.new_page(viewport={"width": 1500, "height": 1250})
                page.set_default_timeout(90_000)
                _open_app(page, url)
                for tab in ("Fine-tune", "Models", "Audit", "Explain"):  # uploads drawn whole
                    page.get_by_role("tab", name=tab).click()
                    expect(page.get_by_role("tab", name=tab)).to_have_attribute(
                        "aria-selected", "true")
                    expect(page.locator(".upload-container:visible").first).to_be_visible()
                    assert _clipped_upload_text(page) == [], tab
                    assert _covered_upload_icons(page) == [], tab
                # a sample with its mask, then the Bias lab's biased image
                page.get_by_label("Sample image").click()
                page.get_by_role("option", name="square_0").click()
                # loaded when its true class shows (no fixed wait: a busy machine is slower)
                expect(page.get_by_label("True class (if known)")).to_have_value(
                    "square", timeout=60_000)
                assert _covering(page, "#sample-gallery img") == []  # captions below
                page.get_by_role("tab", name="Bias lab").click()
                page.locator("#inject-button").click()
                expect(page.locator("#biased-image img")).to_be_visible(timeout=60_000)
                expect(page.locator("#bias-left-overlay img")).to_be_visible(timeout=60_000)
                for selector in ("#biased-image img", "#bias-left-overlay img",
                                 "#bias-right-heatmap img"):
                    assert _covering(page, selector) == [], selector
                # on a phone, the summary tables wrap between words, never inside one
                page.set_viewport_size({"width": 420, "height": 900})
                expect(page.locator(".table-text td").first).to_be_visible(timeout=60_000)
                cells = ".table-text th, .table-text td:not(:first-child)"
                assert _words_split(page, cells) == []
                # (the tiny app's names are short: check the rule too, which real names need)
                assert page.eval_on_selector_all(cells, """cells => cells.filter(c => {
                    const style = getComputedStyle(c);
                    return style.overflowWrap !== "normal" || style.wordBreak !== "normal";
                }).length""") == 0
                page.set_viewport_size({"width": 1500, "height": 1250})
                # the Audit tab: audit a small bundled split, open the top image in Explain
                page.get_by_role("tab", name="Audit").click()
                count = page.get_by_role("spinbutton", name="number input for Images from")
                count.fill("40")
                count.press("Tab")
                page.locator("#audit-button").click()
                expect(page.locator("#audit-status")).to_contain_text("Done", timeout=120_000)
                expect(page.locator("#audit-summary")).to_contain_text("Tiny standard",
                                                                       timeout=60_000)
                expect(page.locator("#audit-gallery img").first).to_be_visible(timeout=60_000)
                assert page.locator("#audit-gallery img").count() == 24  # the top 24 of 40
                assert _covering(page, "#audit-gallery img") == []
                # strategies: each mean heatmap's caption shows whole, below its picture
                page.get_by_role("button", name="Find strategies").click()
                expect(page.locator("#audit-strategies img").first).to_be_visible(
                    timeout=60_000)
                expect(page.locator("#audit-strategies .caption-label").first).to_contain_text(
                    "strategy 1")
                assert _clipped_captions(page, "#audit-strategies") == []
                assert _covering(page, "#audit-strategies img") == []
                # the arena's headers break between words, never inside one
                page.get_by_role("tab", name="Arena").click()
                expect(page.locator("#arena-table th").first).to_be_visible(timeout=60_000)
                assert page.locator("#arena-table th").count() >= 10
                assert _words_split(page, "#arena-table th") == []
                page.get_by_role("tab", name="Audit").click()
                page.locator("#audit-gallery img").first.click()
                expect(page.get_by_role("tab", name="Explain")).to_have_attribute(
                    "aria-selected", "true", timeout=60_000)
                expect(page.locator("#mask-editor canvas").last).to_be_visible(timeout=60_000)
            finally:
                browser.close()
    finally:
        demo.close()
