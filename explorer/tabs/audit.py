"""The Audit tab: widgets and wiring only (the events are :mod:`explorer.handlers.audit_events`;
the work is in :mod:`explorer.handlers.audit` and :mod:`explorer.handlers.audit_views`).

Audit a whole set for shortcuts: every image's heatmap, background share and prediction for one
or two models, a histogram of background share per class, the most background-reliant images
(click one to open it in the Explain tab), strategies per class (SpRAy) and a button that turns
the images a model got wrong or solved through the background into a fine-tuning set. Audits run
in their own queue (``concurrency_id="audit"``, one at a time); Stop sets the session's stop event,
and the audit ends after its current chunk, showing what it has done ("Stopped early").
A folder on this machine (offered only when the app runs locally and unshared) is streamed
from disk without a size cap (:mod:`explorer.handlers.audit_stream`); uploads keep theirs.
"""

from __future__ import annotations

import threading
from typing import Any

import gradio as gr

from explorer.components import (
    AUDIT_OUTPUTS,
    ExplainWidgets,
    ordered,
    with_context,
)
from explorer.errors import guarded, guarded_stream
from explorer.handlers import audit as ha
from explorer.handlers import audit_events as events
from explorer.handlers import audit_views as views
from explorer.state import AppContext

HELP = ("**Start here:** pick one or two models and a set — a bundled test split (the "
        "*biased* one carries the class-coded corner mark), a zip of class folders, or a folder "
        "on this machine — then press **Audit**. The gallery lists the images whose relevance "
        "lies most on the background (click one to open it in *Explain*); *Strategies* groups "
        "one class's heatmaps by where they look (SpRAy), without masks.")
SOURCE_CHOICES = [("bundled test split: biased (marked)", "biased"),
                  ("bundled test split: unbiased (clean)", "unbiased"),
                  ("bundled test split: confounding (wrong marks)", "confounding"),
                  ("bundled: half marked, half clean (same images)", "mixed"),
                  ("uploaded zip", "upload"), ("folder on this machine", "folder")]
MASK_CHOICES = [("the set's own masks (<name>.mask.png)", "set"),
                ("automatic masks (brightness threshold; for sets without masks)", "auto"),
                ("no masks (rank by relevance near the image border)", "none")]


# Kept under their old names for the tests that import them from here.
_local = events.local_request
_record_audit = events.record_audit


def build(ctx: AppContext, w: ExplainWidgets, tabs: gr.Tabs | None = None) -> dict:
    """Create the Audit tab inside the current ``gr.Tab`` and wire its events.

    Returns:
        {"fine_tune_set": the gr.File holding the last fine-tuning zip, "send": its event}
        so the app can hand it to the Fine-tune tab.
    """
    gr.Markdown(HELP)
    with gr.Row():
        inputs = _inputs(ctx)
        shown = _results()
    shown.update(record=gr.State(None), order=gr.State([]))
    shown.update(_strategies())
    shown.update(_fine_tune())
    _wire_audit(ctx, inputs, shown, tabs)
    _wire_explain_link(ctx, w, tabs, shown)
    shown["find"].click(
        guarded(with_context(events.on_strategies, ctx)),
        [shown["record"], shown["class_name"], shown["cluster_model"], shown["clusters"]],
        [shown[n] for n in ("means", "eigengap", "strategy_text", "groups", "members",
                            "per_image")],
        api_name="audit_strategies", concurrency_id="audit")
    send = shown["make_set"].click(
        guarded(with_context(events.on_make_set, ctx)),
        [shown["record"], shown["rank_by"], shown["threshold"]],
        [shown["set_file"], shown["set_text"]], api_name="audit_fine_tune_set")
    return {"fine_tune_set": shown["set_file"], "send": send}


