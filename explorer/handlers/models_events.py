"""The Models tab's event functions, each named and typed: ``explorer/tabs/models.py`` only
lays out the widgets and wires these (bound to the app's context with
:func:`explorer.components.with_context`), and tests call them directly.

Each takes the app's context first, then the widgets' values in the order the tab wires them
(their names are the ``/load_checkpoint``, ``/model_cards``, … API's parameter names), then the
request.
"""

from __future__ import annotations

from typing import Any

import gradio as gr
from matplotlib.figure import Figure

from explorer.handlers import lrp_compare, sanity
from explorer.handlers import models as hm
from explorer.handlers.outputs import (
    COMPARE_MODES_OUTPUTS,
    LOAD_CHECKPOINT_OUTPUTS,
    MODEL_CARDS_OUTPUTS,
    editor_input,
    model_dropdown_updates,
    ordered,
    session_of,
)
from explorer.state import AppContext


def overrides(size: float | None, mean: str | None, std: str | None,
              class_file: str | None) -> hm.Overrides:
    """The override fields as one :class:`explorer.handlers.models.Overrides` (blank: none)."""
    return hm.Overrides(int(size) if size else None, mean or "", std or "", class_file or None)


def on_load(ctx: AppContext, checkpoint_file: str | None, display_name: str | None,
            disk_path: str | None = None, input_size_px: float | None = None,
            norm_mean: str | None = None, norm_std: str | None = None,
            class_names_file: str | None = None, bundled_checkpoint: str | None = None,
            request: gr.Request | None = None) -> list[Any]:
    """Load a checkpoint (upload, bundled file or local path) into this session: its card,
    every card, and the model lists (:data:`explorer.components.LOAD_CHECKPOINT_OUTPUTS`)."""
    session = session_of(request)
    entry = hm.load_model(ctx, session, hm.LoadRequest(
        checkpoint_file, disk_path, display_name,
        overrides(input_size_px, norm_mean, norm_std, class_names_file),
        bundled_checkpoint or None))
    left, right, choices = model_dropdown_updates(ctx, session, 3)
    return ordered({"card": hm.model_card(entry), "cards": hm.cards(ctx, session),
                    "left_model": left, "right_model": right, "download_choices": choices},
                   LOAD_CHECKPOINT_OUTPUTS)


def on_load_card(ctx: AppContext, checkpoint_file: str | None, display_name: str | None,
                 disk_path: str | None = None, input_size_px: float | None = None,
                 norm_mean: str | None = None, norm_std: str | None = None,
                 class_names_file: str | None = None, bundled_checkpoint: str | None = None,
                 request: gr.Request | None = None) -> Any:
    """The card of the checkpoint just loaded (the first output of :func:`on_load`): the
    button's own event, so that a refusal marks that card alone."""
    return on_load(ctx, checkpoint_file, display_name, disk_path, input_size_px, norm_mean,
                   norm_std, class_names_file, bundled_checkpoint, request=request)[0]


def on_model_lists(ctx: AppContext, request: gr.Request | None = None) -> tuple:
    """The cards and every model list (left, right, download), after a successful load or
    override."""
    session = session_of(request)
    left, right, choices = model_dropdown_updates(ctx, session, 3)
    return hm.cards(ctx, session), left, right, choices


def on_cards(ctx: AppContext, request: gr.Request | None = None) -> list[Any]:
    """Cards of every model this session can use, and the download list
    (:data:`explorer.components.MODEL_CARDS_OUTPUTS`)."""
    session = session_of(request)
    return ordered({"cards": hm.cards(ctx, session),
                    "download_choices": model_dropdown_updates(ctx, session, 1)[0]},
                   MODEL_CARDS_OUTPUTS)


def on_pick(ctx: AppContext, model: str | None,
            request: gr.Request | None = None) -> tuple[Any, Any]:
    """The checkpoint file of a model, for download, and its LRP mode (no change without a
    model; a notice when there is no file)."""
    if not model:
        return None, gr.update()
    session = session_of(request)
    path = hm.model_file(ctx, session, model)
    if path is None:
        gr.Info("This model has no checkpoint file (an untrained demo model).")
    return path, ctx.store.get(model, session).lrp_mode


def on_apply(ctx: AppContext, model: str | None, input_size_px: float | None,
             norm_mean: str | None, norm_std: str | None, class_names_file: str | None,
             request: gr.Request | None = None) -> str:
    """Apply input size, normalisation and class-name overrides to one of your models; its
    card."""
    entry = hm.override_model(ctx, session_of(request), model, overrides(
        input_size_px, norm_mean, norm_std, class_names_file))
    return hm.model_card(entry)


def on_mode(ctx: AppContext, model: str | None, lrp_mode: str,
            request: gr.Request | None = None) -> Any:
    """Make the corrected or the authors' LRP this model's own mode; its card."""
    if not model:
        return gr.update()
    return hm.model_card(lrp_compare.set_mode(ctx, session_of(request), model, lrp_mode))


def on_compare(ctx: AppContext, model: str | None, image_and_mask: dict | None,
               brush_strokes: str, editor_record: dict | None,
               request: gr.Request | None = None) -> list[Any]:
    """Corrected and authors' heatmaps of the picked model on the Explain tab's image, and
    their difference (:data:`explorer.components.COMPARE_MODES_OUTPUTS`)."""
    image, _ = editor_input(image_and_mask, brush_strokes, editor_record).read()
    result = lrp_compare.compare_modes(ctx, session_of(request), model, image)
    return ordered({"corrected": result.corrected, "authors": result.authors,
                    "difference": result.difference, "summary": result.summary},
                   COMPARE_MODES_OUTPUTS)


def on_randomise(ctx: AppContext, model: str | None, image_choice: str | None,
                 image_and_mask: dict | None, brush_strokes: str, editor_record: dict | None,
                 request: gr.Request | None = None) -> tuple[Figure, str]:
    """The cascading model-randomisation test of the picked model on the chosen image (a
    sample, or the Explain tab's): the similarity figure and the verdict."""
    image = sanity.chosen_image(ctx, image_choice,
                                editor_input(image_and_mask, brush_strokes, editor_record))
    view = sanity.randomisation_test(ctx, session_of(request), model, image)
    return view.figure, view.summary
