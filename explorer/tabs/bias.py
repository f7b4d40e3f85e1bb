"""The Bias lab tab: widgets and wiring only (the work is in :mod:`explorer.handlers.bias`).

Uses the Explain tab's image, mask, true class and model choice. Four experiments: inject one
mark and compare heatmaps; a stress test sweeping the mark's opacity or size; a counterfactual
putting each class's mark on this image; and, over bundled test images, each model's accuracy
drop under every kind of mark planted with a random class.
"""

from __future__ import annotations

import gradio as gr

import isnet
from explorer.components import (
    COUNTERFACTUAL_OUTPUTS,
    INJECT_BIAS_OUTPUTS,
    STRESS_TEST_OUTPUTS,
    ExplainWidgets,
    editor_input,
    model_column,
    ordered,
    pair_values,
    reveal_shares,
    session_of,
)
from explorer.errors import guarded, notify
from explorer.handlers import bias as hb
from explorer.handlers import export as hx
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

    def on_true_class(true_name, left_model, request: gr.Request):
        """Default the mark to another class than the image's (a confounding mark)."""
        try:
            names = ctx.store.get(left_model, session_of(request)).class_names
        except ValueError:
            return gr.update()
        if true_name not in names:
            return gr.update()
        return gr.update(choices=names, value=names[(names.index(true_name) + 1) % len(names)])

    w.true_class.change(on_true_class, [w.true_class, w.left], [mark_class],
                        api_visibility="private")

    settings_inputs = [kind, mark_class, position, size, own_colour, colour, strength, seed]
    own_colour.change(lambda class_colour: gr.update(visible=not class_colour), [own_colour],
                      [colour], api_visibility="private", queue=False)
    shared = [w.editor, w.left, w.right, w.true_class]
    mask_inputs = [w.brush_mode, w.record]

    def bias_request(image_and_mask, left_model, right_model, true_class, mark_kind,
                     mark_of_class, mark_position, mark_size, class_colour, mark_colour,
                     mark_opacity, mark_seed, brush_strokes, editor_record,
                     overlay_opacity=0.6, top_predictions=3) -> hb.BiasRequest:
        """The widgets' values as one named request."""
        mark = hb.BiasSettings(mark_kind, mark_of_class, mark_position, float(mark_size),
                               None if class_colour else mark_colour, float(mark_opacity),
                               int(mark_seed or 0))
        return hb.BiasRequest(editor_input(image_and_mask, brush_strokes, editor_record),
                              left_model, right_model, true_class, mark,
                              float(overlay_opacity), int(top_predictions))

    @guarded
    def on_inject(image_and_mask, left_model, right_model, true_class, mark_kind,
                  mark_of_class, mark_position, mark_size, class_colour, mark_colour,
                  mark_opacity, mark_seed, overlay_opacity, top_predictions, brush_strokes,
                  editor_record, request: gr.Request):
        """Draw class A's mark in the background and explain both models on the result."""
        view = hb.inject(ctx, session_of(request), bias_request(
            image_and_mask, left_model, right_model, true_class, mark_kind, mark_of_class,
            mark_position, mark_size, class_colour, mark_colour, mark_opacity, mark_seed,
            brush_strokes, editor_record, overlay_opacity, top_predictions))
        session = session_of(request)
        hx.record_pair(ctx, session, "bias", f"Bias lab: mark of {mark_of_class} ({mark_kind})",
                       view.pair, [ctx.store.get(left_model, session),
                                   ctx.store.get(right_model, session)],
                       {"true_class": true_class, "mark": {
                           "kind": mark_kind, "class": mark_of_class, "position": mark_position,
                           "size": mark_size, "opacity": mark_opacity, "seed": mark_seed}},
                       [("biased image", view.biased)])
        notices = "\n\n".join(f"⚠️ {n}" for n in dict.fromkeys(view.pair.notices) if n)
        comparison = f"{view.comparison}\n\n{notices}" if notices else view.comparison
        return ordered({"biased": view.biased, "comparison": comparison,  # notices inline
                        **pair_values(view.pair), "colorbar": view.pair.colorbar,
                        "summary": view.pair.summary},
                       INJECT_BIAS_OUTPUTS)

    outputs = dict(zip(INJECT_BIAS_OUTPUTS, [biased, comparison] + left_side.outputs()
                       + right_side.outputs() + [colorbar, summary], strict=True))
    inject_inputs = shared + settings_inputs + [w.opacity, w.top_k] + mask_inputs
    injected = gr.State(False)
    run.click(on_inject, inject_inputs, ordered(outputs, INJECT_BIAS_OUTPUTS),
              api_name="inject_bias", concurrency_id="explain").success(
        lambda: True, None, [injected], api_visibility="private", queue=False)
    injected.change(reveal_shares, [injected],
                    left_side.share_widgets() + right_side.share_widgets(),
                    api_visibility="private", queue=False)

    def on_kind(shown, *values, request: gr.Request = None):
        """A new kind of mark: inject it again once a mark is shown (the stress test and the
        every-class sweep use the kind chosen now, so the biased image must too)."""
        if not shown:
            return [gr.update() for _ in INJECT_BIAS_OUTPUTS]
        return on_inject(*values, request=request)

    kind.input(on_kind, [injected] + inject_inputs, ordered(outputs, INJECT_BIAS_OUTPUTS),
               api_visibility="private", concurrency_id="explain", trigger_mode="always_last")

    @guarded
    def on_stress(image_and_mask, left_model, right_model, true_class, mark_kind,
                  mark_of_class, mark_position, mark_size, class_colour, mark_colour,
                  mark_opacity, mark_seed, sweep_of, sweep_steps, brush_strokes, editor_record,
                  request: gr.Request):
        """Sweep the mark's opacity or size; plot both models' probability of the true class."""
        result = hb.stress_test(ctx, session_of(request), bias_request(
            image_and_mask, left_model, right_model, true_class, mark_kind, mark_of_class,
            mark_position, mark_size, class_colour, mark_colour, mark_opacity, mark_seed,
            brush_strokes, editor_record), sweep=sweep_of, steps=int(sweep_steps))
        notify(result.notices)
        return ordered({"plot": result.figure, "table": result.rows}, STRESS_TEST_OUTPUTS)

    stress.click(on_stress, shared + settings_inputs + [sweep, steps] + mask_inputs,
                 [stress_plot, stress_table], api_name="stress_test", concurrency_id="explain")

    @guarded
    def on_counterfactual(image_and_mask, left_model, right_model, true_class, mark_kind,
                          mark_of_class, mark_position, mark_size, class_colour, mark_colour,
                          mark_opacity, mark_seed, brush_strokes, editor_record,
                          request: gr.Request):
        """Put every class's mark on this image; how often does each model follow it?"""
        result = hb.counterfactual(ctx, session_of(request), bias_request(
            image_and_mask, left_model, right_model, true_class, mark_kind, mark_of_class,
            mark_position, mark_size, class_colour, mark_colour, mark_opacity, mark_seed,
            brush_strokes, editor_record))
        return ordered({"plot": result.figure, "summary": result.summary},
                       COUNTERFACTUAL_OUTPUTS)

    counter.click(on_counterfactual, shared + settings_inputs + mask_inputs,
                  [counter_plot, counter_summary], api_name="counterfactual",
                  concurrency_id="explain")

    @guarded
    def on_robustness(left_model, right_model, images, request: gr.Request):
        """Both models' accuracy drop (points) under each kind of mark planted with a random
        other class into bundled test images; a Markdown table."""
        return hr.measure(ctx, session_of(request), hr.RobustnessRequest(
            (left_model, right_model), int(images))).markdown

    measure.click(on_robustness, [w.left, w.right, test_images], [drops], api_name="robustness",
                  concurrency_id="explain")
