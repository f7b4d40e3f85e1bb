"""Matplotlib figures for the Audit tab: background share per class, and the export figure.

As in :mod:`explorer.media.plots`, figures are built with ``matplotlib.figure.Figure`` (no
``pyplot``), so concurrent sessions never share a figure.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Mapping, Sequence

import matplotlib
import numpy as np

matplotlib.use("Agg", force=False)
from matplotlib.cm import ScalarMappable  # noqa: E402
from matplotlib.colors import Normalize  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from explorer.media.plots import COLOURS  # noqa: E402


def share_histogram(shares: Mapping[str, np.ndarray], labels: np.ndarray,
                    class_names: Sequence[str]) -> Figure:
    """Histograms of background share, one small panel per class, one colour per model.

    Args:
        shares: model label → (N,) background shares (NaN = no mask).
        labels: (N,) the images' classes (indices into ``class_names``).
        class_names: the set's classes.
    """
    count = max(1, len(class_names))
    columns = min(5, count)
    rows = int(np.ceil(count / columns))
    figure = Figure(figsize=(2.2 * columns, 1.7 * rows + 0.6), dpi=90, layout="constrained")
    axes = np.atleast_1d(figure.subplots(rows, columns, sharex=True, squeeze=False)).ravel()
    bins = np.linspace(0, 1, 21)
    for index, name in enumerate(class_names):
        panel = axes[index]
        for colour, (label, values) in zip(COLOURS, shares.items(), strict=False):
            chosen = values[(labels == index) & np.isfinite(values)]
            if len(chosen):
                panel.hist(chosen, bins=bins, color=colour, alpha=0.55, label=label)
        panel.set_title(str(name), fontsize=8)
        panel.tick_params(labelsize=7)
        panel.set_xlim(0, 1)
    for panel in axes[count:]:
        panel.set_visible(False)
    figure.supxlabel("background relevance share (0 = all on the object)", fontsize=8)
    figure.supylabel("images", fontsize=8)
    handles, names = axes[0].get_legend_handles_labels()
    if handles:
        figure.legend(handles, names, loc="outside upper center", ncols=2, fontsize=7)
    return figure


def eigengap_figure(eigenvalues: np.ndarray, chosen: int) -> Figure:
    """The smallest Laplacian eigenvalues, with the eigengap's choice of clusters marked."""
    figure = Figure(figsize=(3.6, 2.2), dpi=90, layout="constrained")
    axes = figure.add_subplot()
    axes.plot(np.arange(1, len(eigenvalues) + 1), eigenvalues, "o-", color=COLOURS[1], ms=4)
    axes.axvline(chosen + 0.5, color=COLOURS[0], ls="--", lw=1, label=f"{chosen} cluster(s)")
    axes.set_xlabel("eigenvalue index", fontsize=8)
    axes.set_ylabel("eigenvalue", fontsize=8)
    axes.tick_params(labelsize=7)
    axes.legend(fontsize=7)
    return figure


def figure_png(figure: Figure) -> np.ndarray:
    """A figure rendered to an (H, W, 3) uint8 array."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    buffer.seek(0)
    from PIL import Image

    return np.asarray(Image.open(buffer).convert("RGB"))


def view_figure(title: str, images: Sequence[tuple[str, np.ndarray]], scale: float | None,
                numbers: Mapping[str, object], cmap: str = "bwr",
                table: tuple[Sequence[str], Sequence[Sequence[object]]] | None = None) -> Figure:
    """The export figure of a view: its pictures with captions (wrapped to their column, so
    titles never overlap or run off the page), the colour scale with tick values (when the view
    has heatmaps: the shared ±scale, or, for maps on their own scales, percent of each map's
    own bound), a table (when the view showed one) and its numbers as text.

    Args:
        images: (caption, (H, W, 3) uint8) pairs, at most 8 are drawn; a caption with "own
            scale" marks a heatmap drawn on its own scale.
        scale: the shared colour-scale bound (relevance ±scale), or None.
        numbers: shown as ``key: value`` lines.
        table: (headers, rows), drawn full width under the pictures (None cells as "–").
    """
    shown = list(images)[:8]
    columns = max(1, min(4, len(shown)))
    rows = max(1, int(np.ceil(len(shown) / columns)))
    lines = [f"{key}: {value}" for key, value in numbers.items()]
    text_height = 0.18 * len(lines) + 0.4
    table_height = 0.0 if table is None else 0.28 * (len(table[1]) + 1) + 0.3
    width = 3.0 * columns if table is None else max(3.0 * columns, 1.3 * len(table[0]))
    picture_height = 3.0 if table is None else min(width * 0.5, 6.0)
    figure = Figure(figsize=(width, picture_height * rows + table_height + text_height + 0.8),
                    dpi=100, layout="constrained")
    figure.suptitle(title, fontsize=11)
    grid = figure.add_gridspec(rows + 3, columns,
                               height_ratios=[picture_height] * rows +
                               [0.25, max(table_height, 0.01), text_height])
    wrap = max(12, int(width / columns * 100 / 6.2))  # characters per line at 8 pt
    for index, (caption, image) in enumerate(shown):
        axes = figure.add_subplot(grid[index // columns, index % columns])
        axes.imshow(image, interpolation="nearest")
        axes.set_title(textwrap.fill(caption, wrap), fontsize=8, wrap=False)
        axes.set_axis_off()
    own = scale is None and any("own scale" in caption for caption, _ in shown)
    if scale is not None or own:
        bar = figure.add_subplot(grid[rows, :])
        bound = 100.0 if own else scale
        figure.colorbar(ScalarMappable(Normalize(-bound, bound), cmap), cax=bar,
                        orientation="horizontal",
                        label="relevance, % of each map's own scale (its ± in the title); "
                              "blue = against the class, red = for it" if own else
                              "relevance (blue = against the class, red = for it)")
        bar.tick_params(labelsize=7)
    if table is not None:
        board = figure.add_subplot(grid[rows + 1, :])
        board.set_axis_off()
        cells = [["–" if cell is None else str(cell) for cell in row] for row in table[1]]
        drawn = board.table(cellText=cells or [["–"] * len(table[0])],
                            colLabels=[str(h) for h in table[0]], loc="upper center",
                            cellLoc="center")
        drawn.auto_set_font_size(False)
        drawn.set_fontsize(7)
        drawn.auto_set_column_width(list(range(len(table[0]))))  # columns fit their text
    notes = figure.add_subplot(grid[rows + 2, :])
    notes.set_axis_off()
    notes.text(0, 1, "\n".join(lines), va="top", ha="left", fontsize=8, family="monospace")
    return figure
