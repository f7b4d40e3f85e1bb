"""The Explain tab: widgets and wiring only (the events are named functions in
:mod:`explorer.handlers.explain_events`; the work is in :mod:`explorer.handlers.explain` and
:mod:`explorer.handlers.image`).

Left: the image (sample or upload), the foreground mask drawn in an image editor (brush and
eraser), uploaded, or made automatically and then corrected. Right: the two compared models side
by side — top predictions, LRP heatmap of the chosen class on one shared colour scale, overlay
with adjustable opacity, background relevance share.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from explorer.components import (
    EXPLAIN_OUTPUTS,
    ExplainWidgets,
    lrp_mode_radio,
    model_column,
    ordered,
    reveal_shares,
    with_context,
)
from explorer.errors import guarded
from explorer.handlers import explain_events as events
from explorer.handlers.explain import EPSILON_RANGE, PREDICTED, TARGET_CHOICES
from explorer.handlers.explain_events import (  # noqa: F401 — input_rule: kept importable here
    AS_TRAINED,
    INPUT_RULES,
    input_rule,
)
from explorer.handlers.explain_views import COLOUR_SCALE_CHOICES, SHARED_SCALE
from explorer.handlers.spellings import old_labels
from explorer.media import editor as editor_state
from explorer.media.decode import IMAGE_EXTENSIONS
from explorer.media.widgets import (
    accepting_old_spellings,
    checked_image_editor,
    field_checked_number,
    output_image,
)
from explorer.state import AppContext


def build(ctx: AppContext) -> ExplainWidgets:
    """Create the Explain tab's widgets inside the current ``gr.Tab`` and wire their events."""
    classes = ctx.store.visible(None)[0].class_names if ctx.store.visible(None) else []
    gr.Markdown("**Start here:** click a sample (or upload an image), mark the object — paint "
                "it, or press *Auto mask* and correct it — then press **Explain**. Each model's "
                "heatmap shows where its evidence lies; the background share says how much of "
                "it falls outside the object.", elem_classes=["tab-help"])
    with gr.Row():
        image_side = _image_column(ctx, classes)
        compare = _compare_column(ctx, classes)
    (gallery, sample, upload, true_class, editor, record, run, brush_mode, auto_threshold,
     auto_grabcut, clear, mask_notice, mask_file, preview) = image_side.values()
    (left, right, target, top_k, opacity, epsilon, zb, lrp_mode, colour_scale, domain_notice,
     left_side, right_side, colorbar, summary) = compare.values()
    has_run = gr.State(False)  # set by every answer (State outputs are not sent to clients)
    widgets = ExplainWidgets(editor, record, brush_mode, true_class, left, right, target, opacity,
                             top_k, sample, upload, domain_notice, has_run)
    _wire_image(ctx, widgets, mask_file, auto_threshold, auto_grabcut, clear, mask_notice)
    gallery.select(with_context(events.on_gallery, ctx), None, [sample],
                   api_visibility="private").then(
        guarded(with_context(events.on_sample, ctx)), [sample],
        [widgets.editor, record, widgets.true_class, upload, domain_notice],
        api_visibility="private")
    outputs = dict(zip(EXPLAIN_OUTPUTS, left_side.outputs() + right_side.outputs()
                       + [colorbar, summary, preview, domain_notice], strict=True))
    explain_inputs = [editor, left, right, target, opacity, top_k, brush_mode, record, epsilon,
                      zb, true_class, lrp_mode, colour_scale]
    explain_outputs = ordered(outputs, EXPLAIN_OUTPUTS) + [has_run]
    _wire_explain(ctx, run, [opacity.release, target.input, lrp_mode.input, colour_scale.input,
                             zb.input, epsilon.submit, epsilon.blur],
                  epsilon, explain_inputs, explain_outputs)
    has_run.change(reveal_shares, [has_run],
                   left_side.share_widgets() + right_side.share_widgets(),
                   api_visibility="private", queue=False)
    left.change(guarded(with_context(events.on_model_change, ctx)), [left], [target, epsilon],
                api_name="class_choices")
    brush_mode.change(events.on_brush_mode, [brush_mode], [editor], api_visibility="private",
                      queue=False)
    return widgets