def _inputs(ctx: AppContext) -> dict[str, Any]:
    """The left column: models, Audit and Stop, the set and its masks (widgets by name)."""
    choices, seconds = views.model_lists(ctx.store.choices(None))
    with gr.Column(scale=1, min_width=280):
        first = gr.Dropdown(choices, value=ctx.default_pair[0], label="Model",
                            allow_custom_value=True)
        second = gr.Dropdown(seconds, value=ctx.default_pair[1],
                             label="Second model (optional)", allow_custom_value=True)
        with gr.Row():
            start = gr.Button("Audit", variant="primary", elem_id="audit-button")
            stop = gr.Button("Stop", variant="stop")
        source = gr.Dropdown([c for c in SOURCE_CHOICES if c[1] != "folder"
                              or ctx.limits.local_paths], value="biased", label="Images")
        limit = gr.Slider(10, ha.MAX_IMAGES, value=200, step=10,
                          label="Images from the bundled split",
                          info="measured on 2 idle CPU cores, per model: 200 take ~3 s, "
                               "2,000 ~20 s")
        upload = gr.File(label="Zip of class folders", file_types=[".zip"],
                         type="filepath", height=140, elem_id="audit-upload")
        gr.Markdown("`<class>/<name>.png`, with masks as `<class>/<name>.mask.png` "
                    "(optional). Folder names match the model's classes whatever their case "
                    "or separators (`t-shirt_top` → *T-shirt/top*); a `classes.csv` "
                    "(`folder,class`) maps the rest.", elem_classes=["caption"])
        folder = gr.Textbox(label="Folder path (local use only)",
                            placeholder="/data/my-set", visible=ctx.limits.local_paths,
                            info="Class folders, images/ + masks/, or a CSV manifest; any "
                                 "size, streamed from disk (automatic masks: at most "
                                 f"{ha.MAX_IMAGES:,} images). Only the "
                                 "most background-reliant images are kept in full; others "
                                 "are re-read from the folder when shown, with a 16 px "
                                 "heatmap.")
        masks = gr.Radio(MASK_CHOICES, value="set", label="Masks",
                         info="Background share needs masks; strategies do not. An "
                              "upload without masks: choose automatic masks or none")
    return dict(first=first, second=second, start=start, stop=stop, source=source,
                limit=limit, upload=upload, folder=folder, masks=masks)


def _results() -> dict[str, Any]:
    """The right column: status, summary, histogram, ranked gallery, per-image CSV."""
    with gr.Column(scale=2, min_width=300):
        status = gr.Markdown("Idle.", elem_id="audit-status")
        summary = gr.Markdown(elem_id="audit-summary", elem_classes=["table-text"])
        histogram = gr.Plot(label="Background share per class", show_label=False)
        rank_by = gr.Radio([], label="Rank by model", type="index")
        gr.Markdown("**Most background-reliant first** (heatmap over each image, own colour "
                    "scale; click one to open it in *Explain*)", elem_classes=["caption"])
        gallery = gr.Gallery(label="Most background-reliant images", show_label=False,
                             columns=3, height=420, allow_preview=False, buttons=[],
                             object_fit="contain", fit_columns=False,
                             elem_id="audit-gallery")
        per_image = gr.File(label="Per-image CSV (file, label, prediction, confidence, "
                                  "share, strategy, marked or clean)", interactive=False,
                            elem_id="audit-per-image")
    return dict(status=status, summary=summary, histogram=histogram, rank_by=rank_by,
                gallery=gallery, per_image=per_image)


def _strategies() -> dict[str, Any]:
    """The strategies accordion (SpRAy): class, model, k, means, eigengap, members."""
    with gr.Accordion("Strategies per class (SpRAy: heatmaps clustered without masks)",
                      open=True):
        with gr.Row():
            class_name = gr.Dropdown([], label="Class", scale=2)
            cluster_model = gr.Radio([], label="Model", type="index", scale=2)
            clusters = gr.Number(0, label="Strategies (k)", precision=0, minimum=0, maximum=12,
                                 scale=1, info="0 = the eigengap chooses")
            find = gr.Button("Find strategies", scale=1)
        strategy_text = gr.Markdown()
        with gr.Row():
            with gr.Column(scale=2, min_width=260):
                gr.Markdown("Mean heatmap per strategy (click one to see its members)",
                            elem_classes=["caption"])
                means = gr.Gallery(label="Mean heatmap per strategy", show_label=False,
                                   columns=4, height="auto", allow_preview=False, buttons=[],
                                   object_fit="contain", fit_columns=False,
                                   elem_id="audit-strategies")
            with gr.Column(scale=1, min_width=240):
                eigengap = gr.Plot(label="Eigengap", show_label=False)
        gr.Markdown("Members of the chosen strategy", elem_classes=["caption"])
        members = gr.Gallery(label="Members of the chosen strategy", show_label=False,
                             columns=6, height=260, allow_preview=False, buttons=[],
                             object_fit="contain", fit_columns=False)
        groups = gr.State([])
    return dict(class_name=class_name, cluster_model=cluster_model, clusters=clusters,
                find=find, strategy_text=strategy_text, means=means, eigengap=eigengap,
                members=members, groups=groups)


