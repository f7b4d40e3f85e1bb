"""The colour scale beside the heatmaps, as a picture with its tick values.

The bar is the engine's own ramp (:func:`isnet.viz.colorbar`), so its colours are exactly those
of the heatmaps beside it. It is drawn with Pillow (in Matplotlib's DejaVu Sans, which has the
minus sign) rather than as a Matplotlib figure: a few ms instead of ~50–75 ms, on every Explain
and Bias lab answer.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from isnet import viz

WIDTH, HEIGHT = 520, 62
"""Picture size in pixels."""
MARGIN = 36
"""Room left and right of the bar for the end ticks' labels."""
BAR_TOP, BAR_HEIGHT = 4, 20


def colour_scale_ticks(scale: float, relative: bool = False) -> list[tuple[float, str]]:
    """The tick values of the colour scale ±``scale`` and their labels: −s, −s/2, 0, s/2, s
    (``relative``: in percent of s)."""
    def label(value: float) -> str:
        text = f"{100 * value / scale:.0f} %" if relative else f"{value:.3g}"
        return "0" if value == 0 else text.replace("-", "\u2212")

    return [(value, label(value)) for value in (-scale, -scale / 2, 0.0, scale / 2, scale)]


def colour_scale_picture(scale: float, cmap: str = viz.DEFAULT_CMAP,
                         relative: bool = False) -> np.ndarray:
    """The colour scale ±``scale`` as a (h, w, 3) uint8 picture: the bar, ticks at
    :func:`colour_scale_ticks` with their values below, and what the colours mean
    (``relative``: ticks in percent of each model's own scale, for maps drawn on their own)."""
    extent = max(float(scale), 1e-12)
    bar_width = WIDTH - 2 * MARGIN
    picture = Image.new("RGB", (WIDTH, HEIGHT), "white")
    picture.paste(Image.fromarray(viz.colorbar(extent, cmap, width=bar_width,
                                               height=BAR_HEIGHT)), (MARGIN, BAR_TOP))
    draw = ImageDraw.Draw(picture)
    draw.rectangle((MARGIN - 1, BAR_TOP - 1, MARGIN + bar_width, BAR_TOP + BAR_HEIGHT),
                   outline=(60, 60, 60))
    font = _font(12)
    bottom = BAR_TOP + BAR_HEIGHT
    for value, text in colour_scale_ticks(extent, relative):
        x = MARGIN + round((value + extent) / (2 * extent) * (bar_width - 1))
        draw.line((x, bottom, x, bottom + 4), fill=(60, 60, 60))
        draw.text((x, bottom + 5), text, fill=(20, 20, 20), font=font, anchor="ma")
    what = "relevance in % of each model's own largest" if relative else "relevance"
    draw.text((WIDTH // 2, HEIGHT - 2), f"{what}: blue = against the class, red = for it",
              fill=(60, 60, 60), font=_font(11), anchor="md")
    return np.asarray(picture).copy()


@cache
def _font(size: int) -> ImageFont.FreeTypeFont:
    """DejaVu Sans at ``size`` px, from Matplotlib's own fonts (always installed with it)."""
    return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" /
                                  "DejaVuSans.ttf"), size)
