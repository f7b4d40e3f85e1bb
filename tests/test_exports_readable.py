"""Issue 30 defect 8 (and the export half of defect 7): download buttons are disabled until
their file exists; the exported figure of maps on their own scales has titles that neither
overlap nor run off the page, and a colour bar; the session report starts with a summary and a
table of contents, holds the fine-tune curves, and writes tables as tables; exported heatmaps
have readable names and their axes are described in the JSON."""

from __future__ import annotations

import json
import re
from itertools import combinations
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from ui_fixtures import make_context, object_image, tiny_models, write_samples

from explorer.handlers import export as hx
from explorer.handlers.explain import explain_models
from explorer.media.audit_plots import view_figure
from explorer.media.plots import training_figure


def test_own_scale_figure_titles_fit_apart_and_a_colour_bar_is_drawn():
    pictures = [(caption, np.zeros((64, 64, 3), np.uint8)) for caption in (
        "Standard · standard_densenet121: Bag", "ISNet · isnet_densenet121: Bag",
        "Standard · standard_densenet121: heatmap (own scale ±0.0308)",
        "ISNet · isnet_densenet121: heatmap (own scale ±0.655)")]
    figure = view_figure("Explain", pictures, None, {"probability": 0.99})
    canvas = FigureCanvasAgg(figure)  # as savefig draws it
    canvas.draw()
    renderer = canvas.get_renderer()
    page = figure.bbox
    titles = [axes.title.get_window_extent(renderer) for axes in figure.axes
              if axes.get_title()]
    assert len(titles) == 4
    for box in titles:  # inside the page
        assert box.x0 >= page.x0 - 0.5 and box.x1 <= page.x1 + 0.5
    for one, other in combinations(titles, 2):
        assert not one.overlaps(other), "two picture titles overlap"
    bars = [axes for axes in figure.axes if "own scale" in axes.get_xlabel()]
    assert bars, "maps on their own scales need a colour bar (in % of each map's scale)"


def test_download_buttons_are_disabled_until_their_file_exists(tmp_path):
    from explorer.app import build_demo

    images, masks = write_samples(tmp_path / "assets")
    demo = build_demo(models=tiny_models(), samples_dir=images, masks_dir=masks,
                      work_dir=tmp_path / "work")
    labels = ("Figure (PNG)", "Numbers (JSON)", "Heatmaps (.npy)", "Download the report")
    buttons = {b.label: b for b in demo.blocks.values() if getattr(b, "label", None) in labels}
    assert set(buttons) == set(labels)
    assert not any(b.interactive for b in buttons.values())
    enable = next(f for f in demo.fns.values() if getattr(f.fn, "__name__", "") == "enable"
                  and buttons["Numbers (JSON)"] in f.outputs)
    states = enable.fn(str(tmp_path / "a.png"), str(tmp_path / "a.json"), None)
    assert [s["interactive"] for s in states] == [True, True, False]  # no heatmaps: disabled


def test_the_report_opens_with_a_summary_and_contents_and_writes_tables_as_tables(tmp_path):
    ctx = make_context(tmp_path)
    entries = [ctx.store.get(i, None) for i in ctx.default_pair]
    image, mask = object_image(1)
    pair = explain_models(ctx, entries, image, mask)
    hx.record_pair(ctx, "s", "explain", "Explain", pair, entries, {"explained_class": "x"})
    page = Path(hx.session_report(ctx, "s")).read_text()
    assert "id='summary'" in page and "id='contents'" in page, "a summary and contents first"
    history = [{"step": 1, "loss": 1.2, "val_background_share": 0.4},
               {"step": 2, "loss": 0.9, "val_background_share": 0.3}]
    hx.record_figure(ctx, "s", "fine_tune", "Fine-tune: tiny", training_figure(history),
                     {"metrics": {"val_accuracy": 1 / 6}}, {"epochs": 2}, entries[1:])
    page = Path(hx.session_report(ctx, "s")).read_text()
    summary, contents = page.index("id='summary'"), page.index("id='contents'")
    first = page.index("<section>")
    assert summary < contents < first  # summary and contents come first
    assert "1 explanation, 1 fine-tune" in page
    assert re.search(r"<a href='#view-2'>Fine-tune: tiny</a>", page)
    fine_tune = page[page.index("id='view-2'"):]
    assert "data:image/png;base64," in fine_tune  # the curves
    assert "<th>val_accuracy</th><td>0.1667</td>" in fine_tune  # a table, rounded
    assert '\\"' not in page and "{&quot;" not in page  # no JSON escapes


def test_exported_heatmaps_have_readable_names_and_described_axes(tmp_path):
    ctx = make_context(tmp_path)
    entries = [ctx.store.get(i, None) for i in ctx.default_pair]
    image, mask = object_image(1)
    pair = explain_models(ctx, entries, image, mask)
    hx.record_pair(ctx, "s", "explain", "Explain", pair, entries, {},
                   source=hx.image_source(image, mask, "photo.png"))
    files = hx.export_view(ctx, "s", hx.ExportRequest("explain"))
    assert re.fullmatch(r"explain-\d{4}-\d\d-\d\d-\d{6}-heatmaps\.npy", Path(files.heatmaps).name)
    record = json.loads(Path(files.numbers).read_text())
    described = record["heatmaps"]
    assert described["file"] == Path(files.heatmaps).name
    assert described["shape"] == list(np.load(files.heatmaps).shape)
    labels = [e.label for e in entries]
    assert described["axes"][0] == f"model: [left, right] = {labels}"
    source = record["settings"]["source"]
    assert source["image"]["file"] == "photo.png" and len(source["image"]["sha256_of_pixels"]) == 64
    assert source["mask"]["shape"] == list(mask.shape)
