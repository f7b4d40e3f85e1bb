"""The Explain tab: widgets and wiring only (the work is in :mod:`explorer.handlers.explain` and
:mod:`explorer.handlers.image`).

Left: the image (sample or upload), the foreground mask drawn in an image editor (brush and
eraser), uploaded, or made automatically and then corrected. Right: the two compared models side
by side — top predictions, LRP heatmap of the chosen class on one shared colour scale, overlay
with adjustable opacity, background relevance share.
"""

from __future__ import annotations

from collections.abc import Callable

import gradio as gr

from explorer import deadlines
from explorer.components import (
    EXPLAIN_OUTPUTS,
    ExplainWidgets,
    editor_input,
    lrp_mode_radio,
    model_column,
    ordered,
    pair_values,
    reveal_shares,
    session_of,
)
from explorer.errors import InputError, guarded
from explorer.handlers import export as export_handlers
from explorer.handlers import image as image_handlers
from explorer.handlers.explain import (
    EPSILON_RANGE,
    PREDICTED,
    TARGET_CHOICES,
    ExplainRequest,
    LRPOverrides,
    class_choices,
    epsilon_problem,
    explain,
)
from explorer.handlers.explain_views import COLOUR_SCALE_CHOICES, SHARED_SCALE
from explorer.handlers.image import LoadedImage
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


def brush(mode: str = editor_state.ADD) -> gr.Brush:
    """The editor's brush for a brush mode: green strokes add to the mask, red ones cut it."""
    colour = editor_state.BRUSH_COLOURS[mode]
    return gr.Brush(colors=[colour], default_color=colour, color_mode="fixed", default_size=12)


def build(ctx: AppContext) -> ExplainWidgets:
    """Create the Explain tab's widgets inside the current ``gr.Tab`` and wire their events."""
    classes = ctx.store.visible(None)[0].class_names if ctx.store.visible(None) else []
    choices = ctx.store.choices(None)
    gr.Markdown("**Start here:** click a sample (or upload an image), mark the object — paint "
                "it, or press *Auto mask* and correct it — then press **Explain**. Each model's "
                "heatmap shows where its evidence lies; the background share says how much of "
                "it falls outside the object.", elem_classes=["tab-help"])
    with gr.Row():
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
                                    type="numpy", format="png", brush=brush(),
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

    has_run = gr.State(False)  # set by every answer (State outputs are not sent to clients)
    widgets = ExplainWidgets(editor, record, brush_mode, true_class, left, right, target, opacity,
                             top_k, sample, upload, domain_notice, has_run)
    _wire_image(ctx, widgets, mask_file, auto_threshold, auto_grabcut, clear, mask_notice)

    def on_gallery(event: gr.SelectData):
        """The sample clicked in the gallery."""
        return ctx.samples[event.index].name

    @guarded
    def on_gallery_sample(name, request: gr.Request):
        """Load the clicked sample."""
        return sample_outputs(ctx, session_of(request), name)

    gallery.select(on_gallery, None, [sample], api_visibility="private").then(
        on_gallery_sample, [sample], [widgets.editor, record, widgets.true_class, upload,
                                      domain_notice], api_visibility="private")

    @guarded
    def on_explain(image_and_mask, left_model, right_model, explain_class, overlay_opacity,
                   top_predictions, brush_strokes, editor_record, lrp_epsilon=None,
                   input_zb_rule=AS_TRAINED, true_class_name=None, lrp=None,
                   colour_scale=SHARED_SCALE, request: gr.Request = None):
        """Explain the editor's image with the left and right models (heatmaps on one shared
        colour scale, or each on its own; ε and the input rule default to each model's
        training settings)."""
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
            lrp=[chosen.config(e) for e in entries])
        return ordered({**pair_values(pair), "colorbar": pair.colorbar, "summary": pair.summary,
                        "mask_preview": pair.mask_preview,
                        "notices": inline_notices(pair.notices)},
                       EXPLAIN_OUTPUTS) + [True]

    outputs = dict(zip(EXPLAIN_OUTPUTS, left_side.outputs() + right_side.outputs()
                       + [colorbar, summary, preview, domain_notice], strict=True))
    explain_inputs = [editor, left, right, target, opacity, top_k, brush_mode, record, epsilon,
                      zb, true_class, lrp_mode, colour_scale]
    explain_outputs = ordered(outputs, EXPLAIN_OUTPUTS) + [has_run]
    _wire_explain(on_explain, run, [opacity.release, target.input, lrp_mode.input,
                                    colour_scale.input, zb.input, epsilon.submit, epsilon.blur],
                  epsilon, explain_inputs, explain_outputs)
    has_run.change(reveal_shares, [has_run],
                   left_side.share_widgets() + right_side.share_widgets(),
                   api_visibility="private", queue=False)

    @guarded
    def on_model_change(left_model, request: gr.Request):
        """The explain-class choices and the training ε of the newly chosen left model."""
        session = session_of(request)
        return (gr.update(choices=class_choices(ctx, session, left_model), value=PREDICTED),
                ctx.store.get(left_model, session).epsilon)

    left.change(on_model_change, [left], [target, epsilon], api_name="class_choices")

    def on_brush_mode(mode):
        """The brush colour of the chosen mode (strokes already drawn keep theirs)."""
        return gr.update(brush=brush(mode if mode in editor_state.BRUSH_MODES
                                     else editor_state.ADD))

    brush_mode.change(on_brush_mode, [brush_mode], [editor], api_visibility="private",
                      queue=False)
    return widgets


