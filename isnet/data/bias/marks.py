"""What a class-correlated background mark looks like: stamps, colours and textures.

This module only *draws* (NumPy + OpenCV for the shapes, Pillow and a bundled font for the
text; no torch, no randomness). Where a mark goes and how
it is blended into an image lives in :mod:`isnet.data.bias`.

A *stamp* is an alpha map (h, w) float32 in [0, 1]: 1 where the mark covers the pixel fully, 0
where it leaves it alone, in between on anti-aliased edges. Stamps are drawn at 4x resolution
and reduced with area averaging, so small marks (8-16 px) keep their shape.

Class encodings (class index ``c`` among ``num_classes``):

* shape: ``SHAPE_NAMES[c % len(SHAPE_NAMES)]``; colour ``class_color(c)``;
* decoy: a filled square whose grey level is ``decoy_gray(c, num_classes)`` (Decoy-MNIST,
  Ross et al. 2017: brighter for lower classes, never black so it shows on black backgrounds);
* text: ``default_text(c)`` (letters A, B, C, ...) or a caller-given word per class;
* tint: the whole background blended towards ``class_color(c)``;
* texture: stripes at angle ``180 * c / num_classes`` degrees, period ``texture_period`` px.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

SHAPE_NAMES: tuple[str, ...] = (
    "circle",
    "square",
    "triangle",
    "cross",
    "star",
    "diamond",
    "ring",
    "hexagon",
)
"""Mark shapes, in the order classes use them."""

# Ten well-separated colours (RGB in [0, 1]); class c uses entry c % 10.
_PALETTE: tuple[tuple[float, float, float], ...] = (
    (0.90, 0.10, 0.10),  # red
    (0.10, 0.45, 0.95),  # blue
    (0.10, 0.80, 0.20),  # green
    (1.00, 0.85, 0.00),  # yellow
    (0.95, 0.45, 0.00),  # orange
    (0.65, 0.20, 0.85),  # purple
    (0.00, 0.85, 0.85),  # cyan
    (1.00, 0.40, 0.75),  # pink
    (0.55, 0.35, 0.15),  # brown
    (1.00, 1.00, 1.00),  # white
)

_SUPERSAMPLE = 4

TEXT_FONT = Path(__file__).resolve().parents[3] / "assets" / "fonts" / "DejaVuSans-Bold.ttf"
"""The text mark's font, bundled with its licence (``assets/fonts/``, see ``assets/README.md``)."""

_CAP_HEIGHT_EM = 0.729
"""DejaVu Sans Bold's capital height as a fraction of the em (729 of 1,000 font units)."""


def class_color(mark_class: int) -> tuple[float, float, float]:
    """Colour that encodes a class in colour-coded marks.

    Args:
        mark_class: Class index c >= 0 the mark stands for.

    Returns:
        RGB triple in [0, 1] (the palette repeats after 10 classes).
    """
    return _PALETTE[mark_class % len(_PALETTE)]


def decoy_gray(mark_class: int, num_classes: int) -> float:
    """Grey level of the Decoy-MNIST patch for a class.

    Args:
        mark_class: Class index c in [0, num_classes).
        num_classes: Number of classes K.

    Returns:
        Grey level ``1 - 0.88 * c / (K - 1)`` in [0.12, 1]: evenly spaced, never black.
    """
    return 1.0 - 0.88 * mark_class / max(num_classes - 1, 1)


def default_text(mark_class: int) -> str:
    """Default text mark of a class: ``A`` for class 0, ``B`` for 1, ... then ``AA``, ``AB``."""
    letters = ""
    value = mark_class
    while True:
        letters = chr(ord("A") + value % 26) + letters
        value = value // 26 - 1
        if value < 0:
            return letters


def _reduce(canvas: np.ndarray) -> np.ndarray:
    """Area-average a supersampled uint8 canvas down to the stamp size, as float32 alpha."""
    height, width = canvas.shape[0] // _SUPERSAMPLE, canvas.shape[1] // _SUPERSAMPLE
    small = cv2.resize(canvas, (width, height), interpolation=cv2.INTER_AREA)
    return small.astype(np.float32) / 255.0  # (h, w)


def _regular_polygon(center: float, radius: float, corners: int, turn: float) -> np.ndarray:
    """Integer vertices of a regular polygon (corners, 1, 2) for cv2.fillPoly."""
    angles = turn + 2.0 * math.pi * np.arange(corners) / corners
    points = np.stack([center + radius * np.cos(angles), center + radius * np.sin(angles)], 1)
    return np.round(points).astype(np.int32).reshape(-1, 1, 2)


