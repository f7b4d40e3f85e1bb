"""The Explain tab: widgets and wiring only (work happens in :mod:`explorer.handlers`).

Left: the image (sample or upload), the foreground mask drawn in an image editor (brush and
eraser), uploaded, or made automatically and then corrected. Right: the two compared models side
by side — top predictions, LRP heatmap of the chosen class on one shared colour scale, overlay
with adjustable opacity, background relevance share.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from explorer import editor as editor_state
from explorer import handlers
from explorer.feedback import guarded, notify, session_of
from explorer.state import AppContext
from explorer.uploads import IMAGE_EXTENSIONS

BRUSH = gr.Brush(colors=["rgba(0, 230, 90, 0.45)"], default_color="rgba(0, 230, 90, 0.45)",
                 color_mode="fixed", default_size=12)


@dataclass
class SideWidgets:
    """The outputs of one model's column."""

    top: gr.Label
    overlay: gr.Image
    heatmap: gr.Image
    share: gr.Number

    def outputs(self) -> list:
        """The widgets in the order :func:`side_outputs` fills them."""
        return [self.top, self.overlay, self.heatmap, self.share]


@dataclass
class ExplainWidgets:
    """Widgets other tabs read or update."""

    editor: gr.ImageEditor
    record: gr.State
    brush_mode: gr.Radio
    true_class: gr.Dropdown
    left: gr.Dropdown
    right: gr.Dropdown
    target: gr.Dropdown
    opacity: gr.Slider
    top_k: gr.Slider


def side_outputs(view: handlers.ModelView) -> list:
    """Widget values for one side: label dict, overlay, heatmap, share."""
    return [view.top, view.overlay, view.heatmap, view.share]


def model_column(title: str, prefix: str) -> SideWidgets:
    """One model's output column (predictions, overlay, heatmap, share); ids start with
    ``prefix``."""
    with gr.Column(elem_id=f"{prefix}-column"):
        gr.Markdown(f"#### {title}")
        top = gr.Label(label="Top predictions", num_top_classes=5)
        overlay = gr.Image(label="Heatmap over the image", type="numpy", format="png",
                           interactive=False, height=280, elem_id=f"{prefix}-overlay")
        heatmap = gr.Image(label="Heatmap (shared scale)", type="numpy", format="png",
                           interactive=False, height=220, elem_id=f"{prefix}-heatmap")
        share = gr.Number(label="Background relevance share (0 = all on the object)",
                          value=None, precision=4, interactive=False)
    return SideWidgets(top, overlay, heatmap, share)


def build(ctx: AppContext) -> ExplainWidgets:
    """Create the Explain tab's widgets inside the current ``gr.Tab`` and wire their events."""
    classes = ctx.store.visible(None)[0].class_names if ctx.store.visible(None) else []
    choices = ctx.store.choices(None)
    with gr.Row():
        with gr.Column(scale=1, min_width=320):
            gr.Markdown("#### 1 · Image and foreground mask")
            gallery = gr.Gallery([(s.image_path, s.label or s.name) for s in ctx.samples],
                                 label="Samples (click one)", columns=5, height=150,
                                 allow_preview=False, visible=bool(ctx.samples))
            sample = gr.Dropdown([s.name for s in ctx.samples], value=None, label="Sample image")
            upload = gr.File(label="…or upload an image (PNG, JPEG, WebP, BMP, TIFF)",
                             file_types=list(IMAGE_EXTENSIONS), type="filepath", height=90,
                             elem_id="image-upload")
            true_class = gr.Dropdown(classes, value=None, label="True class (if known)")
            editor = gr.ImageEditor(label="Paint the object (brush) · fix with the eraser",
                                    type="numpy", format="png", brush=BRUSH, eraser=gr.Eraser(),
                                    layers=False, transforms=(), sources=(), height=380,
                                    elem_id="mask-editor")
            record = gr.State(editor_state.empty_record())
            brush_mode = gr.Radio(list(editor_state.BRUSH_MODES), value=editor_state.ADD,
                                  label="Brush strokes", elem_id="brush-mode")
            with gr.Row():
                auto_threshold = gr.Button("Auto mask: threshold", size="sm")
                auto_grabcut = gr.Button("Auto mask: GrabCut", size="sm")
                clear = gr.Button("Clear mask", size="sm")
            mask_file = gr.File(label="…or upload a mask (white = object)",
                                file_types=list(IMAGE_EXTENSIONS), type="filepath", height=90)
            preview = gr.Image(label="Mask overlay (what the share uses)", type="numpy",
                               format="png", interactive=False, height=200)
        with gr.Column(scale=2):
            gr.Markdown("#### 2 · Compare two models")
            with gr.Row():
                left = gr.Dropdown(choices, value=ctx.default_pair[0], label="Left model",
                                   allow_custom_value=True)
                right = gr.Dropdown(choices, value=ctx.default_pair[1], label="Right model",
                                    allow_custom_value=True)
            with gr.Row():
                target = gr.Dropdown([handlers.PREDICTED] + classes, value=handlers.PREDICTED,
                                     label="Explain class")
                top_k = gr.Slider(1, 10, value=3, step=1, label="Top predictions")
                opacity = gr.Slider(0, 1, value=0.6, step=0.05, label="Overlay opacity")
            run = gr.Button("Explain", variant="primary", elem_id="explain-button")
            with gr.Row():
                left_side = model_column("Left model", "left")
                right_side = model_column("Right model", "right")
            colorbar = gr.Image(label="Shared colour scale: blue −s … white 0 … red +s",
                                type="numpy", format="png", interactive=False, height=60)
            summary = gr.Markdown(elem_id="explain-summary")

    widgets = ExplainWidgets(editor, record, brush_mode, true_class, left, right, target, opacity,
                             top_k)
    _wire_image(ctx, widgets, sample, upload, mask_file, auto_threshold, auto_grabcut, clear)

    def on_gallery(event: gr.SelectData):
        """The sample clicked in the gallery."""
        return ctx.samples[event.index].name

    @guarded
    def on_gallery_sample(name, request: gr.Request):
        """Load the clicked sample."""
        return sample_outputs(ctx, session_of(request), name)

    gallery.select(on_gallery, None, [sample], api_visibility="private").then(
        on_gallery_sample, [sample], [widgets.editor, record, widgets.true_class],
        api_visibility="private")

    @guarded
    def on_explain(value, left_id, right_id, target_name, opacity_value, k, mode, state,
                   request: gr.Request):
        """Explain the editor's image with the left and right models (heatmaps on one scale)."""
        view = handlers.explain(ctx, session_of(request), value, left_id, right_id, target_name,
                                opacity_value, k, state, mode)
        notify(view.notices)
        return (side_outputs(view.views[0]) + side_outputs(view.views[1])
                + [view.colorbar, view.summary, view.mask_preview])

    gr.on([run.click, opacity.release, target.input], on_explain,
          inputs=[editor, left, right, target, opacity, top_k, brush_mode, record],
          outputs=left_side.outputs() + right_side.outputs() + [colorbar, summary, preview],
          api_name="explain", concurrency_id="explain", concurrency_limit=2)

    @guarded
    def on_model_change(left_id, request: gr.Request):
        """The explain-class choices of the newly chosen left model."""
        return gr.update(choices=handlers.class_choices(ctx, session_of(request), left_id),
                         value=handlers.PREDICTED)

    left.change(on_model_change, [left], [target], api_name="class_choices")
    return widgets


