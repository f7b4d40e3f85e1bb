"""The Audit tab's event functions, each named and typed: ``explorer/tabs/audit.py`` only lays
out the widgets and wires these (bound to the app's context with
:func:`explorer.components.with_context`), and tests call them directly.

Each takes the app's context first (:func:`on_audit` and :func:`on_stop` then the tab's stop
events, one ``threading.Event`` per session, bound the same way), then the widgets' values in
the order the tab wires them (their names are the ``/audit``, ``/audit_strategies``, … API's
parameter names), then the request.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import gradio as gr
import numpy as np

from explorer.errors import notify
from explorer.handlers import audit as ha
from explorer.handlers import audit_conservation as conservation
from explorer.handlers import audit_views as views
from explorer.handlers import export as hx
from explorer.handlers.audit_table import MARK_WORDS, save_strategies, write_per_image_csv
from explorer.handlers.lrp_modes import lrp_config
from explorer.handlers.outputs import AUDIT_OUTPUTS, CLEARED_NAMES, ordered, session_of
from explorer.media import audit_plots
from explorer.media import editor as editor_state
from explorer.state import AppContext

NONE = "(none)"
"""The second-model choice that means "one model only"."""


def local_request(ctx: AppContext, request: gr.Request | None) -> bool:
    """Whether folder paths may be read: the app runs locally and unshared
    (``Limits.local_paths``) and the browser runs on this machine."""
    host = getattr(getattr(request, "client", None), "host", None)
    return ctx.limits.local_paths and host in ("127.0.0.1", "::1", "localhost")


def on_audit(ctx: AppContext, stops: dict[str, threading.Event], model: str,
             second_model: str | None, image_source: str, bundled_images: float | None,
             uploaded_zip: str | None, folder_path: str | None, mask_source: str,
             request: gr.Request | None = None,
             progress: gr.Progress = gr.Progress()) -> Iterator[list[Any]]:  # noqa: B008
    """Audit a set with one or two models: heatmaps, background shares, predictions.

    Yields ``[record, ranking] + AUDIT_OUTPUTS + [per-image CSV]`` per update (unchanged
    widgets as ``gr.update()``); the finished audit is recorded as a view for exports.
    """
    session = session_of(request)
    event = stops.setdefault(session or "anonymous", threading.Event())
    event.clear()
    audit_request = ha.AuditRequest(
        model_ids=tuple(m for m in (model, second_model) if m and m != NONE),
        source=image_source, limit=int(bundled_images or 200),
        paths=tuple([uploaded_zip] if uploaded_zip else ()), folder=folder_path or "",
        masks=mask_source)
    keep = gr.update()
    for update in ha.run_audit(ctx, session, audit_request, event,
                               local_request(ctx, request)):
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
        table = None
        if not update.interim:  # Σ R against the logit for the maps shown first
            conservation.measure(ctx, session, data, ranked)
            table = write_per_image_csv(data)
        labels = [m["label"] for m in update.record["models"]]
        values.update(summary=views.summary(data, 0.5), histogram=views.histogram(data),
                      gallery=pictures, rank_by=gr.update(choices=labels, value=labels[0]),
                      class_name=gr.update(choices=update.record["class_names"],
                                           value=update.record["class_names"][0]),
                      cluster_model=gr.update(choices=labels, value=labels[0]))
        if not update.interim:  # the first model alone, shown while the second runs
            record_audit(ctx, session, data, pictures)
        yield ([update.record, ranked] + ordered(values, AUDIT_OUTPUTS)
               + [None if table is None else str(table)])


def on_open(ctx: AppContext, request: gr.Request | None = None) -> list[dict]:
    """The session's models (loaded or fine-tuned since the page opened) join the two lists."""
    lists = views.model_lists(ctx.store.choices(session_of(request)))
    return [gr.update(choices=choices) for choices in lists]


def on_zip(uploaded_zip: str | None) -> str | dict:
    """An uploaded zip is what the next audit reads: choose "uploaded zip" (a bundled split
    stays chosen only while no zip is there)."""
    return "upload" if uploaded_zip else gr.update()


def on_new_audit() -> tuple:
    """A new audit: the last audit's strategies and fine-tuning zip go (they described other
    images). Values of means, eigengap, strategy text, members, groups, ranking, fine-tuning
    zip, its text and the per-image CSV."""
    return [], None, "", [], [], [], None, "", None


def on_stop(ctx: AppContext, stops: dict[str, threading.Event],
            request: gr.Request | None = None) -> str:
    """Stop this session's audit after the current chunk; what is done so far is shown (the
    audit's own last update confirms the stop)."""
    session = session_of(request) or "anonymous"
    if session in stops:
        stops[session].set()
    return "Stopping after the current chunk of images…"


def on_rank(audit_record: dict, model_index: int | None) -> tuple[list, list[int]]:
    """Re-rank the gallery by another model: (gallery pictures, audit indices in that order)."""
    data = ha.read_audit(audit_record)
    return views.top_gallery(data, int(model_index or 0))


