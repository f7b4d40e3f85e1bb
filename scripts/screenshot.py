"""A real-browser journey through the explorer, and the README screenshot.

``python -m scripts.screenshot [--out docs/screenshot.png] [--image PATH]`` starts the explorer
with its default models (bundled checkpoints when present), drives Debian's Chromium with
Playwright (never ``playwright install``): upload an image, paint a mask stroke, press Explain,
wait for both heatmaps, and saves a screenshot. ``tests/test_browser.py`` runs the same
:func:`journey` against tiny models.

``python -m scripts.screenshot --tour docs`` instead saves the Explain, Bias lab and Audit views
at 1500 px and 420 px wide (``docs/<view>-<width>.png``, palette PNGs under 500 KB; with
``--dark``, Gradio's dark mode (``?__theme=dark``) and ``docs/<view>-<width>-dark.png``):
:func:`tour` explains a bundled sample, plants a mark, audits 200 test images (100 marked,
the same 100 clean) and finds the strategies of one class.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


@dataclass
class JourneyResult:
    """What the browser saw: the two overlay image sources and the summary text."""

    left_src: str
    right_src: str
    summary: str
    painted: bool


def _paint_stroke(page) -> None:
    """Choose the brush and drag a stroke across the middle of the editor's canvas."""
    editor = page.locator("#mask-editor")
    editor.get_by_role("button", name="Brush", exact=True).first.click()
    canvas = editor.locator("canvas").last
    box = canvas.bounding_box()
    if box is None:
        raise RuntimeError("the mask editor's canvas is not visible")
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx - box["width"] * 0.15, cy - box["height"] * 0.1)
    page.mouse.down()
    for step in range(1, 11):
        page.mouse.move(cx - box["width"] * 0.15 + step * box["width"] * 0.03,
                        cy - box["height"] * 0.1 + step * box["height"] * 0.02)
    page.mouse.up()


def _open_app(page, url: str, attempts: int = 2, timeout_ms: float = 60_000) -> None:
    """Load the app until its mask editor is drawn (a page whose WebGL canvas never appears,
    which a starved software renderer sometimes does, is loaded once more); each try waits up to
    ``timeout_ms`` (a busy machine draws slowly)."""
    from playwright.sync_api import expect

    for attempt in range(attempts):
        page.goto(url) if attempt == 0 else page.reload()
        try:
            expect(page.locator("#mask-editor canvas").last).to_be_visible(timeout=timeout_ms)
            expect(page.locator("#explain-button")).to_be_visible(timeout=timeout_ms)
            return
        except AssertionError:
            if attempt == attempts - 1:
                raise


def _summary_painted(page) -> bool:
    """Whether the Explain summary shows a background share for every model (no "—")."""
    text = page.locator("#explain-summary").inner_text()
    return "background share" in text and "—" not in text.split("Shared colour scale")[0]


def _explain_until_painted(page, attempts: int = 3, settle_s: float = 10.0) -> bool:
    """Paint a stroke and press Explain until the answer shows the stroke as a mask.

    A stroke drawn before the editor has laid its background out can be lost; the result says
    so (no background share), and the stroke is drawn again. Each answer is polled for, never
    waited for by a fixed delay alone.
    """
    from playwright.sync_api import expect

    for attempt in range(attempts):
        _paint_stroke(page)
        page.locator("#explain-button").click()
        for side in ("left", "right"):
            expect(page.locator(f"#{side}-overlay img")).to_be_visible()
            expect(page.locator(f"#{side}-heatmap img")).to_be_visible()
        expect(page.locator("#explain-summary")).to_contain_text("background share")
        deadline = time.monotonic() + (settle_s if attempt < attempts - 1 else 0.0)
        while True:
            if _summary_painted(page):
                return True
            if time.monotonic() >= deadline:
                break
            time.sleep(0.2)
    return False


