"""The Explain tab's event functions, each named and typed: ``explorer/tabs/explain.py`` only
lays out the widgets and wires these (bound to the app's context with
:func:`explorer.components.with_context`), and tests call them directly.

Each takes the app's context first, then the widgets' values in the order the tab wires them
(their names are the ``/explain``, ``/load_sample``, … API's parameter names), then the request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gradio as gr
import numpy as np

from explorer import deadlines
from explorer.errors import InputError
from explorer.handlers import export as export_handlers
from explorer.handlers import image as image_handlers
from explorer.handlers.explain import (
    PREDICTED,
    ExplainRequest,
    LRPOverrides,
    class_choices,
    epsilon_problem,
    explain,
)
from explorer.handlers.explain_views import SHARED_SCALE
from explorer.handlers.image import LoadedImage
from explorer.handlers.outputs import (
    EXPLAIN_OUTPUTS,
    editor_input,
    ordered,
    pair_values,
    session_of,
)
from explorer.media import editor as editor_state
from explorer.state import AppContext

AS_TRAINED = "as trained"
INPUT_RULES = [("as each model was trained", AS_TRAINED), ("z^B", "zb"), ("ε", "epsilon")]
"""The input-layer rule choices (label, value): each model's own, or one rule for both."""


def input_rule(value: object) -> bool | None:
    """The z^B switch for a choice of :data:`INPUT_RULES` (None: each model's training rule);
    True and False are read as z^B and ε.

    Raises:
        InputError: anything else.
    """
    rules = {AS_TRAINED: None, "zb": True, "epsilon": False}
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value in rules:
        return rules[value]
    raise InputError(f"Input layer rule must be one of {[v for _, v in INPUT_RULES]}, "
                     f"not {value!r}.")


def on_explain(ctx: AppContext, image_and_mask: dict | None, left_model: str,
               right_model: str, explain_class: str | None, overlay_opacity: float,
               top_predictions: int, brush_strokes: str, editor_record: dict | None,
               lrp_epsilon: float | None = None, input_zb_rule: str | bool | None = AS_TRAINED,
               true_class_name: str | None = None, lrp: str | None = None,
               colour_scale: str | None = SHARED_SCALE,
               request: gr.Request | None = None) -> list[Any]:
    """Explain the editor's image with the left and right models (heatmaps on one shared
    colour scale, or each on its own; ε and the input rule default to each model's
    training settings). The view is recorded for export; returns the values of
    :data:`explorer.components.EXPLAIN_OUTPUTS`, then True (an answer was given)."""
    session = session_of(request)
    chosen = LRPOverrides(None if lrp_epsilon is None else float(lrp_epsilon),
                          input_rule(input_zb_rule), lrp)
    pair = explain(ctx, session, ExplainRequest(
        editor=editor_input(image_and_mask, brush_strokes, editor_record),
        left_id=left_model, right_id=right_model, target=explain_class,
        opacity=float(overlay_opacity), top_k=int(top_predictions),
        epsilon=chosen.epsilon, zb=chosen.zb, true_class=true_class_name or None,
        lrp_mode=lrp, colour_scale=colour_scale or SHARED_SCALE))
    entries = [ctx.store.get(left_model, session), ctx.store.get(right_model, session)]
    export_handlers.record_pair(
        ctx, session, "explain", "Explain", pair, entries,
        {"explained_class": explain_class, "overlay_opacity": float(overlay_opacity),
         "true_class": true_class_name, "lrp_mode": lrp,
         "colour_scale": colour_scale or SHARED_SCALE},
        lrp=[chosen.config(e) for e in entries],
        source=explained_source(image_and_mask, brush_strokes, editor_record))
    return ordered({**pair_values(pair), "colorbar": pair.colorbar, "summary": pair.summary,
                    "mask_preview": pair.mask_preview,
                    "notices": inline_notices(pair.notices)}, EXPLAIN_OUTPUTS) + [True]


def on_model_change(ctx: AppContext, left_model: str,
                    request: gr.Request | None = None) -> tuple[dict, float]:
    """The explain-class choices (reset to the predicted class) and the training ε of the
    newly chosen left model."""
    session = session_of(request)
    return (gr.update(choices=class_choices(ctx, session, left_model), value=PREDICTED),
            ctx.store.get(left_model, session).epsilon)


def on_gallery(ctx: AppContext, event: gr.SelectData) -> str:
    """The name of the sample clicked in the gallery."""
    return ctx.samples[event.index].name


def in_time(what: str, retry: str, work: Callable[[], tuple]) -> tuple:
    """An action that sets the editor's image or mask, given at most
    :data:`explorer.deadlines.IMAGE_ACTION_S` seconds (then a message saying how to retry)."""
    return deadlines.within(deadlines.IMAGE_ACTION_S, what, retry, work)


def inline_notices(notices: list[str]) -> str:
    """Notices as the Markdown of a notice box, each once and never also as a toast (a toast
    would repeat it and cover the results)."""
    return "\n\n".join(f"⚠️ {notice}" for notice in dict.fromkeys(notices) if notice)


def _show(ctx: AppContext, session: str | None, loaded: LoadedImage,
          before: dict | None = None) -> tuple[dict, dict]:
    """Editor value and editor record showing a loaded image and its mask. The record also
    keeps where they came from (``name``, ``mask_source``; the record ``before`` supplies the
    image's name when the action kept the image), for the export's provenance."""
    value, record = editor_state.show(ctx.session_dir(session), loaded.image, loaded.mask)
    kept = before or {}
    record["name"] = loaded.name or kept.get("name")
    record["mask_source"] = None if loaded.mask is None else loaded.mask_source
    return value, record