def _wire_explain(on_explain: Callable, run: gr.Button, setting_triggers: list,
                  epsilon: gr.Number, explain_inputs: list, explain_outputs: list) -> None:
    """The Explain button and every setting that re-explains (class, opacity, ε, input rule,
    LRP, colour scale). Each runs a check of ε first: its validator names a bad ε at its field,
    and then nothing follows (no other widget turns red); ε is also judged as it is typed."""

    def check_epsilon(lrp_epsilon):
        """Nothing to do: the validator judges ε first."""

    def epsilon_validator(lrp_epsilon):
        """ε judged at its field (a message there; no other widget changes)."""
        problem = epsilon_problem(lrp_epsilon)
        return gr.validate(problem is None, problem or "")  # one input: one verdict, no list

    checked = {"fn": check_epsilon, "inputs": [epsilon], "outputs": None,
               "validator": epsilon_validator, "api_visibility": "private",
               "show_progress": "hidden"}
    epsilon.input(**checked, trigger_mode="always_last")  # as it is typed
    run.click(**checked).success(on_explain, explain_inputs, explain_outputs,
                                 api_name="explain", concurrency_id="explain",
                                 concurrency_limit=8)  # see batching

    def on_setting(image_and_mask, *settings, request: gr.Request = None):
        """A setting changed: explain again with it once there is an image; before that,
        nothing changes."""
        if (image_and_mask or {}).get("background") is None:
            return [gr.update() for _ in explain_outputs]
        return on_explain(image_and_mask, *settings, request=request)

    gr.on(setting_triggers, **checked, trigger_mode="always_last").success(
        on_setting, explain_inputs, explain_outputs, api_visibility="private",
        concurrency_id="explain")


AS_TRAINED = "as trained"
INPUT_RULES = [("as each model was trained", AS_TRAINED), ("z^B", "zb"), ("ε", "epsilon")]
"""The input-layer rule choices (label, value): each model's own, or one rule for both."""


def input_rule(value) -> bool | None:
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


def in_time(what: str, retry: str, work: Callable[[], tuple]) -> tuple:
    """An action that sets the editor's image or mask, given at most
    :data:`explorer.deadlines.IMAGE_ACTION_S` seconds (then a message saying how to retry)."""
    return deadlines.within(deadlines.IMAGE_ACTION_S, what, retry, work)


def inline_notices(notices: list[str]) -> str:
    """Notices as the Markdown of a notice box, each once and never also as a toast (a toast
    would repeat it and cover the results)."""
    return "\n\n".join(f"⚠️ {notice}" for notice in dict.fromkeys(notices) if notice)


