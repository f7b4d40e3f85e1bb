"""Issue 31, "thin tabs": each Bias-lab event is a named function of
:mod:`explorer.handlers.bias_events`, called here alone on the tiny models (no server)."""

from __future__ import annotations

import pathlib

import pytest
from ui_fixtures import CLASSES, make_context, named, object_image

from explorer.components import COUNTERFACTUAL_OUTPUTS, INJECT_BIAS_OUTPUTS, STRESS_TEST_OUTPUTS
from explorer.errors import InputError
from explorer.handlers import bias_events as events
from explorer.media import editor as editor_state
from explorer.media.editor import editor_value

MARK = dict(mark_kind="shape", mark_of_class="circle", mark_position="top_left", mark_size=0.2,
            class_colour=True, mark_colour="#ff0000", mark_opacity=1.0, mark_seed=0)


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    return make_context(tmp_path_factory.mktemp("bias-events"))


@pytest.fixture
def value():
    image, mask = object_image(1, size=64)
    return editor_value(image, mask)


def _inject(ctx, value, **mark):
    return named(INJECT_BIAS_OUTPUTS, events.on_inject(
        ctx, value, "standard", "isnet", "square", *(MARK | mark).values(), 0.6, 3,
        editor_state.ADD, None))


def test_on_true_class_picks_the_next_class_as_the_mark(ctx):
    assert events.on_true_class(ctx, "square", "standard")["value"] == "triangle"
    assert events.on_true_class(ctx, "triangle", "standard")["value"] == "circle"
    assert events.on_true_class(ctx, "dog", "standard") == {"__type__": "update"}


def test_on_class_colour_hides_the_picker_for_class_colours():
    assert events.on_class_colour(True)["visible"] is False
    assert events.on_class_colour(False)["visible"] is True


def test_bias_request_names_every_value():
    request = events.bias_request(None, "standard", "isnet", "square", *MARK.values(),
                                  editor_state.ADD, None)
    assert (request.left_id, request.right_id, request.true_class) == \
        ("standard", "isnet", "square")
    assert request.mark.colour is None and request.mark.size == 0.2  # class colour: no picker


def test_on_inject_answers_and_records_the_view(ctx, value):
    before = len(ctx.views.of(None))
    out = _inject(ctx, value)
    assert out["biased"].ndim == 3 and 0 <= out["left_share"] <= 1
    assert ctx.views.of(None)[-1]["settings"]["mark"]["class"] == "circle"
    assert len(ctx.views.of(None)) == before + 1
    assert events.on_injected() is True


def test_on_kind_waits_for_a_shown_mark(ctx, value):
    untouched = events.on_kind(ctx, False, value)
    assert len(untouched) == len(INJECT_BIAS_OUTPUTS)
    again = named(INJECT_BIAS_OUTPUTS, events.on_kind(
        ctx, True, value, "standard", "isnet", "square", *(MARK | {"mark_kind": "tint"}).values(),
        0.6, 3, editor_state.ADD, None))
    assert again["biased"].shape == _inject(ctx, value, mark_kind="tint")["biased"].shape


def test_on_stress_and_on_counterfactual(ctx, value):
    stress = named(STRESS_TEST_OUTPUTS, events.on_stress(
        ctx, value, "standard", "isnet", "square", *MARK.values(), "opacity", 3,
        editor_state.ADD, None))
    assert [row[0] for row in stress["table"]] == pytest.approx([0.0, 0.5, 1.0], abs=1e-4)
    counter = named(COUNTERFACTUAL_OUTPUTS, events.on_counterfactual(
        ctx, value, "standard", "isnet", "square", *MARK.values(), editor_state.ADD, None))
    assert f"of {len(CLASSES) - 1}" in counter["summary"]


def test_on_robustness_refuses_a_count_out_of_range(ctx):
    with pytest.raises(InputError, match="test images"):
        events.on_robustness(ctx, "standard", "isnet", 0)


def test_stress_test_and_counterfactual_are_recorded_for_the_export_and_report(ctx, value):
    """Issue 30, defect 8: the session report holds the stress test and the counterfactual
    sweep (each recorded as a view with its figure and numbers)."""
    from explorer.handlers import export as hx

    events.on_stress(ctx, value, "standard", "isnet", "square", *MARK.values(), "size", 3,
                     editor_state.ADD, None)
    stress = hx.latest(ctx, None, "stress_test")
    assert stress["settings"]["sweep"] == "size" and len(stress["numbers"]["rows"]) >= 1
    events.on_counterfactual(ctx, value, "standard", "isnet", "square", *MARK.values(),
                             editor_state.ADD, None)
    counter = hx.latest(ctx, None, "counterfactual")
    assert f"of {len(CLASSES) - 1}" in counter["numbers"]["summary"]
    report = pathlib.Path(hx.session_report(ctx, None)).read_text()
    assert "Stress test: shape mark of circle, size swept" in report
    assert "Counterfactual sweep" in report
