"""The Bias lab tab: widgets and wiring only (work happens in :mod:`explorer.handlers_bias`).

Uses the Explain tab's image, mask, true class and model choice. Three experiments: inject one
mark and compare heatmaps; a stress test sweeping the mark's opacity or size; a counterfactual
putting each class's mark on this image.
"""

from __future__ import annotations

import gradio as gr

from explorer import handlers_bias as hb
from explorer.feedback import guarded, notify, session_of
from explorer.state import AppContext
from explorer.tab_explain import ExplainWidgets, model_column, side_outputs


def build(ctx: AppContext, w: ExplainWidgets) -> None:
    """Create the Bias lab widgets inside the current ``gr.Tab`` and wire their events."""
    from isnet.data.bias.config import BIAS_KINDS

    visible = ctx.store.visible(None)
    classes = visible[0].class_names if visible else []
    start = hb.training_defaults(ctx.store.get(ctx.default_pair[0], None))
    gr.Markdown("Plant a class-coloured shortcut in the **background** of the Explain tab's "
                "image (the foreground mask is never touched) and see which model falls for it. "
                "Set the image's true class in the Explain tab. The settings start at the mark the "
                "left model was trained with, when its checkpoint records it.")
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            kind = gr.Dropdown(list(BIAS_KINDS), value=start.kind, label="Kind of mark")
            mark_class = gr.Dropdown(classes, value=classes[1 % len(classes)] if classes else None,
                                     label="Mark of class (A)")
            position = gr.Dropdown(list(hb.POSITIONS), value=start.position, label="Position")
            size = gr.Slider(0.05, 0.5, value=round(start.size, 3), step=0.005,
                             label="Size (fraction of side)")
            with gr.Row():
                own_colour = gr.Checkbox(value=True, label="Class colour")
                colour = gr.ColorPicker(value="#ff0000", label="Colour")
            strength = gr.Slider(0, 1, value=start.opacity, step=0.05, label="Opacity (strength)")
            seed = gr.Number(value=0, precision=0, label="Seed")
            run = gr.Button("Inject bias", variant="primary", elem_id="inject-button")
        with gr.Column(scale=2):
            biased = gr.Image(label="Biased image (model resolution)", type="numpy",
                              format="png", interactive=False, height=256)
            comparison = gr.Markdown()
            with gr.Row():
                left_side = model_column("Left model", "bias-left")
                right_side = model_column("Right model", "bias-right")
            summary = gr.Markdown()
    with gr.Accordion("Stress test: sweep the mark", open=True):
        with gr.Row():
            sweep = gr.Radio(list(hb.SWEEPS), value="opacity", label="Sweep")
            steps = gr.Slider(2, 12, value=6, step=1, label="Steps")
            stress = gr.Button("Run stress test")
        stress_plot = gr.Plot(label="P(true class) as the mark grows")
        stress_table = gr.Dataframe(headers=["value", "left P(true)", "right P(true)"],
                                    label="Values", interactive=False)
    with gr.Accordion("Counterfactual: the mark of class A on this image of class B", open=True):
        counter = gr.Button("Try every class's mark")
        counter_plot = gr.Plot(label="P(A) after adding A's mark")
        counter_summary = gr.Markdown()

    def on_true_class(true_name, left_id, request: gr.Request):
        """Default the mark to another class than the image's (a confounding mark)."""
        try:
            names = ctx.store.get(left_id, session_of(request)).class_names
        except ValueError:
            return gr.update()
        if true_name not in names:
            return gr.update()
        return gr.update(choices=names, value=names[(names.index(true_name) + 1) % len(names)])

    w.true_class.change(on_true_class, [w.true_class, w.left], [mark_class],
                        api_visibility="private")

    settings_inputs = [kind, mark_class, position, size, own_colour, colour, strength, seed]
    shared = [w.editor, w.left, w.right, w.true_class]
    mask_inputs = [w.brush_mode, w.record]

    def settings(kind_v, mark_v, position_v, size_v, own_v, colour_v, strength_v, seed_v):
        return hb.BiasSettings(kind_v, mark_v, position_v, float(size_v),
                               None if own_v else colour_v, float(strength_v), int(seed_v or 0))

    @guarded
    def on_inject(value, left_id, right_id, true_name, kind_v, mark_v, position_v, size_v,
                  own_v, colour_v, strength_v, seed_v, opacity_v, k, mode, state,
                  request: gr.Request):
        """Draw class A's mark in the background and explain both models on the result."""
        mark = settings(kind_v, mark_v, position_v, size_v, own_v, colour_v, strength_v, seed_v)
        view = hb.inject(ctx, session_of(request), value, left_id, right_id, true_name, mark,
                         opacity_v, k, state, mode)
        notify(view.pair.notices)
        return ([view.biased, view.comparison] + side_outputs(view.pair.views[0])
                + side_outputs(view.pair.views[1]) + [view.pair.summary])

    run.click(on_inject, shared + settings_inputs + [w.opacity, w.top_k] + mask_inputs,
              [biased, comparison] + left_side.outputs() + right_side.outputs() + [summary],
              api_name="inject_bias", concurrency_id="explain")

    @guarded
    def on_stress(value, left_id, right_id, true_name, kind_v, mark_v, position_v, size_v,
                  own_v, colour_v, strength_v, seed_v, sweep_v, steps_v, mode, state,
                  request: gr.Request):
        """Sweep the mark's opacity or size; plot both models' probability of the true class."""
        mark = settings(kind_v, mark_v, position_v, size_v, own_v, colour_v, strength_v, seed_v)
        figure, rows, notices = hb.stress_test(ctx, session_of(request), value, left_id,
                                               right_id, true_name, mark, sweep_v, int(steps_v),
                                               state, mode)
        notify(notices)
        return figure, rows

    stress.click(on_stress, shared + settings_inputs + [sweep, steps] + mask_inputs,
                 [stress_plot, stress_table],
                 api_name="stress_test", concurrency_id="explain")

    @guarded
    def on_counterfactual(value, left_id, right_id, true_name, kind_v, mark_v, position_v,
                          size_v, own_v, colour_v, strength_v, seed_v, mode, state,
                          request: gr.Request):
        """Put every class's mark on this image; how often does each model follow it?"""
        mark = settings(kind_v, mark_v, position_v, size_v, own_v, colour_v, strength_v, seed_v)
        return hb.counterfactual(ctx, session_of(request), value, left_id, right_id, true_name,
                                 mark, state, mode)

    counter.click(on_counterfactual, shared + settings_inputs + mask_inputs,
                  [counter_plot, counter_summary],
                  api_name="counterfactual", concurrency_id="explain")