def _image_column(ctx: AppContext, classes: list[str]) -> dict[str, Any]:
    """Left column: samples, upload, true class, the mask editor and its buttons (widgets by
    name)."""
    with gr.Column(scale=1, min_width=320):
        gr.Markdown("#### 1 · Image and foreground mask")
        gr.Markdown("Samples (click one):", elem_classes=["caption"],
                    visible=bool(ctx.samples))
        # captions: the class, or the sample's name without its "synthetic_" prefix (the
        # dropdown below has the full names)
        gallery = gr.Gallery([(s.image_path, s.label or s.name.removeprefix("synthetic_")
                               .replace("_", " ")) for s in ctx.samples],
                             label="Samples", show_label=False, columns=5, height="auto",
                             allow_preview=False, visible=bool(ctx.samples), buttons=[],
                             elem_id="sample-gallery")
        sample = gr.Dropdown([s.name for s in ctx.samples], value=None, label="Sample image")
        upload = gr.File(label="…or upload an image (PNG, JPEG, WebP, BMP, TIFF)",
                         file_types=list(IMAGE_EXTENSIONS), type="filepath", height=140,
                         elem_id="image-upload")
        true_class = gr.Dropdown(classes, value=None, label="True class (if known)")
        gr.Markdown("Paint the object with the brush (green adds, red removes; the "
                    "eraser takes strokes back).", elem_classes=["caption"])
        editor = checked_image_editor(label="Image and mask", show_label=False,
                                type="numpy", format="png", brush=events.brush(),
                                eraser=gr.Eraser(),
                                layers=False, transforms=(), sources=(), height=380,
                                elem_id="mask-editor")
        record = gr.State(editor_state.empty_record())
        # right under the image, so that on a phone the main action is near the top
        run = gr.Button("Explain", variant="primary", elem_id="explain-button")
        brush_mode = gr.Radio([(editor_state.BRUSH_LABELS[m], m)
                               for m in editor_state.BRUSH_MODES], value=editor_state.ADD,
                              label="Brush strokes", elem_id="brush-mode")
        with gr.Row():
            auto_threshold = gr.Button("Auto mask: threshold", size="sm")
            auto_grabcut = gr.Button("Auto mask: GrabCut", size="sm")
            clear = gr.Button("Clear mask", size="sm")
        mask_notice = gr.Markdown(elem_id="mask-notice")
        mask_file = gr.File(label="…or upload a mask (white = object)",
                            file_types=list(IMAGE_EXTENSIONS), type="filepath", height=140,
                            elem_id="mask-upload")
        preview = output_image(label="Mask overlay", show_label=False, type="numpy",
                           format="png", interactive=False, height=200, buttons=[])
        gr.Markdown("Mask overlay: the mask the background share uses.",
                    elem_classes=["caption"])
    return dict(gallery=gallery, sample=sample, upload=upload, true_class=true_class,
                editor=editor, record=record, run=run, brush_mode=brush_mode,
                auto_threshold=auto_threshold, auto_grabcut=auto_grabcut, clear=clear,
                mask_notice=mask_notice, mask_file=mask_file, preview=preview)


