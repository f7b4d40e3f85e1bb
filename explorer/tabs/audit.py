"""The Audit tab: widgets and wiring only (the work is in :mod:`explorer.handlers.audit` and
:mod:`explorer.handlers.audit_views`).

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

import gradio as gr
import numpy as np

from explorer.components import (
    AUDIT_OUTPUTS,
    CLEARED_NAMES,
    ExplainWidgets,
    ordered,
    session_of,
)
from explorer.errors import guarded, guarded_stream, notify
from explorer.handlers import audit as ha
from explorer.handlers import audit_conservation as conservation
from explorer.handlers import audit_views as views
from explorer.handlers import export as hx
from explorer.handlers.audit_table import MARK_WORDS, save_strategies, write_per_image_csv
from explorer.handlers.lrp_modes import lrp_config
from explorer.media import audit_plots
from explorer.media import editor as editor_state
from explorer.state import AppContext

NONE = "(none)"
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


def _local(ctx: AppContext, request: gr.Request | None) -> bool:
    """Whether folder paths may be read: the app runs locally and unshared
    (``Limits.local_paths``) and the browser runs on this machine."""
    host = getattr(getattr(request, "client", None), "host", None)
    return ctx.limits.local_paths and host in ("127.0.0.1", "::1", "localhost")


def build(ctx: AppContext, w: ExplainWidgets, tabs: gr.Tabs | None = None) -> dict:
    """Create the Audit tab inside the current ``gr.Tab`` and wire its events.

    Returns:
        {"fine_tune_set": the gr.File holding the last fine-tuning zip, "send": its event}
        so the app can hand it to the Fine-tune tab.
    """
    stops: dict[str, threading.Event] = {}
    choices, seconds = views.model_lists(ctx.store.choices(None))
    gr.Markdown(HELP)
    with gr.Row():
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
        with gr.Column(scale=2, min_width=300):
            status = gr.Markdown("Idle.", elem_id="audit-status")
            summary = gr.Markdown(elem_id="audit-summary",
                                  elem_classes=["table-text"])
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
    record = gr.State(None)
    order = gr.State([])
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
    with gr.Accordion("Fine-tune on what went wrong", open=False):
        threshold = gr.Slider(0, 1, value=0.5, step=0.05,
                              label="Background share above which an image counts as a shortcut")
        make_set = gr.Button("Make a fine-tuning set (wrong or background-reliant images)")
        set_file = gr.File(label="Fine-tuning set (zip)", interactive=False)
        set_text = gr.Markdown()

    @guarded_stream
    def on_audit(model, second_model, image_source, bundled_images, uploaded_zip, folder_path,
                 mask_source, request: gr.Request, progress=gr.Progress()):
        """Audit a set with one or two models: heatmaps, background shares, predictions."""
        session = session_of(request) or "anonymous"
        event = stops.setdefault(session, threading.Event())
        event.clear()
        ids = tuple(m for m in (model, second_model) if m and m != NONE)
        audit_request = ha.AuditRequest(
            model_ids=ids, source=image_source, limit=int(bundled_images or 200),
            paths=tuple([uploaded_zip] if uploaded_zip else ()), folder=folder_path or "",
            masks=mask_source)
        keep = gr.update()
        for update in ha.run_audit(ctx, session_of(request), audit_request, event,
                                   _local(ctx, request)):
            progress(update.fraction, desc="auditing")
            values = dict.fromkeys(AUDIT_OUTPUTS, keep)
            values["status"] = update.status
            if update.fraction >= 1:
                notify(update.notices)
            if update.record is None:
                yield [keep, keep] + ordered(values, AUDIT_OUTPUTS) + [keep]
                continue
            data = ha.read_audit(update.record)
            pictures, ranked = views.top_gallery(data, 0)
            if not update.interim:  # Σ R against the logit for the maps shown first
                conservation.measure(ctx, session_of(request), data, ranked)
                table = write_per_image_csv(data)
            labels = [m["label"] for m in update.record["models"]]
            values.update(summary=views.summary(data, 0.5), histogram=views.histogram(data),
                          gallery=pictures,
                          rank_by=gr.update(choices=labels, value=labels[0]),
                          class_name=gr.update(choices=update.record["class_names"],
                                               value=update.record["class_names"][0]),
                          cluster_model=gr.update(choices=labels, value=labels[0]))
            if not update.interim:  # the first model alone, shown while the second runs
                _record_audit(ctx, session_of(request), data, pictures)
            yield ([update.record, ranked] + ordered(values, AUDIT_OUTPUTS)
                   + [None if update.interim else str(table)])

    def on_open(request: gr.Request):
        """The session's models (loaded or fine-tuned since the page opened) join the lists."""
        lists = views.model_lists(ctx.store.choices(session_of(request)))
        return [gr.update(choices=choices) for choices in lists]

    if tabs is not None:  # whenever a tab is chosen: cheap, and the Audit tab is then current
        tabs.select(on_open, None, [first, second], api_visibility="private")

    def on_zip(uploaded_zip):
        """An uploaded zip is what the next audit reads: choose "uploaded zip" (a bundled
        split stays chosen only while no zip is there)."""
        return "upload" if uploaded_zip else gr.update()

    upload.upload(on_zip, [upload], [source], api_visibility="private")

    outputs = dict(zip(AUDIT_OUTPUTS, [status, summary, histogram, gallery, rank_by, class_name,
                                       cluster_model], strict=True))
    def on_new_audit():
        """A new audit: the last audit's strategies and fine-tuning zip go (they described
        other images)."""
        return [], None, "", [], [], [], None, "", None

    start.click(on_new_audit, None, [means, eigengap, strategy_text, members, groups,
                                     order, set_file, set_text, per_image], queue=False,
                api_visibility="private")
    start.click(on_audit, [first, second, source, limit, upload, folder, masks],
                [record, order] + ordered(outputs, AUDIT_OUTPUTS) + [per_image],
                api_name="audit",
                        concurrency_id="audit", concurrency_limit=1)

    @guarded
    def on_stop(request: gr.Request):
        """Stop this session's audit after the current chunk; what is done so far is shown
        (the audit's own last update confirms the stop)."""
        session = session_of(request) or "anonymous"
        if session in stops:
            stops[session].set()
        return "Stopping after the current chunk of images…"

    stop.click(on_stop, None, [status], api_name="stop_audit", queue=False)

    @guarded
    def on_rank(audit_record, model_index):
        """Re-rank the gallery by another model."""
        data = ha.read_audit(audit_record)
        pictures, ranked = views.top_gallery(data, int(model_index or 0))
        return pictures, ranked

    rank_by.input(on_rank, [record, rank_by], [gallery, order], api_visibility="private")
    _wire_explain_link(ctx, w, tabs, gallery, members, record, order, groups, means,
                       cluster_model)

    @guarded
    def on_strategies(audit_record, class_choice, model_index, k, request: gr.Request):
        """Cluster one class's heatmaps into strategies (SpRAy) for one model (k: the number
        of strategies, 0 = the eigengap chooses)."""
        data = ha.read_audit(audit_record)
        found = views.strategies(data, int(model_index or 0), class_choice, int(k or 0))
        _record_strategies(ctx, session_of(request), data, found, class_choice)
        save_strategies(data.record, int(model_index or 0), class_choice, found.members)
        return (found.means, found.eigengap, found.text, found.members, [],
                str(write_per_image_csv(data)))  # the CSV gains the strategy column

    find.click(on_strategies, [record, class_name, cluster_model, clusters],
               [means, eigengap, strategy_text, groups, members, per_image],
               api_name="audit_strategies",
               concurrency_id="audit")

    @guarded
    def on_make_set(audit_record, model_index, shortcut_share, request: gr.Request):
        """Write the wrong or background-reliant images of an audit as a fine-tuning zip."""
        data = ha.read_audit(audit_record)
        path, count = views.fine_tune_zip(data, int(model_index or 0), float(shortcut_share),
                                          ctx.session_dir(session_of(request)))
        return path, (f"{count} images written. In **Fine-tune**, choose *upload* and use this "
                      f"zip (it is placed there for you when the tab can take it).")

    send = make_set.click(on_make_set, [record, rank_by, threshold], [set_file, set_text],
                          api_name="audit_fine_tune_set")
    return {"fine_tune_set": set_file, "send": send}