def _fine_tune() -> dict[str, Any]:
    """The fine-tuning accordion: threshold, button, zip and its text."""
    with gr.Accordion("Fine-tune on what went wrong", open=False):
        threshold = gr.Slider(0, 1, value=0.5, step=0.05,
                              label="Background share above which an image counts as a shortcut")
        make_set = gr.Button("Make a fine-tuning set (wrong or background-reliant images)")
        set_file = gr.File(label="Fine-tuning set (zip)", interactive=False)
        set_text = gr.Markdown()
    return dict(threshold=threshold, make_set=make_set, set_file=set_file, set_text=set_text)


def _wire_audit(ctx: AppContext, inputs: dict[str, Any], shown: dict[str, Any],
                tabs: gr.Tabs | None) -> None:
    """Audit, Stop, re-ranking, the model lists on tab change and the zip choice."""
    stops: dict[str, threading.Event] = {}  # one per session, shared by Audit and Stop
    if tabs is not None:  # whenever a tab is chosen: cheap, and the Audit tab is then current
        tabs.select(with_context(events.on_open, ctx), None,
                    [inputs["first"], inputs["second"]], api_visibility="private")
    inputs["upload"].upload(events.on_zip, [inputs["upload"]], [inputs["source"]],
                            api_visibility="private")
    inputs["start"].click(events.on_new_audit, None,
                          [shown[n] for n in ("means", "eigengap", "strategy_text", "members",
                                              "groups", "order", "set_file", "set_text",
                                              "per_image")],
                          queue=False, api_visibility="private")
    inputs["start"].click(
        guarded_stream(with_context(with_context(events.on_audit, ctx), stops)),
        [inputs[n] for n in ("first", "second", "source", "limit", "upload", "folder",
                             "masks")],
        [shown["record"], shown["order"]] + ordered(shown, AUDIT_OUTPUTS) + [shown["per_image"]],
        api_name="audit", concurrency_id="audit", concurrency_limit=1)
    inputs["stop"].click(guarded(with_context(with_context(events.on_stop, ctx), stops)), None,
                         [shown["status"]], api_name="stop_audit", queue=False)
    shown["rank_by"].input(guarded(events.on_rank), [shown["record"], shown["rank_by"]],
                           [shown["gallery"], shown["order"]], api_visibility="private")


def _wire_explain_link(ctx: AppContext, w: ExplainWidgets, tabs: gr.Tabs | None,
                       shown: dict[str, Any]) -> None:
    """Clicking a gallery image opens it (with its mask and class) in the Explain tab; clicking
    a strategy shows its members. Without ``tabs`` the tab switch goes to a hidden state."""
    opened = ([w.editor, w.record, w.true_class] + w.image_names()  # names of other images
              + [tabs if tabs is not None else gr.State(None)])
    shown["gallery"].select(guarded(with_context(events.on_pick, ctx)),
                            [shown["record"], shown["order"]], opened, api_visibility="private")
    member_order = gr.State([])
    shown["means"].select(guarded(events.on_strategy),
                          [shown["record"], shown["groups"], shown["cluster_model"]],
                          [shown["members"], member_order], api_visibility="private")
    shown["members"].select(guarded(with_context(events.on_member, ctx)),
                            [shown["record"], member_order], opened, api_visibility="private")


def hand_to_fine_tune(demo: gr.Blocks, audit: dict) -> bool:
    """After "Make a fine-tuning set", put the zip into the Fine-tune tab's upload and choose
    "upload" there. The Fine-tune tab's widgets are found by their labels (the tab does not
    export them); returns False, and wires nothing, when they are not found.
    """
    blocks = list(getattr(demo, "blocks", {}).values())
    files = next((b for b in blocks if isinstance(b, gr.File)
                  and str(b.label or "").startswith("Zip or image")), None)
    source = next((b for b in blocks if isinstance(b, gr.Radio)
                   and b.label == "Training data"), None)
    if files is None or source is None:
        return False

    audit["send"].then(events.to_fine_tune, [audit["fine_tune_set"]], [files, source],
                       api_visibility="private")
    return True
