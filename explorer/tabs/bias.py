"""The Bias lab tab: widgets and wiring only (the work is in :mod:`explorer.handlers.bias`).

Uses the Explain tab's image, mask, true class and model choice. Four experiments: inject one
mark and compare heatmaps; a stress test sweeping the mark's opacity or size; a counterfactual
putting each class's mark on this image; and, over bundled test images, each model's accuracy
drop under every kind of mark planted with a random class.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

import isnet
from explorer.components import (
    INJECT_BIAS_OUTPUTS,
    ExplainWidgets,
    model_column,
    ordered,
    reveal_shares,
    with_context,
)
from explorer.errors import guarded
from explorer.handlers import bias as hb
from explorer.handlers import bias_events as events
from explorer.handlers import robustness as hr
from explorer.media.widgets import output_image
from explorer.state import AppContext


def build(ctx: AppContext, w: ExplainWidgets) -> None:
    """Create the Bias lab widgets inside the current ``gr.Tab`` and wire their events."""
    visible = ctx.store.visible(None)
    classes = visible[0].class_names if visible else []
    start = hb.training_defaults(ctx.store.get(ctx.default_pair[0], None))
    gr.Markdown("Plant a class-coloured shortcut in the **background** of the Explain tab's "
                "image (the foreground mask is never touched) and see which model falls for it. "
                "Set the image's true class in the Explain tab. The settings start at the mark the "
                "left model was trained with, when its checkpoint records it.")
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            kind = gr.Dropdown(list(isnet.BIAS_KINDS), value=start.kind, label="Kind of mark")
            mark_class = gr.Dropdown(classes, value=classes[1 % len(classes)] if classes else None,
                                     label="Mark of class (A)")
            position = gr.Dropdown([(p.replace("_", " "), p) for p in hb.POSITIONS],
                                   value=start.position, label="Position")
            size = gr.Slider(0.05, 0.5, value=round(start.size, 3), step=0.005,
                             label="Size (fraction of side)")
            with gr.Row():
                own_colour = gr.Checkbox(value=True, label="Class colour")
                colour = gr.ColorPicker(value="#ff0000", label="Colour", visible=False)
            strength = gr.Slider(0, 1, value=start.opacity, step=0.05, label="Opacity (strength)")
            seed = gr.Number(value=0, precision=0, label="Seed")
            run = gr.Button("Inject bias", variant="primary", elem_id="inject-button")
        with gr.Column(scale=2):
            biased = gr.Image(label="Biased image", show_label=False, type="numpy",
                              format="png", interactive=False, height=256, buttons=[],
                              elem_id="biased-image")
            gr.Markdown("Biased image (at model resolution)", elem_classes=["caption"])
            comparison = gr.Markdown(elem_classes=["table-text"])
            with gr.Row(elem_classes=["model-pair"]):
                left_side = model_column("Left model", "bias-left")
                right_side = model_column("Right model", "bias-right")
            colorbar = output_image(label="Shared colour scale", show_label=False, type="numpy",
                                    format="png", interactive=False, height=100, buttons=[],
                                    elem_id="bias-colour-scale")
            summary = gr.Markdown(elem_classes=["table-text"])
    (sweep, steps, stress, stress_plot, stress_table, counter, counter_plot, counter_summary,
     test_images, measure, drops) = _sweeps().values()
    w.true_class.change(with_context(events.on_true_class, ctx), [w.true_class, w.left],
                        [mark_class], api_visibility="private")
    settings_inputs = [kind, mark_class, position, size, own_colour, colour, strength, seed]
    own_colour.change(events.on_class_colour, [own_colour], [colour], api_visibility="private",
                      queue=False)
    shared = [w.editor, w.left, w.right, w.true_class]
    mask_inputs = [w.brush_mode, w.record]
    outputs = ordered(dict(zip(INJECT_BIAS_OUTPUTS, [biased, comparison] + left_side.outputs()
                               + right_side.outputs() + [colorbar, summary], strict=True)),
                      INJECT_BIAS_OUTPUTS)
    inject_inputs = shared + settings_inputs + [w.opacity, w.top_k] + mask_inputs
    injected = gr.State(False)
    run.click(guarded(with_context(events.on_inject, ctx)), inject_inputs, outputs,
              api_name="inject_bias", concurrency_id="explain").success(
        events.on_injected, None, [injected], api_visibility="private", queue=False)
    injected.change(reveal_shares, [injected],
                    left_side.share_widgets() + right_side.share_widgets(),
                    api_visibility="private", queue=False)
    kind.input(guarded(with_context(events.on_kind, ctx)), [injected] + inject_inputs, outputs,
               api_visibility="private", concurrency_id="explain", trigger_mode="always_last")
    stress.click(guarded(with_context(events.on_stress, ctx)),
                 shared + settings_inputs + [sweep, steps] + mask_inputs,
                 [stress_plot, stress_table], api_name="stress_test", concurrency_id="explain")
    counter.click(guarded(with_context(events.on_counterfactual, ctx)),
                  shared + settings_inputs + mask_inputs, [counter_plot, counter_summary],
                  api_name="counterfactual", concurrency_id="explain")
    measure.click(guarded(with_context(events.on_robustness, ctx)),
                  [w.left, w.right, test_images], [drops], api_name="robustness",
                  concurrency_id="explain")


def _sweeps() -> dict[str, Any]:
    """The three accordions below the mark: stress test, counterfactual sweep, test set
    (widgets by name)."""
    with gr.Accordion("Stress test: sweep the mark", open=False):
        with gr.Row():
            sweep = gr.Radio([(label, sweep) for sweep, label in hb.SWEEPS.items()],
                             value="opacity", label="Sweep")
            steps = gr.Slider(2, 12, value=6, step=1, label="Steps")
            stress = gr.Button("Run stress test")
        stress_plot = gr.Plot(label="P(true class) as the mark grows")
        stress_table = gr.Dataframe(headers=["value", "left P(true)", "right P(true)"],
                                    label="Values", interactive=False)
    with gr.Accordion("Counterfactual sweep: each class A's mark on this image of class B",
                      open=False):
        counter = gr.Button("Try every class's mark", elem_id="every-mark-button")
        counter_plot = gr.Plot(label="P(A) after adding A's mark")
        counter_summary = gr.Markdown()
    with gr.Accordion("Over the test set: background changes the models never saw", open=False):
        gr.Markdown("Plants every kind of mark, with a random other class, into the background "
                    "of bundled Fashion-MNIST test images and measures each model's accuracy "
                    "drop against the clean images (Fashion-MNIST models only; ~10 s per model "
                    "for 200 images).")
        with gr.Row():
            test_images = gr.Slider(20, hr.MAX_IMAGES, value=200, step=20, label="Test images",
                                    scale=3)
            measure = gr.Button("Measure robustness", scale=1)
        drops = gr.Markdown(elem_classes=["table-text"])
    return dict(sweep=sweep, steps=steps, stress=stress, stress_plot=stress_plot,
                stress_table=stress_table, counter=counter, counter_plot=counter_plot,
                counter_summary=counter_summary, test_images=test_images, measure=measure,
                drops=drops)