def _wire_explain_link(ctx: AppContext, w: ExplainWidgets, tabs: gr.Tabs | None, gallery,
                       members, record, order, groups, means, cluster_model) -> None:
    """Clicking a gallery image opens it (with its mask and class) in the Explain tab; clicking
    a strategy shows its members."""
    shown = [w.editor, w.record, w.true_class] + w.image_names() + \
        ([tabs] if tabs is not None else [])  # the sample and upload fields named other images

    def open_in_explain(audit_record, index, request):
        data = ha.read_audit(audit_record)
        image, mask, label = views.explain_input(data, int(index))
        if label not in data.record["models"][0]["class_names"]:
            label = None  # a class the models do not know: leave "true class" empty
        value, editor_record = editor_state.show(ctx.session_dir(session_of(request)), image,
                                                 mask)
        switch = [gr.Tabs(selected="explain")] if tabs is not None else []
        return [value, editor_record, label, *CLEARED_NAMES] + switch

    @guarded
    def on_pick(audit_record, ranked, event: gr.SelectData, request: gr.Request):
        """Open the clicked image in the Explain tab."""
        return open_in_explain(audit_record, ranked[event.index], request)

    gallery.select(on_pick, [record, order], shown, api_visibility="private")

    @guarded
    def on_strategy(audit_record, strategy_groups, model_index, event: gr.SelectData):
        """The members of the clicked strategy."""
        data = ha.read_audit(audit_record)
        chosen = strategy_groups[event.index]
        return views.members_gallery(data, int(model_index or 0), chosen), chosen

    member_order = gr.State([])
    means.select(on_strategy, [record, groups, cluster_model], [members, member_order],
                 api_visibility="private")

    @guarded
    def on_member(audit_record, chosen, event: gr.SelectData, request: gr.Request):
        """Open the clicked member in the Explain tab."""
        return open_in_explain(audit_record, chosen[event.index], request)

    members.select(on_member, [record, member_order], shown, api_visibility="private")