def open_in_explain(ctx: AppContext, audit_record: dict, index: int,
                    request: gr.Request | None) -> list[Any]:
    """The audit's image ``index`` (with its mask and class) as the Explain tab's input:
    editor value, editor record, true class, the cleared image names and the switch to the
    Explain tab."""
    data = ha.read_audit(audit_record)
    image, mask, label = views.explain_input(data, int(index))
    if label not in data.record["models"][0]["class_names"]:
        label = None  # a class the models do not know: leave "true class" empty
    value, editor_record = editor_state.show(ctx.session_dir(session_of(request)), image, mask)
    return [value, editor_record, label, *CLEARED_NAMES, gr.Tabs(selected="explain")]


def on_pick(ctx: AppContext, audit_record: dict, ranked: list[int], event: gr.SelectData,
            request: gr.Request | None = None) -> list[Any]:
    """Open the clicked gallery image in the Explain tab (:func:`open_in_explain`)."""
    return open_in_explain(ctx, audit_record, ranked[event.index], request)


def on_strategy(audit_record: dict, strategy_groups: list[list[int]], model_index: int | None,
                event: gr.SelectData) -> tuple[list, list[int]]:
    """The members of the clicked strategy: (their gallery, their audit indices)."""
    data = ha.read_audit(audit_record)
    chosen = strategy_groups[event.index]
    return views.members_gallery(data, int(model_index or 0), chosen), chosen


def on_member(ctx: AppContext, audit_record: dict, chosen: list[int], event: gr.SelectData,
              request: gr.Request | None = None) -> list[Any]:
    """Open the clicked strategy member in the Explain tab (:func:`open_in_explain`)."""
    return open_in_explain(ctx, audit_record, chosen[event.index], request)


def on_strategies(ctx: AppContext, audit_record: dict, class_choice: str,
                  model_index: int | None, k: float | None,
                  request: gr.Request | None = None) -> tuple:
    """Cluster one class's heatmaps into strategies (SpRAy) for one model (k: the number of
    strategies, 0 = the eigengap chooses). Values of means, eigengap, text, groups, members
    (cleared) and the per-image CSV (which gains the strategy column)."""
    data = ha.read_audit(audit_record)
    found = views.strategies(data, int(model_index or 0), class_choice, int(k or 0))
    record_strategies(ctx, session_of(request), data, found, class_choice)
    save_strategies(data.record, int(model_index or 0), class_choice, found.members)
    return (found.means, found.eigengap, found.text, found.members, [],
            str(write_per_image_csv(data)))


def on_make_set(ctx: AppContext, audit_record: dict, model_index: int | None,
                shortcut_share: float, request: gr.Request | None = None) -> tuple[Any, str]:
    """Write the wrong or background-reliant images of an audit as a fine-tuning zip:
    (its path, a sentence saying how many images and where to use it)."""
    data = ha.read_audit(audit_record)
    path, count = views.fine_tune_zip(data, int(model_index or 0), float(shortcut_share),
                                      ctx.session_dir(session_of(request)))
    return path, (f"{count} images written. In **Fine-tune**, choose *upload* and use "
                  f"this zip (it is placed there for you when the tab can take it).")


def to_fine_tune(zip_path: str | None) -> tuple:
    """The fine-tuning set as the Fine-tune tab's upload (files, training-data choice)."""
    if not zip_path:
        return gr.update(), gr.update()
    return [zip_path], "upload"


def record_audit(ctx: AppContext, session: str | None, data: ha.AuditData,
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
                   heatmaps(data), axes=heatmap_axes(data))


def heatmap_axes(data: ha.AuditData) -> list[str]:
    """What each axis of :func:`heatmaps` means (for the exported JSON)."""
    labels = [m["label"] for m in data.record["models"]]
    maps = data.maps if getattr(data, "streamed", False) else data.relevance
    image_axes = ["image (audit index; numbers.files names each)",
                  "height (pixels)", "width (pixels)"]
    if len({m.shape for m in maps}) == 1:
        return [f"model: {labels}"] + image_axes
    return image_axes


def heatmaps(data: ha.AuditData) -> np.ndarray:
    """The audit's heatmaps for the export, (models, N, H, W) when every model's share a size,
    else the first model's (N, H, W) (a streamed audit: its 16 px normalised maps)."""
    maps = data.maps if getattr(data, "streamed", False) else data.relevance
    return (np.stack([np.asarray(m, np.float32) for m in maps])
            if len({m.shape for m in maps}) == 1 else np.asarray(maps[0], np.float32))


def record_strategies(ctx: AppContext, session: str | None, data: ha.AuditData,
                      found: views.StrategyView, class_choice: str) -> None:
    """Keep a strategy discovery as part of the audit view's history (for the report)."""
    entries = [ctx.store.get(m["id"], session) for m in data.record["models"]]
    hx.record_view(ctx, session, "strategies", f"Strategies of {class_choice}",
                   {"strategies": [len(m) for m in found.members], "members": found.members},
                   {"method": "SpRAy (spectral clustering, eigengap)", "seed": 0}, entries,
                   [(c, p) for p, c in found.means], None)
