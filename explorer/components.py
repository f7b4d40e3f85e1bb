"""What the tabs share: the model column, the Explain tab's widgets other tabs read, and (from
:mod:`explorer.handlers.outputs`, re-exported here) the names of each endpoint's outputs — so
that no tab imports another.

Outputs travel by name: an event function builds ``{name: value}`` and :func:`ordered` lays
it out in the order of the endpoint's ``*_OUTPUTS`` names (see :mod:`explorer.handlers.outputs`).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from explorer.errors import InputError, logger, user_message
from explorer.handlers.lrp_modes import LRP_MODES, OWN
from explorer.handlers.outputs import (  # noqa: F401 — re-exported for the tabs
    ARENA_LOAD_OUTPUTS,
    ARENA_OUTPUTS,
    AUDIT_OUTPUTS,
    CLEARED_NAMES,
    COMPARE_MODES_OUTPUTS,
    COUNTERFACTUAL_OUTPUTS,
    EXPLAIN_OUTPUTS,
    EXPORT_OUTPUTS,
    FINE_TUNE_OUTPUTS,
    INJECT_BIAS_OUTPUTS,
    LOAD_CHECKPOINT_OUTPUTS,
    LOAD_IMAGE_OUTPUTS,
    LOAD_SAMPLE_OUTPUTS,
    MODEL_CARDS_OUTPUTS,
    PAIR_OUTPUTS,
    SIDE_FIELDS,
    STRESS_TEST_OUTPUTS,
    editor_input,
    model_dropdown_updates,
    ordered,
    pair_values,
    session_of,
    side_names,
    side_values,
)
from explorer.media.widgets import output_image
from explorer.state import AppContext

NOT_RUN = "—"
"""What a result field shows before anything has run (never a number that could be read)."""


@dataclass
class SideWidgets:
    """The outputs of one model's column."""

    top: gr.Label
    overlay: gr.Image
    heatmap: gr.Image
    share: gr.Number
    pending: gr.Markdown

    def outputs(self) -> list:
        """The widgets in :data:`SIDE_FIELDS` order."""
        return [self.top, self.overlay, self.heatmap, self.share]

    def share_widgets(self) -> list:
        """The share field and the "—" shown in its place before a run."""
        return [self.share, self.pending]


def reveal_shares(has_run: bool) -> list:
    """Updates for two columns' :meth:`SideWidgets.share_widgets`: the share fields once
    something has run (Gradio's number field cannot be empty: it would read "0", which means
    "all on the object"), the "—" before."""
    return [gr.update(visible=bool(has_run)), gr.update(visible=not has_run)] * 2


def model_column(title: str, prefix: str) -> SideWidgets:
    """One model's output column (predictions, overlay, heatmap, share); ids start with
    ``prefix``."""
    with gr.Column(elem_id=f"{prefix}-column"):
        gr.Markdown(f"#### {title}")
        top = gr.Label(label="Top predictions", num_top_classes=10)
        # images carry no label badge and no buttons: nothing may cover a corner, where the
        # shortcut marks sit; a caption below says what each image is
        overlay = output_image(label="Heatmap over the image", show_label=False, type="numpy",
                           format="png", interactive=False, height=280, buttons=[],
                           elem_id=f"{prefix}-overlay")
        gr.Markdown("Heatmap over the image", elem_classes=["caption"])
        heatmap = output_image(label="Heatmap alone", show_label=False, type="numpy",
                           format="png", interactive=False, height=220, buttons=[],
                           elem_id=f"{prefix}-heatmap")
        gr.Markdown("Heatmap alone (its colour scale: in the summary)", elem_classes=["caption"])
        # "—" until a run: an empty share must not read "0" (= all on the object)
        pending = gr.Markdown(f"Background relevance share: **{NOT_RUN}** (not run yet)",
                              elem_id=f"{prefix}-share-pending")
        share = gr.Number(label="Background relevance share (0 = all on the object)",
                          value=None, precision=4, interactive=False, visible=False,
                          elem_id=f"{prefix}-share")
    return SideWidgets(top, overlay, heatmap, share, pending)


@dataclass
class ExplainWidgets:
    """The Explain tab's widgets that other tabs read or update (built by
    :func:`explorer.tabs.explain.build`)."""

    editor: gr.ImageEditor
    record: gr.State
    brush_mode: gr.Radio
    true_class: gr.Dropdown
    left: gr.Dropdown
    right: gr.Dropdown
    target: gr.Dropdown
    opacity: gr.Slider
    top_k: gr.Slider
    sample: gr.Dropdown
    upload: gr.File
    domain_notice: gr.Markdown
    has_run: gr.State | None = None
    """True once the model columns hold an answer: an event from another tab that fills them
    sets it too (an output of value True), and the shares replace their "—"."""

    def editor_inputs(self) -> list:
        """The widgets :func:`editor_input` reads, in its argument order."""
        return [self.editor, self.brush_mode, self.record]

    def image_names(self) -> list:
        """What names the current image besides the editor (the sample dropdown, the upload
        field, the domain notice): a tab that puts a new image in the editor clears them with
        :data:`CLEARED_NAMES`, so nothing names the image before."""
        return [self.sample, self.upload, self.domain_notice]


def lrp_mode_radio(modes: tuple[str, ...] = tuple(LRP_MODES), value: str = OWN,
                   label: str = "LRP") -> gr.Radio:
    """The switch between the corrected LRP and the authors' LRP block as published (and their
    difference); values are mode ids (:data:`explorer.handlers.lrp_modes.LRP_MODES`)."""
    return gr.Radio([(LRP_MODES[mode], mode) for mode in modes], value=value, label=label,
                    elem_id="lrp-mode" if OWN in modes else None)


def failure_notice(error: Exception) -> str:
    """A failed action's message as inline Markdown, for an event whose other outputs must not
    go into Gradio's error state (a raised error marks *every* output of its event): the event
    returns this in its own message widget and ``gr.update()`` for the rest. Unexpected errors
    are logged with their traceback (as :func:`explorer.errors.guarded` does)."""
    if not isinstance(error, InputError):
        logger.exception("unexpected error in a handler", exc_info=error)
    title, message = user_message(error)
    return f"⚠️ **{title}:** {message}"


def with_context(fn: Callable[..., Any], ctx: AppContext) -> Callable[..., Any]:
    """An event function of :mod:`explorer.handlers` (context first) bound to ``ctx``, as
    Gradio wires it: the same name, docstring and signature less ``ctx``, so Gradio still
    names the API parameters after it and injects ``gr.Request`` and ``gr.SelectData``."""

    @functools.wraps(fn)
    def bound(*args: Any, **kwargs: Any) -> Any:
        return fn(ctx, *args, **kwargs)

    signature = inspect.signature(fn)
    bound.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=list(signature.parameters.values())[1:])
    return bound