def _compare_column(ctx: AppContext, classes: list[str]) -> dict[str, Any]:
    """Right column: the two models, the explain settings and both models' answers (widgets
    by name)."""
    choices = ctx.store.choices(None)
    with gr.Column(scale=2):
        gr.Markdown("#### 2 · Compare two models")
        with gr.Row():
            # min widths: on a phone the two stack instead of cutting the model names
            left = gr.Dropdown(choices, value=ctx.default_pair[0], label="Left model",
                               allow_custom_value=True, min_width=300)
            right = gr.Dropdown(choices, value=ctx.default_pair[1], label="Right model",
                                allow_custom_value=True, min_width=300)
        with gr.Row():
            # custom values: old label spellings still reach the handler after a model
            # change rebuilt the dropdown (it reads them, and names an unknown class)
            target = gr.Dropdown(TARGET_CHOICES + [(c, c) for c in classes],
                                 value=PREDICTED, label="Explain class",
                                 info="which output the heatmap explains",
                                 allow_custom_value=True)
            top_k = gr.Slider(1, 10, value=3, step=1, label="Top predictions")
            opacity = gr.Slider(0, 1, value=0.6, step=0.05, label="Overlay opacity")
        with gr.Row():
            start = ctx.store.get(ctx.default_pair[0], None).epsilon
            epsilon = field_checked_number(
                value=start, label="ε (LRP ε-rule)", minimum=EPSILON_RANGE[0],
                maximum=EPSILON_RANGE[1], step=0.005, elem_id="epsilon",
                info="default: the left model's training value; Enter re-explains")
            zb = gr.Radio(INPUT_RULES, value=AS_TRAINED, label="Input layer rule",
                          info="z^B credits dark pixels too (bounds: the pixel range); "
                               "ε gives black pixels no relevance")
        lrp_mode = lrp_mode_radio()
        colour_scale = accepting_old_spellings(gr.Radio(
            COLOUR_SCALE_CHOICES, value=SHARED_SCALE, label="Colour scale",
            info="shared: colours compare across models, and a weak model's map may look "
                 "faint; own: each map uses the whole range"),
            old_labels(COLOUR_SCALE_CHOICES), "the colour scale")
        domain_notice = gr.Markdown(elem_id="domain-notice")
        with gr.Row(elem_classes=["model-pair"]):
            left_side = model_column("Left model", "left")
            right_side = model_column("Right model", "right")
        colorbar = output_image(label="Shared colour scale", show_label=False, type="numpy",
                            format="png", interactive=False, height=100, buttons=[],
                            elem_id="colour-scale")
        gr.Markdown("Colour scale of the heatmaps (values in the summary below).",
                    elem_classes=["caption"])
        summary = gr.Markdown(elem_id="explain-summary",
                              elem_classes=["table-text"])

    return dict(left=left, right=right, target=target, top_k=top_k, opacity=opacity,
                epsilon=epsilon, zb=zb, lrp_mode=lrp_mode, colour_scale=colour_scale,
                domain_notice=domain_notice, left_side=left_side, right_side=right_side,
                colorbar=colorbar, summary=summary)


def _wire_explain(ctx: AppContext, run: gr.Button, setting_triggers: list,
                  epsilon: gr.Number, explain_inputs: list, explain_outputs: list) -> None:
    """The Explain button and every setting that re-explains (class, opacity, ε, input rule,
    LRP, colour scale). Each runs a check of ε first: its validator names a bad ε at its field,
    and then nothing follows (no other widget turns red); ε is also judged as it is typed."""
    checked = {"fn": events.check_epsilon, "inputs": [epsilon], "outputs": None,
               "validator": events.epsilon_validator, "api_visibility": "private",
               "show_progress": "hidden"}
    epsilon.input(**checked, trigger_mode="always_last")  # as it is typed
    run.click(**checked).success(guarded(with_context(events.on_explain, ctx)), explain_inputs,
                                 explain_outputs, api_name="explain", concurrency_id="explain",
                                 concurrency_limit=8)  # see batching
    gr.on(setting_triggers, **checked, trigger_mode="always_last").success(
        guarded(with_context(events.on_setting, ctx)), explain_inputs, explain_outputs,
        api_visibility="private", concurrency_id="explain")


def _wire_image(ctx: AppContext, w: ExplainWidgets, mask_file, auto_threshold, auto_grabcut,
                clear, mask_notice) -> None:
    """Events that set the editor's image and mask (and the record behind them); what the
    user should know about a mask is said under the mask buttons, not in a toast."""
    shown = [w.editor, w.record]
    w.sample.input(guarded(with_context(events.on_sample, ctx)), [w.sample],
                   shown + [w.true_class, w.upload, w.domain_notice], api_name="load_sample")
    w.upload.upload(guarded(with_context(events.on_upload, ctx)), [w.upload],
                    shown + [w.true_class, w.sample, w.domain_notice], api_name="load_image")
    mask_file.upload(guarded(with_context(events.on_mask_file, ctx)),
                     [w.editor, mask_file, w.brush_mode, w.record], shown + [mask_notice],
                     api_name="upload_mask")
    inputs = w.editor_inputs()
    auto_threshold.click(guarded(with_context(events.on_threshold_mask, ctx)), inputs,
                         shown + [mask_notice], api_name="mask_threshold")
    auto_grabcut.click(guarded(with_context(events.on_grabcut_mask, ctx)), inputs,
                       shown + [mask_notice], api_name="mask_grabcut")
    clear.click(guarded(with_context(events.on_clear, ctx)), inputs, shown + [mask_notice],
                api_name="clear_mask")