def explained_source(image_and_mask: dict | None, brush_strokes: str,
                     editor_record: dict | None) -> dict:
    """The explained image's and mask's provenance for the export
    (:func:`explorer.handlers.export.image_source`): their names from the editor record and
    the SHA-256 of the pixels the models saw (brush strokes included)."""
    image, mask = editor_input(image_and_mask, brush_strokes, editor_record).read()
    record = editor_record or {}
    pixels = None if mask is None else mask.astype(np.uint8) * 255
    return export_handlers.image_source(image, pixels, record.get("name"),
                                        record.get("mask_source") if mask is not None else None)


def sample_outputs(ctx: AppContext, session: str | None, name: str | None) -> tuple:
    """Editor value, editor record and true class of a sample, the upload field cleared and the
    domain notice emptied (no change without a name)."""
    if not name:
        return gr.update(), gr.update(), gr.update(), gr.update(), gr.update()

    def work() -> tuple:
        loaded = image_handlers.load_sample(ctx, name)
        return (*_show(ctx, session, loaded), loaded.label, None, "")

    return in_time("Loading the sample", "Pick it again.", work)


def on_sample(ctx: AppContext, sample_name: str | None,
              request: gr.Request | None = None) -> tuple:
    """Load a bundled sample and its mask into the editor: editor value, record, its true
    class, the upload field cleared, the domain notice emptied."""
    return sample_outputs(ctx, session_of(request), sample_name)


def on_upload(ctx: AppContext, image_file: str | None,
              request: gr.Request | None = None) -> tuple:
    """Decode an uploaded image into the editor (alpha channel → mask); the true class, the
    sample and the domain notice of the image before are cleared (notices of this one
    shown)."""
    def work() -> tuple:
        loaded = image_handlers.load_upload(ctx, image_file)
        return (*_show(ctx, session_of(request), loaded), None, None,
                inline_notices(loaded.notices))

    return in_time("Loading the image",
                   "Remove it from the upload field (×) and upload it again.", work)


def on_mask_file(ctx: AppContext, image_and_mask: dict | None, mask_image_file: str | None,
                 brush_strokes: str, editor_record: dict | None,
                 request: gr.Request | None = None) -> tuple:
    """Replace the editor's mask with an uploaded mask image (white = object)."""
    def work() -> tuple:
        loaded = image_handlers.mask_file(
            editor_input(image_and_mask, brush_strokes, editor_record), mask_image_file)
        return (*_show(ctx, session_of(request), loaded, editor_record),
                inline_notices(loaded.notices))

    return in_time("Reading the mask file", "Remove it (×) and upload it again.", work)


def _auto_mask(ctx: AppContext, method: str, image_and_mask: dict | None, brush_strokes: str,
               editor_record: dict | None, request: gr.Request | None) -> tuple:
    """Replace the mask with an automatic ``method`` mask (then the user corrects it)."""
    def work() -> tuple:
        loaded = image_handlers.auto_mask(
            editor_input(image_and_mask, brush_strokes, editor_record), method)
        return (*_show(ctx, session_of(request), loaded, editor_record),
                inline_notices(loaded.notices))

    return in_time(f"The {method} mask", "Press the button again.", work)


def on_threshold_mask(ctx: AppContext, image_and_mask: dict | None, brush_strokes: str,
                      editor_record: dict | None, request: gr.Request | None = None) -> tuple:
    """Replace the mask with an automatic threshold mask (then correct it)."""
    return _auto_mask(ctx, "threshold", image_and_mask, brush_strokes, editor_record, request)


def on_grabcut_mask(ctx: AppContext, image_and_mask: dict | None, brush_strokes: str,
                    editor_record: dict | None, request: gr.Request | None = None) -> tuple:
    """Replace the mask with an automatic GrabCut mask (then correct it)."""
    return _auto_mask(ctx, "grabcut", image_and_mask, brush_strokes, editor_record, request)


def on_clear(ctx: AppContext, image_and_mask: dict | None, brush_strokes: str,
             editor_record: dict | None, request: gr.Request | None = None) -> tuple:
    """Remove the mask."""
    def work() -> tuple:
        loaded = image_handlers.clear_mask(
            editor_input(image_and_mask, brush_strokes, editor_record))
        return (*_show(ctx, session_of(request), loaded, editor_record), "")

    return in_time("Clearing the mask", "Press Clear mask again.", work)


def brush(mode: str = editor_state.ADD) -> gr.Brush:
    """The editor's brush for a brush mode: green strokes add to the mask, red ones cut it."""
    colour = editor_state.BRUSH_COLOURS[mode]
    return gr.Brush(colors=[colour], default_color=colour, color_mode="fixed", default_size=12)


def on_brush_mode(mode: str | None) -> dict:
    """The brush colour of the chosen mode (strokes already drawn keep theirs)."""
    return gr.update(brush=brush(mode if mode in editor_state.BRUSH_MODES
                                 else editor_state.ADD))


def check_epsilon(lrp_epsilon: float | None) -> None:
    """Nothing to do: the validator (:func:`epsilon_validator`) judges ε first."""


def epsilon_validator(lrp_epsilon: float | None) -> dict:
    """ε judged at its field (a message there; no other widget changes)."""
    problem = epsilon_problem(lrp_epsilon)
    return gr.validate(problem is None, problem or "")  # one input: one verdict, no list


def on_setting(ctx: AppContext, image_and_mask: dict | None, *settings: Any,
               request: gr.Request | None = None) -> list[Any]:
    """A setting changed (class, opacity, ε, input rule, LRP, colour scale): explain again
    with it once there is an image (``settings``: :func:`on_explain`'s values after the
    editor's); before that, nothing changes."""
    if (image_and_mask or {}).get("background") is None:
        return [gr.update() for _ in range(len(EXPLAIN_OUTPUTS) + 1)]
    return on_explain(ctx, image_and_mask, *settings, request=request)