def _record_audit(ctx: AppContext, session: str | None, data: ha.AuditData,
                  pictures: list) -> None:
    """Keep the audit as a view for exports and the session report."""
    entries = [ctx.store.get(m["id"], session) for m in data.record["models"]]
    per_model = {}
    for index, model in enumerate(data.record["models"]):
        correct = data.correct(index)
        per_model[model["label"]] = {
            "accuracy": None if correct is None else float(correct.mean()),
            "mean_background_share": float(np.nanmean(data.share[index]))
            if np.isfinite(data.share[index]).any() else None,
            "background_share": data.share[index], "predictions": data.predictions[index],
            "ranking": views.ranking(data, index),
            "conservation": conservation.read(data.record).get(model["label"])}
    traced = {"indices": list(range(int(data.record["count"]))),
              "files": [str(n) for n in data.image_names()],
              "marked": [MARK_WORDS[int(m)] for m in data.marks()],
              "class_match": data.record.get("class_match")}
    hx.record_view(ctx, session, "audit", f"Audit of {data.record['count']} images "
                   f"({data.record['source']})", {"per_model": per_model,
                                                  "labels": data.labels, **traced},
                   {"source": data.record["source"], "masks": data.record["masks"],
                    "images": data.record["count"], "seconds": data.record["seconds"],
                    "lrp": hx.lrp_record([lrp_config(e) for e in entries]),
                    "complete": data.record["complete"]},
                   entries, [("background share per class (histogram)",
                              audit_plots.figure_png(views.histogram(data)))]
                   + [(f"{c} (own scale)", p) for p, c in pictures[:7]],
                   _heatmaps(data), axes=_heatmap_axes(data))


def _heatmap_axes(data) -> list[str]:
    """What each axis of :func:`_heatmaps` means (for the exported JSON)."""
    labels = [m["label"] for m in data.record["models"]]
    maps = data.maps if getattr(data, "streamed", False) else data.relevance
    image_axes = ["image (audit index; numbers.files names each)",
                  "height (pixels)", "width (pixels)"]
    if len({m.shape for m in maps}) == 1:
        return [f"model: {labels}"] + image_axes
    return image_axes


def _heatmaps(data) -> np.ndarray:
    """The audit's heatmaps for the export: every model's, when they share a size (a streamed
    audit: its 16 px normalised maps)."""
    maps = data.maps if getattr(data, "streamed", False) else data.relevance
    return (np.stack([np.asarray(m, np.float32) for m in maps])
            if len({m.shape for m in maps}) == 1 else np.asarray(maps[0], np.float32))


def _record_strategies(ctx: AppContext, session: str | None, data: ha.AuditData,
                       found: views.StrategyView, class_choice: str) -> None:
    """Keep a strategy discovery as part of the audit view's history (for the report)."""
    entries = [ctx.store.get(m["id"], session) for m in data.record["models"]]
    hx.record_view(ctx, session, "strategies", f"Strategies of {class_choice}",
                   {"strategies": [len(m) for m in found.members], "members": found.members},
                   {"method": "SpRAy (spectral clustering, eigengap)", "seed": 0}, entries,
                   [(c, p) for p, c in found.means], None)


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

    def to_fine_tune(zip_path):
        """The fine-tuning set as the Fine-tune tab's upload."""
        if not zip_path:
            return gr.update(), gr.update()
        return [zip_path], "upload"

    audit["send"].then(to_fine_tune, [audit["fine_tune_set"]], [files, source],
                       api_visibility="private")
    return True