def _show(ctx: AppContext, session: str | None, loaded: LoadedImage) -> tuple[dict, dict]:
    """Editor value and editor record showing a loaded image and its mask."""
    return editor_state.show(ctx.session_dir(session), loaded.image, loaded.mask)


def sample_outputs(ctx: AppContext, session: str | None, name: str | None) -> tuple:
    """Editor value, editor record and true class of a sample, the upload field cleared and the
    domain notice emptied (no change without a name)."""
    if not name:
        return gr.update(), gr.update(), gr.update(), gr.update(), gr.update()
    def work() -> tuple:
        loaded = image_handlers.load_sample(ctx, name)
        return (*_show(ctx, session, loaded), loaded.label, None, "")

    return in_time("Loading the sample", "Pick it again.", work)


def _wire_image(ctx: AppContext, w: ExplainWidgets, mask_file, auto_threshold, auto_grabcut,
                clear, mask_notice) -> None:
    """Events that set the editor's image and mask (and the record behind them); what the
    user should know about a mask is said under the mask buttons, not in a toast."""
    shown = [w.editor, w.record]

    @guarded
    def on_sample(sample_name, request: gr.Request):
        """Load a bundled sample and its mask into the editor; returns its true class."""
        return sample_outputs(ctx, session_of(request), sample_name)

    w.sample.input(on_sample, [w.sample], shown + [w.true_class, w.upload, w.domain_notice],
                 api_name="load_sample")

    @guarded
    def on_upload(image_file, request: gr.Request):
        """Decode an uploaded image into the editor (alpha channel → mask); the sample, the
        true class and the domain notice of the image before are cleared."""
        def work() -> tuple:
            loaded = image_handlers.load_upload(ctx, image_file)
            return (*_show(ctx, session_of(request), loaded), None, None,
                    inline_notices(loaded.notices))

        return in_time("Loading the image",
                       "Remove it from the upload field (×) and upload it again.", work)

    w.upload.upload(on_upload, [w.upload], shown + [w.true_class, w.sample, w.domain_notice],
                    api_name="load_image")

    @guarded
    def on_mask_file(image_and_mask, mask_image_file, brush_strokes, editor_record,
                     request: gr.Request):
        """Replace the editor's mask with an uploaded mask image (white = object)."""
        def work() -> tuple:
            loaded = image_handlers.mask_file(
                editor_input(image_and_mask, brush_strokes, editor_record), mask_image_file)
            return (*_show(ctx, session_of(request), loaded), inline_notices(loaded.notices))

        return in_time("Reading the mask file", "Remove it (×) and upload it again.", work)

    mask_file.upload(on_mask_file, [w.editor, mask_file, w.brush_mode, w.record],
                     shown + [mask_notice], api_name="upload_mask")

    def auto(method: str):
        @guarded
        def run(image_and_mask, brush_strokes, editor_record, request: gr.Request):
            def work() -> tuple:
                loaded = image_handlers.auto_mask(
                    editor_input(image_and_mask, brush_strokes, editor_record), method)
                return (*_show(ctx, session_of(request), loaded),
                        inline_notices(loaded.notices))

            return in_time(f"The {method} mask", "Press the button again.", work)
        run.__doc__ = f"Replace the mask with an automatic {method} mask (then correct it)."
        return run

    inputs = w.editor_inputs()
    auto_threshold.click(auto("threshold"), inputs, shown + [mask_notice],
                         api_name="mask_threshold")
    auto_grabcut.click(auto("grabcut"), inputs, shown + [mask_notice], api_name="mask_grabcut")

    @guarded
    def on_clear(image_and_mask, brush_strokes, editor_record, request: gr.Request):
        """Remove the mask."""
        def work() -> tuple:
            loaded = image_handlers.clear_mask(
                editor_input(image_and_mask, brush_strokes, editor_record))
            return (*_show(ctx, session_of(request), loaded), "")

        return in_time("Clearing the mask", "Press Clear mask again.", work)

    clear.click(on_clear, inputs, shown + [mask_notice], api_name="clear_mask")
