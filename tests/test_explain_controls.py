"""The Explain tab's and the Bias lab's controls behave alike (issue 30, defect 11).

Checked on the built app's event table and by calling the events' own functions with the tiny
models: ε and the input rule re-explain as the class and the colour scale do; ε = −3 is named
at its field at once and changes nothing else; shares read "—" before a run; notices are
inline, never also toasts; the Bias lab's *Kind* re-injects; the single mark and the sweep have
distinct names; the sweep's legend leaves its bars free.
"""

from __future__ import annotations

import warnings

import gradio as gr
import numpy as np
import pytest
from ui_fixtures import CLASSES, build_tiny_demo, events_of, named, object_image, only_block

from explorer.components import EXPLAIN_OUTPUTS, INJECT_BIAS_OUTPUTS

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return build_tiny_demo(tmp_path_factory.mktemp("explain-controls"))




def _after_check(demo: gr.Blocks, block, event: str):
    """(the ε check an event runs first, the step that follows it on success)."""
    [check] = events_of(demo, block, event)
    [after] = [f for f in demo.fns.values() if f.trigger_after == check._id]
    assert after.trigger_only_on_success
    return check, after


def _explain_values(epsilon=None, rule="as trained", mask=True) -> list:
    """The Explain event's inputs (after Gradio's preprocessing) for a tiny object image."""
    image, truth = object_image(1)
    from explorer.media.editor import editor_value

    return [editor_value(image, truth if mask else None), "standard", "isnet",
            "predicted class", 0.6, 3, "add to mask", None, epsilon, rule, None, "own",
            "shared (compare strengths)"]


@pytest.mark.parametrize(("widget", "event"), [("ε (LRP ε-rule)", "submit"),
                                               ("ε (LRP ε-rule)", "blur"),
                                               ("Input layer rule", "input")])
def test_epsilon_and_the_input_rule_explain_again(demo, widget, event):
    block = only_block(demo, gr.Number if widget.startswith("ε") else gr.Radio, label=widget)
    check, setting = _after_check(demo, block, event)
    assert check.validator is not None  # a bad ε stops it at its field
    overlay = only_block(demo, gr.Image, elem_id="left-overlay")
    assert overlay in setting.outputs
    values = _explain_values(epsilon=0.05, rule="epsilon")
    *values, has_run = setting.fn(*values)
    answer = named(EXPLAIN_OUTPUTS, values)
    assert has_run is True and isinstance(answer["left_share"], float)
    assert 0 <= answer["left_share"] <= 1
    assert "ε" in answer["summary"] or "epsilon" in answer["summary"].lower()


def test_a_negative_epsilon_is_named_at_its_field_at_once(demo):
    epsilon = only_block(demo, gr.Number, label="ε (LRP ε-rule)")
    assert epsilon.minimum == 0  # the browser's arrows stop there
    assert epsilon.preprocess(-3) == -3  # not Gradio's toast that marks every output red
    [typed] = events_of(demo, epsilon, "input")  # as it is typed: judged, nothing else runs
    assert typed.outputs == [] and typed.validator is not None
    verdict = typed.validator(-3)  # one input: one verdict (Gradio reads a list as valid)
    assert not verdict["is_valid"] and "cannot be negative" in verdict["message"]
    assert typed.validator(0.01)["is_valid"]
    button = only_block(demo, gr.Button, elem_id="explain-button")
    for block, event in ((epsilon, "submit"), (button, "click")):
        check, _ = _after_check(demo, block, event)  # Explain waits for ε's verdict too
        assert check.validator is typed.validator


def test_shares_read_a_dash_before_anything_has_run(demo):
    """Gradio's number field reads "0" when empty (= "all on the object"), so before a run a
    "—" stands in its place, and the first answer swaps them."""
    for side in ("left", "right", "bias-left", "bias-right"):
        share = only_block(demo, gr.Number, elem_id=f"{side}-share")
        pending = only_block(demo, gr.Markdown, elem_id=f"{side}-share-pending")
        assert not share.visible and pending.visible and "—" in pending.value
    [explain] = [f for f in demo.fns.values() if f.api_name == "explain"]
    has_run = explain.outputs[-1]
    assert isinstance(has_run, gr.State) and has_run.value is False
    [reveal] = events_of(demo, has_run, "change")
    shares = [only_block(demo, gr.Number, elem_id=f"{side}-share") for side in ("left", "right")]
    assert set(shares) <= set(reveal.outputs)
    assert reveal.fn(True)[0]["visible"] and not reveal.fn(True)[1]["visible"]


def test_notices_are_inline_and_never_also_toasts(demo):
    [explain] = [f for f in demo.fns.values() if f.api_name == "explain"]
    with warnings.catch_warnings(record=True) as toasts:
        warnings.simplefilter("always")
        answer = named(EXPLAIN_OUTPUTS, explain.fn(*_explain_values(mask=False))[:-1])
    assert "mask is empty" in answer["notices"]
    assert not [t for t in toasts if "mask is empty" in str(t.message)]


def test_a_new_kind_of_mark_injects_again_once_a_mark_is_shown(demo):
    kind = only_block(demo, gr.Dropdown, label="Kind of mark")
    [changed] = events_of(demo, kind, "input")
    biased = only_block(demo, gr.Image, elem_id="biased-image")
    assert biased in changed.outputs
    image, truth = object_image(1)
    from explorer.media.editor import editor_value

    settings = [editor_value(image, truth), "standard", "isnet", CLASSES[1], "shape",
                CLASSES[0], "bottom_right", 0.2, True, "#ff0000", 1.0, 0, 0.6, 3,
                "add to mask", None]
    assert all(update == gr.update() for update in changed.fn(False, *settings))
    answer = named(INJECT_BIAS_OUTPUTS, changed.fn(True, *settings))
    assert np.asarray(answer["biased"]).ndim == 3
    assert "Confounding mark" in answer["comparison"]
    assert "Counterfactual" not in answer["comparison"]


def test_the_sweep_legend_leaves_every_bar_free():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from explorer.media.plots import counterfactual_figure

    names = [f"class {i}" for i in range(10)]
    figure = counterfactual_figure(names, {"Standard · a long model name": [1.0] * 10,
                                           "ISNet · another long name": [1.0] * 10}, "class 3")
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    renderer = canvas.get_renderer()
    [axes] = figure.axes
    legends = figure.legends + ([axes.get_legend()] if axes.get_legend() else [])
    bars = [patch.get_window_extent(renderer) for patch in axes.patches]
    assert legends and len(bars) == 20
    for legend in legends:
        box = legend.get_window_extent(renderer)
        assert not [bar for bar in bars if box.overlaps(bar)], "the legend covers bars"
