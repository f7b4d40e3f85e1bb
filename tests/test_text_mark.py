"""The text mark's pixels are pinned: drawn with Pillow and the bundled DejaVu Sans Bold
(``assets/fonts/``), never with OpenCV's Hershey fonts (issue 35 item 2).

The robustness table's *text* column moved by 0.4 points between OpenCV versions; a drawing
change of any kind (font, size rule, centring, reduction) now fails here first.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from isnet.data.bias import marks

# SHA-256 of round(alpha · 255 · 16) as uint16 (the 4 × 4 supersampled canvas sums, exact)
PINNED = {
    ("A", 10): ((10, 11), "43036ca43723e00006fc26d3ae1b0be35a5c9a1974a9e0292233b9c05ff00187"),
    ("J", 9): ((9, 6), "39d38251ef9c12cf8ceb94a297532b6b9599f85c702f9c73cf1d1b752fbcf3ce"),
    ("AB", 16): ((16, 30), "fd825422b2ee12cf7fbf0eca2195db996e1df11cb010c44044759d1de7fceeb7"),
    ("Hi!", 12): ((12, 24), "9c69d3eae5131642eba2eb8122ad085c12e6bdcf69193cc05694fe525f817627"),
}


def _canvas_sums(stamp: np.ndarray) -> np.ndarray:
    """The stamp as the integer sums of its 4 × 4 blocks of 0–255 canvas pixels."""
    sums = np.round(stamp.astype(np.float64) * 255 * 16)
    assert np.abs(sums / (255 * 16) - stamp).max() < 1e-6, "not an area average of a uint8 canvas"
    return sums.astype(np.uint16)


@pytest.mark.parametrize(("text", "height"), list(PINNED))
def test_text_mark_pixels_are_pinned(text: str, height: int) -> None:
    shape, digest = PINNED[(text, height)]
    stamp = marks.text_stamp(text, height)
    assert stamp.dtype == np.float32 and stamp.shape == shape
    assert hashlib.sha256(_canvas_sums(stamp).tobytes()).hexdigest() == digest


def test_capital_i_is_a_centred_bar_of_the_cap_height() -> None:
    """Hand-checked: at 12 px the canvas is 48 px high and the font 53 px per em (0.8 · 48 /
    0.729). The I's cap height, 0.729 em = 39 canvas px, is centred (rows 4–42 of 48), so the
    bar covers stamp rows 1–9 fully and row 10 by three quarters; its stem (~10 canvas px) sits
    in the middle of a 7 px stamp, columns 2–4, the middle one fully."""
    stamp = marks.text_stamp("I", 12)
    assert stamp.shape == (12, 7)
    assert not stamp[[0, 11]].any() and not stamp[:, [0, 1, 5, 6]].any()
    np.testing.assert_array_equal(stamp[1:10], np.broadcast_to(stamp[1], (9, 7)))
    assert stamp[1, 3] == 1.0 and 0.6 < stamp[1, 2] < 1.0 and 0.6 < stamp[1, 4] < 1.0
    np.testing.assert_allclose(stamp[10], 0.75 * stamp[9], atol=0.5 / 255)


def test_text_mark_does_not_use_opencv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(marks, "cv2", None)  # any cv2 call would now raise AttributeError
    assert marks.text_stamp("Z", 9).shape[0] == 9


def test_missing_font_says_where_it_belongs(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    marks._text_font.cache_clear()
    monkeypatch.setattr(marks, "TEXT_FONT", tmp_path / "absent.ttf")
    try:
        with pytest.raises(FileNotFoundError, match="assets/fonts"):
            marks.text_stamp("A", 10)
    finally:
        marks._text_font.cache_clear()