def sample_outputs(ctx: AppContext, session: str | None, name: str | None) -> tuple:
    """Editor value, editor record and true class of a sample (no change without a name)."""
    if not name:
        return gr.update(), gr.update(), gr.update()
    image, mask, label = handlers.load_sample(ctx, name)
    return (*editor_state.show(ctx, session, image, mask), label)


def _wire_image(ctx: AppContext, w: ExplainWidgets, sample, upload, mask_file, auto_threshold,
                auto_grabcut, clear) -> None:
    """Events that set the editor's image and mask (and the record behind them)."""
    shown = [w.editor, w.record]

    @guarded
    def on_sample(name, request: gr.Request):
        """Load a bundled sample and its mask into the editor; returns its true class."""
        return sample_outputs(ctx, session_of(request), name)

    sample.input(on_sample, [sample], shown + [w.true_class], api_name="load_sample")

    @guarded
    def on_upload(path, request: gr.Request):
        """Decode an uploaded image into the editor (alpha channel → mask)."""
        image, mask, notices = handlers.load_upload(ctx, path)
        notify(notices)
        return editor_state.show(ctx, session_of(request), image, mask)

    upload.upload(on_upload, [upload], shown, api_name="load_image")

    @guarded
    def on_mask_file(value, path, mode, state, request: gr.Request):
        """Replace the editor's mask with an uploaded mask image (white = object)."""
        image, mask = handlers.mask_file(value, path, state, mode)
        return editor_state.show(ctx, session_of(request), image, mask)

    mask_file.upload(on_mask_file, [w.editor, mask_file, w.brush_mode, w.record], shown,
                     api_name="upload_mask")

    def auto(method: str):
        @guarded
        def run(value, mode, state, request: gr.Request):
            image, mask, warning = handlers.auto_mask(value, method, state, mode)
            notify([warning])
            return editor_state.show(ctx, session_of(request), image, mask)
        run.__doc__ = f"Replace the mask with an automatic {method} mask (then correct it)."
        return run

    inputs = [w.editor, w.brush_mode, w.record]
    auto_threshold.click(auto("threshold"), inputs, shown, api_name="mask_threshold")
    auto_grabcut.click(auto("grabcut"), inputs, shown, api_name="mask_grabcut")

    @guarded
    def on_clear(value, mode, state, request: gr.Request):
        """Remove the mask."""
        image, _ = handlers.read_editor(value, state, mode)
        return editor_state.show(ctx, session_of(request), image, None)

    clear.click(on_clear, inputs, shown, api_name="clear_mask")