def shape_stamp(shape: str, size: int) -> np.ndarray:
    """Alpha map of one geometric mark.

    Args:
        shape: One of :data:`SHAPE_NAMES`.
        size: Side of the square stamp in pixels (>= 3).

    Returns:
        Alpha map (size, size) float32 in [0, 1].

    Raises:
        ValueError: If the shape is unknown or the size is below 3.
    """
    if shape not in SHAPE_NAMES:
        raise ValueError(f"shape must be one of {SHAPE_NAMES}, got {shape!r}")
    if size < 3:
        raise ValueError(f"mark size must be at least 3 px, got {size}")
    big = size * _SUPERSAMPLE
    canvas = np.zeros((big, big), np.uint8)
    center, radius = (big - 1) / 2.0, big * 0.48
    if shape == "circle":
        cv2.circle(canvas, (big // 2, big // 2), int(radius), 255, -1)
    elif shape == "ring":
        cv2.circle(canvas, (big // 2, big // 2), int(radius * 0.8), 255, max(int(big * 0.16), 1))
    elif shape == "square":
        low, high = int(big * 0.06), int(big * 0.94) - 1
        cv2.rectangle(canvas, (low, low), (high, high), 255, -1)
    elif shape == "triangle":
        cv2.fillPoly(canvas, [_regular_polygon(center, radius, 3, -math.pi / 2)], 255)
    elif shape == "diamond":
        cv2.fillPoly(canvas, [_regular_polygon(center, radius, 4, -math.pi / 2)], 255)
    elif shape == "hexagon":
        cv2.fillPoly(canvas, [_regular_polygon(center, radius, 6, 0.0)], 255)
    elif shape == "cross":
        bar_low, bar_high = int(big * 0.36), int(big * 0.64)
        canvas[bar_low:bar_high, int(big * 0.04) : int(big * 0.96)] = 255
        canvas[int(big * 0.04) : int(big * 0.96), bar_low:bar_high] = 255
    else:  # star: ten vertices alternating between the outer and the inner radius
        angles = -math.pi / 2 + math.pi * np.arange(10) / 5
        radii = np.where(np.arange(10) % 2 == 0, radius, radius * 0.45)
        points = np.stack([center + radii * np.cos(angles), center + radii * np.sin(angles)], 1)
        cv2.fillPoly(canvas, [np.round(points).astype(np.int32).reshape(-1, 1, 2)], 255)
    return _reduce(canvas)


def square_stamp(size: int) -> np.ndarray:
    """Alpha map of a filled square (the decoy patch): ones of shape (size, size)."""
    if size < 1:
        raise ValueError(f"mark size must be at least 1 px, got {size}")
    return np.ones((size, size), np.float32)


@functools.lru_cache(maxsize=8)
def _text_font(pixels: int) -> ImageFont.FreeTypeFont:
    """The bundled text-mark font (:data:`TEXT_FONT`) at ``pixels`` per em, basic layout."""
    if not TEXT_FONT.is_file():
        raise FileNotFoundError(f"the text-mark font {TEXT_FONT} is missing: it ships with the "
                                "repository (assets/fonts/); restore it with `git checkout "
                                "assets/fonts`")
    return ImageFont.truetype(str(TEXT_FONT), pixels, layout_engine=ImageFont.Layout.BASIC)


def text_stamp(text: str, height: int) -> np.ndarray:
    """Alpha map of a short text mark drawn with Pillow in the bundled DejaVu Sans Bold.

    The capital letters fill 0.8 of the height (lower-case descenders may be cut), centred;
    the text is drawn at 4x resolution and area-averaged in NumPy, so the pixels depend only on
    the bundled font file and FreeType, never on OpenCV's fonts (``tests/test_text_mark.py``
    pins them).

    Args:
        text: The letters to draw (ASCII; 1-8 characters keeps the mark small).
        height: Height of the stamp in pixels (>= 5); the width follows from the text.

    Returns:
        Alpha map (height, width) float32 in [0, 1].

    Raises:
        ValueError: If the text is empty or not printable ASCII, or the height is below 5.
    """
    if not text or not text.isascii() or not text.isprintable():
        raise ValueError(f"text marks must be non-empty printable ASCII, got {text!r}")
    if height < 5:
        raise ValueError(f"text mark height must be at least 5 px, got {height}")
    big = height * _SUPERSAMPLE
    font = _text_font(round(0.8 * big / _CAP_HEIGHT_EM))
    left, top, right, _ = font.getbbox(text, anchor="ls")  # ink box around the baseline origin
    pad = int(big * 0.1)
    width = int(math.ceil((right - left + 2 * pad) / _SUPERSAMPLE)) * _SUPERSAMPLE
    canvas = Image.new("L", (width, big), 0)
    origin = ((width - (right - left)) // 2 - left, (big - top) // 2)  # cap height centred
    ImageDraw.Draw(canvas).text(origin, text, fill=255, font=font, anchor="ls")
    blocks = np.asarray(canvas, np.float32).reshape(height, _SUPERSAMPLE, -1, _SUPERSAMPLE)
    return blocks.mean(axis=(1, 3)) / 255.0  # (h, w)


def stripe_pattern(height: int, width: int, angle_degrees: float, period: int) -> np.ndarray:
    """Binary stripes covering a whole image, used by the texture mark.

    Args:
        height: Image height H in pixels.
        width: Image width W in pixels.
        angle_degrees: Direction of the stripes (0 = horizontal bands, 90 = vertical).
        period: Stripe period in pixels (>= 2); half of each period is covered.

    Returns:
        Alpha map (H, W) float32 with values in {0, 1}.
    """
    if period < 2:
        raise ValueError(f"texture period must be at least 2 px, got {period}")
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)  # (H, W) each
    angle = math.radians(angle_degrees)
    position = rows * math.cos(angle) - cols * math.sin(angle)  # distance across the stripes
    return (np.floor(position / (period / 2.0)) % 2 == 0).astype(np.float32)


def color_for_channels(rgb: tuple[float, float, float], channels: int) -> np.ndarray:
    """An RGB colour as a vector for images with 1 (grey) or 3 (RGB) channels.

    Args:
        rgb: Colour in [0, 1].
        channels: C, 1 or 3.

    Returns:
        Array (C,) float32; for C = 1 the ITU-R 601 luma of the colour.
    """
    color = np.asarray(rgb, np.float32)
    if color.shape != (3,) or np.any(color < 0) or np.any(color > 1):
        raise ValueError(f"color must be three numbers in [0, 1], got {rgb!r}")
    if channels == 3:
        return color
    if channels == 1:
        return np.array([0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]], np.float32)
    raise ValueError(f"images must have 1 or 3 channels to receive a mark, got {channels}")
