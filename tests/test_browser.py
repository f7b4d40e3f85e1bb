"""A real browser (Debian's Chromium driven by Playwright) uses the explorer like a person:
upload an image, paint a mask stroke, press Explain, and sees two heatmaps."""

import shutil
from pathlib import Path

import pytest
from PIL import Image
from ui_fixtures import launch_tiny_app, object_image

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.browser,
    pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="needs /usr/bin/chromium"),
]


def test_upload_paint_explain_shows_two_heatmaps(tmp_path, monkeypatch):
    pytest.importorskip("playwright")
    from scripts.screenshot import journey

    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    demo, url = launch_tiny_app(tmp_path)
    image, _ = object_image(1, size=128)
    Image.fromarray(image).save(tmp_path / "upload.png")
    try:
        result = journey(url, tmp_path / "upload.png", tmp_path / "screenshot.png")
    finally:
        demo.close()
    assert result.left_src and result.right_src and result.left_src != result.right_src
    assert result.painted, "the painted stroke should give both models a background share"
    assert "Tiny standard" in result.summary and "Tiny ISNet" in result.summary
    assert (tmp_path / "screenshot.png").stat().st_size > 10_000
    shutil.rmtree(tmp_path / "gradio", ignore_errors=True)