def journey(url: str, image: str | Path, screenshot: str | Path | None = None,
            timeout_ms: int = 60_000, auto_mask: bool = False) -> JourneyResult:
    """Upload ``image``, paint a mask stroke, explain, wait for both heatmaps; screenshot.

    With ``auto_mask`` the threshold mask is made first and the stroke corrects it.

    Raises:
        playwright.sync_api.TimeoutError: a step did not show its result in time.
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                             headless=True)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1250})
            page.set_default_timeout(timeout_ms)
            _open_app(page, url, timeout_ms=timeout_ms)
            page.locator("#image-upload input[type=file]").set_input_files(str(image))
            time.sleep(1.0)  # let the editor lay the background out (a lost stroke is redrawn)
            if auto_mask:
                page.get_by_role("button", name="Auto mask: threshold").click()
                time.sleep(2.0)
            painted = _explain_until_painted(page)
            summary = page.locator("#explain-summary").inner_text()
            if screenshot is not None:
                Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(screenshot), full_page=True)
            return JourneyResult(page.locator("#left-overlay img").get_attribute("src") or "",
                                 page.locator("#right-overlay img").get_attribute("src") or "",
                                 summary, painted)
        finally:
            browser.close()


def _save(page, path: Path, limit: int = 500_000) -> Path:
    """A full-page screenshot as a palette PNG (shrunk until it is under ``limit`` bytes)."""
    import io

    from PIL import Image

    shot = Image.open(io.BytesIO(page.screenshot(full_page=True))).convert("RGB")
    colours = 256
    while True:
        buffer = io.BytesIO()
        shot.quantize(colours, dither=Image.Dither.NONE).save(buffer, "PNG", optimize=True)
        if buffer.tell() < limit or colours <= 16:
            break
        colours //= 2
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())
    return path


def _both_widths(page, folder: Path, view: str, widths: tuple[int, ...],
                 suffix: str = "") -> list[Path]:
    """Screenshots of the current view at each width (the page is reflowed, not reloaded)."""
    saved = []
    for width in widths:
        page.set_viewport_size({"width": width, "height": 1000})
        time.sleep(1.0)
        saved.append(_save(page, folder / f"{view}-{width}{suffix}.png"))
    page.set_viewport_size({"width": widths[0], "height": 1000})
    return saved


def tour(url: str, sample: str, folder: str | Path, widths: tuple[int, ...] = (1500, 420),
         timeout_ms: int = 300_000, dark: bool = False) -> list[Path]:
    """Save the Explain, Bias lab, Audit and Arena views of a running explorer at each width.

    Args:
        sample: the name of a bundled sample (it has a mask and a true class).
        dark: in Gradio's dark mode (files named ``<view>-<width>-dark.png``).
    """
    suffix = "-dark" if dark else ""
    url = f"{url.rstrip('/')}/?__theme=dark" if dark else url
    from playwright.sync_api import expect, sync_playwright

    folder = Path(folder)
    expect.set_options(timeout=timeout_ms)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                             headless=True)
        try:
            page = browser.new_page(viewport={"width": widths[0], "height": 1000})
            page.set_default_timeout(timeout_ms)
            _open_app(page, url, timeout_ms=timeout_ms)
            page.get_by_label("Sample image").click()
            page.get_by_role("option", name=sample, exact=True).click()
            expect(page.get_by_label("True class (if known)")).not_to_have_value("")  # loaded
            page.locator("#explain-button").click()
            expect(page.locator("#explain-summary")).to_contain_text("background share")
            saved = _both_widths(page, folder, "explain", widths, suffix)
            page.get_by_role("tab", name="Bias lab").click()
            page.locator("#inject-button").click()
            expect(page.locator("#bias-left-overlay img")).to_be_visible()
            time.sleep(1.0)
            saved += _both_widths(page, folder, "bias-lab", widths, suffix)
            page.get_by_role("tab", name="Audit").click()
            page.get_by_label("Images", exact=True).click()
            page.get_by_role("option", name="bundled: half marked, half clean").click()
            page.locator("#audit-button").click()
            expect(page.locator("#audit-status")).to_contain_text("Done")
            page.get_by_role("button", name="Find strategies").click()
            expect(page.locator("#audit-strategies img").first).to_be_visible()
            page.locator("#audit-strategies img").first.click()
            time.sleep(2.0)
            saved += _both_widths(page, folder, "audit", widths, suffix)
            page.get_by_role("tab", name="Arena").click()
            page.get_by_role("button", name="Reload results").click()
            expect(page.locator("#arena-table")).to_contain_text("ISNet")
            time.sleep(1.5)
            saved += _both_widths(page, folder, "arena", widths, suffix)
            return saved
        finally:
            browser.close()


def main(argv: list[str] | None = None) -> int:
    """Launch the explorer with its default models and save the README screenshot."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/screenshot.png")
    parser.add_argument("--image", default=None, help="image to upload (default: a sample)")
    parser.add_argument("--checkpoint", nargs=2, metavar=("STANDARD", "ISNET"))
    parser.add_argument("--tour", metavar="FOLDER", default=None,
                        help="save Explain, Bias lab, Audit, Arena (1500 and 420 px) to FOLDER")
    parser.add_argument("--dark", action="store_true", help="the tour in Gradio's dark mode")
    args = parser.parse_args(argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import torch

    from explorer.app import build_demo
    from explorer.theme import CSS, THEME

    torch.set_num_threads(1)  # as python app.py does
    demo = build_demo(checkpoints=args.checkpoint)
    samples = demo.explorer_context.samples
    labelled = [s for s in samples if s.label] or samples
    image = args.image or (labelled[-2].image_path if len(labelled) > 1 else
                           labelled[0].image_path if labelled else None)
    if image is None:
        parser.error("no sample image found; pass --image")
    demo.queue()
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True,
                            theme=THEME, css=CSS)
    try:
        if args.tour:
            name = next(s.name for s in samples if s.image_path == image)
            for path in tour(url, name, args.tour, dark=args.dark):
                print(f"saved {path} ({path.stat().st_size // 1000} KB)")
            return 0
        result = journey(url, image, args.out, auto_mask=True)
    finally:
        demo.close()
    print(f"saved {args.out} (mask painted: {result.painted})\n{result.summary}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
