"""The Bias lab's event functions, each named and typed: ``explorer/tabs/bias.py`` only lays
out the widgets and wires these (bound to the app's context with
:func:`explorer.components.with_context`), and tests call them directly.

Each takes the app's context first, then the widgets' values in the order the tab wires them
(their names are the ``/inject_bias``, ``/stress_test``, … API's parameter names), then the
request.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from explorer.errors import notify
from explorer.handlers import bias as hb
from explorer.handlers import export as hx
from explorer.handlers import robustness as hr
from explorer.handlers.outputs import (
    COUNTERFACTUAL_OUTPUTS,
    INJECT_BIAS_OUTPUTS,
    STRESS_TEST_OUTPUTS,
    editor_input,
    ordered,
    pair_values,
    session_of,
)
from explorer.state import AppContext


def on_true_class(ctx: AppContext, true_name: str | None, left_model: str,
                  request: gr.Request | None = None) -> dict:
    """Default the mark to another class than the image's (a confounding mark): the next
    class of the left model after the true one; no change for an unknown model or class."""
    try:
        names = ctx.store.get(left_model, session_of(request)).class_names
    except ValueError:
        return gr.update()
    if true_name not in names:
        return gr.update()
    return gr.update(choices=names, value=names[(names.index(true_name) + 1) % len(names)])


def on_class_colour(class_colour: bool) -> dict:
    """The colour picker shows only when the mark does not take its class's colour."""
    return gr.update(visible=not class_colour)


def bias_request(image_and_mask: dict | None, left_model: str, right_model: str,
                 true_class: str | None, mark_kind: str, mark_of_class: str,
                 mark_position: str, mark_size: float, class_colour: bool,
                 mark_colour: str | None, mark_opacity: float, mark_seed: int | None,
                 brush_strokes: str, editor_record: dict | None, overlay_opacity: float = 0.6,
                 top_predictions: int = 3) -> hb.BiasRequest:
    """The widgets' values as one named request."""
    mark = hb.BiasSettings(mark_kind, mark_of_class, mark_position, float(mark_size),
                           None if class_colour else mark_colour, float(mark_opacity),
                           int(mark_seed or 0))
    return hb.BiasRequest(editor_input(image_and_mask, brush_strokes, editor_record),
                          left_model, right_model, true_class, mark,
                          float(overlay_opacity), int(top_predictions))


def on_inject(ctx: AppContext, image_and_mask: dict | None, left_model: str, right_model: str,
              true_class: str | None, mark_kind: str, mark_of_class: str, mark_position: str,
              mark_size: float, class_colour: bool, mark_colour: str | None,
              mark_opacity: float, mark_seed: int | None, overlay_opacity: float,
              top_predictions: int, brush_strokes: str, editor_record: dict | None,
              request: gr.Request | None = None) -> list[Any]:
    """Draw class A's mark in the background and explain both models on the result; the view
    is recorded for export. Returns the values of
    :data:`explorer.components.INJECT_BIAS_OUTPUTS`."""
    session = session_of(request)
    view = hb.inject(ctx, session, bias_request(
        image_and_mask, left_model, right_model, true_class, mark_kind, mark_of_class,
        mark_position, mark_size, class_colour, mark_colour, mark_opacity, mark_seed,
        brush_strokes, editor_record, overlay_opacity, top_predictions))
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


def on_injected() -> bool:
    """A mark is shown (the kind switch re-injects from now on)."""
    return True


def on_kind(ctx: AppContext, shown: bool, *values: Any,
            request: gr.Request | None = None) -> list[Any]:
    """A new kind of mark: inject it again once a mark is shown (the stress test and the
    every-class sweep use the kind chosen now, so the biased image must too); ``values``:
    :func:`on_inject`'s."""
    if not shown:
        return [gr.update() for _ in INJECT_BIAS_OUTPUTS]
    return on_inject(ctx, *values, request=request)


def on_stress(ctx: AppContext, image_and_mask: dict | None, left_model: str, right_model: str,
              true_class: str | None, mark_kind: str, mark_of_class: str, mark_position: str,
              mark_size: float, class_colour: bool, mark_colour: str | None,
              mark_opacity: float, mark_seed: int | None, sweep_of: str, sweep_steps: int,
              brush_strokes: str, editor_record: dict | None,
              request: gr.Request | None = None) -> list[Any]:
    """Sweep the mark's opacity or size; plot both models' probability of the true class
    (:data:`explorer.components.STRESS_TEST_OUTPUTS`)."""
    session = session_of(request)
    result = hb.stress_test(ctx, session, bias_request(
        image_and_mask, left_model, right_model, true_class, mark_kind, mark_of_class,
        mark_position, mark_size, class_colour, mark_colour, mark_opacity, mark_seed,
        brush_strokes, editor_record), sweep=sweep_of, steps=int(sweep_steps))
    notify(result.notices)
    entries = [ctx.store.get(left_model, session), ctx.store.get(right_model, session)]
    headers = [sweep_of] + [f"{e.label}: P(true class)" for e in entries]
    hx.record_figure(ctx, session, "stress_test",
                     f"Stress test: {mark_kind} mark of {mark_of_class}, {sweep_of} swept",
                     result.figure, {"rows": result.rows},
                     {"sweep": sweep_of, "steps": int(sweep_steps), "mark_kind": mark_kind,
                      "mark_of_class": mark_of_class, "true_class": true_class}, entries,
                     table=(headers, result.rows))
    return ordered({"plot": result.figure, "table": result.rows}, STRESS_TEST_OUTPUTS)


def on_counterfactual(ctx: AppContext, image_and_mask: dict | None, left_model: str,
                      right_model: str, true_class: str | None, mark_kind: str,
                      mark_of_class: str, mark_position: str, mark_size: float,
                      class_colour: bool, mark_colour: str | None, mark_opacity: float,
                      mark_seed: int | None, brush_strokes: str, editor_record: dict | None,
                      request: gr.Request | None = None) -> list[Any]:
    """Put every class's mark on this image; how often does each model follow it?
    (:data:`explorer.components.COUNTERFACTUAL_OUTPUTS`)."""
    session = session_of(request)
    result = hb.counterfactual(ctx, session, bias_request(
        image_and_mask, left_model, right_model, true_class, mark_kind, mark_of_class,
        mark_position, mark_size, class_colour, mark_colour, mark_opacity, mark_seed,
        brush_strokes, editor_record))
    entries = [ctx.store.get(left_model, session), ctx.store.get(right_model, session)]
    hx.record_figure(ctx, session, "counterfactual",
                     f"Counterfactual sweep: every class's {mark_kind} mark", result.figure,
                     {"summary": result.summary},
                     {"mark_kind": mark_kind, "true_class": true_class}, entries)
    return ordered({"plot": result.figure, "summary": result.summary},
                   COUNTERFACTUAL_OUTPUTS)


def on_robustness(ctx: AppContext, left_model: str, right_model: str, images: int,
                  request: gr.Request | None = None) -> str:
    """Both models' accuracy drop (points) under each kind of mark planted with a random
    other class into bundled test images; a Markdown table."""
    return hr.measure(ctx, session_of(request), hr.RobustnessRequest(
        (left_model, right_model), int(images))).markdown
