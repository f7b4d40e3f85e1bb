"""Issue 31, "thin tabs": each Explain-tab event is a named function of
:mod:`explorer.handlers.explain_events`, called here alone on the tiny models (no server)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from ui_fixtures import make_context, named, object_image

from explorer.components import EXPLAIN_OUTPUTS, with_context
from explorer.errors import InputError
from explorer.handlers import explain_events as events
from explorer.handlers.explain import PREDICTED, SELECTIVE
from explorer.media import editor as editor_state
from explorer.media.editor import editor_value


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    return make_context(tmp_path_factory.mktemp("events"))


@pytest.fixture
def value():
    image, mask = object_image(1, size=64)
    return editor_value(image, mask)


def _explain(ctx, value, **settings):
    out = events.on_explain(ctx, value, "standard", "isnet", settings.pop("target", PREDICTED),
                            0.6, 3, editor_state.ADD, None, **settings)
    return named(EXPLAIN_OUTPUTS + ("answered",), out)


def test_on_explain_answers_and_records_the_view(ctx, value):
    before = len(ctx.views.of(None))
    out = _explain(ctx, value)
    assert out["answered"] is True
    for side in ("left_share", "right_share"):
        assert 0 <= out[side] <= 1
    assert "background share" in out["summary"]
    views = ctx.views.of(None)
    assert len(views) == before + 1
    assert views[-1]["settings"]["explained_class"] == PREDICTED


def test_on_explain_reads_settings_and_refuses_a_bad_rule(ctx, value):
    own = _explain(ctx, value, target=SELECTIVE, colour_scale="own", input_zb_rule="epsilon",
                   lrp_epsilon=0.1)
    assert "own colour scale" in own["summary"]
    with pytest.raises(InputError, match="Input layer rule"):
        _explain(ctx, value, input_zb_rule="sideways")


def test_input_rule_reads_ids_and_booleans():
    assert [events.input_rule(v) for v in (events.AS_TRAINED, "zb", "epsilon", True, None)] == \
        [None, True, False, True, None]


def test_on_model_change_gives_labelled_class_ids_and_the_training_epsilon(ctx):
    update, epsilon = events.on_model_change(ctx, "isnet")
    assert update["value"] == PREDICTED
    assert [v for _, v in update["choices"]][:2] == [PREDICTED, SELECTIVE]
    assert epsilon == ctx.store.get("isnet", None).epsilon


def test_on_gallery_names_the_clicked_sample(ctx):
    import gradio as gr

    event = gr.SelectData(None, {"index": 1, "value": None})
    assert events.on_gallery(ctx, event) == ctx.samples[1].name


def test_on_sample_loads_the_image_its_class_and_clears_the_rest(ctx):
    sample = ctx.samples[0]
    shown, record, true_class, upload, notice = events.on_sample(ctx, sample.name)
    assert shown["background"] is not None and record is not None
    assert (true_class, upload, notice) == (sample.label, None, "")
    assert all(u == {"__type__": "update"} for u in events.on_sample(ctx, None))


def test_on_upload_and_mask_events_set_the_editor(ctx, tmp_path):
    image, mask = object_image(2, size=64, seed=4)
    Image.fromarray(image).save(tmp_path / "photo.png")
    Image.fromarray((mask * 255).astype(np.uint8)).save(tmp_path / "mask.png")
    shown, record, true_class, sample, notice = events.on_upload(ctx, str(tmp_path / "photo.png"))
    assert (true_class, sample) == (None, None)
    for out in (events.on_mask_file(ctx, shown, str(tmp_path / "mask.png"),
                                    editor_state.ADD, record),
                events.on_threshold_mask(ctx, shown, editor_state.ADD, record),
                events.on_grabcut_mask(ctx, shown, editor_state.ADD, record),
                events.on_clear(ctx, shown, editor_state.ADD, record)):
        assert len(out) == 3 and out[0]["background"] is not None


def test_brush_epsilon_and_setting_events():
    assert events.on_brush_mode("nonsense")["brush"].default_color == \
        editor_state.BRUSH_COLOURS[editor_state.ADD]
    assert events.epsilon_validator(0.01)["is_valid"] is True
    assert events.epsilon_validator(-1)["is_valid"] is False
    untouched = events.on_setting(None, None, "standard", "isnet")
    assert len(untouched) == len(EXPLAIN_OUTPUTS) + 1


def test_with_context_hides_the_context_from_gradio(ctx):
    import inspect

    bound = with_context(events.on_explain, ctx)
    parameters = list(inspect.signature(bound).parameters)
    assert parameters[:2] == ["image_and_mask", "left_model"] and "ctx" not in parameters
    assert bound.__doc__ == events.on_explain.__doc__


def test_the_explain_view_records_where_its_image_and_mask_came_from(ctx, tmp_path):
    """Issue 30, defect 7: the Explain JSON names the image's and mask's files and the SHA-256
    of the pixels the models saw, so a result can be traced back to its inputs."""
    import hashlib

    image, mask = object_image(1, size=64, seed=5)
    Image.fromarray(image).save(tmp_path / "holiday photo.png")
    Image.fromarray((mask * 255).astype(np.uint8)).save(tmp_path / "its mask.png")
    shown, record, *_ = events.on_upload(ctx, str(tmp_path / "holiday photo.png"))
    shown, record, _ = events.on_mask_file(ctx, shown, str(tmp_path / "its mask.png"),
                                           editor_state.ADD, record)
    events.on_explain(ctx, shown, "standard", "isnet", PREDICTED, 0.6, 3, editor_state.ADD,
                      record)
    source = ctx.views.of(None)[-1]["settings"]["source"]
    assert source["image"]["file"] == "holiday photo.png"
    assert source["image"]["sha256_of_pixels"] == hashlib.sha256(image.tobytes()).hexdigest()
    assert source["mask"]["file"] == "its mask.png"
    expected_mask = (mask.astype(np.uint8) * 255).tobytes()
    assert source["mask"]["sha256_of_pixels"] == hashlib.sha256(expected_mask).hexdigest()
    # a threshold mask keeps the image's name and says where the mask came from
    shown, record, _ = events.on_threshold_mask(ctx, shown, editor_state.ADD, record)
    events.on_explain(ctx, shown, "standard", "isnet", PREDICTED, 0.6, 3, editor_state.ADD,
                      record)
    source = ctx.views.of(None)[-1]["settings"]["source"]
    assert source["image"]["file"] == "holiday photo.png"
    assert source["mask"]["file"] == "threshold"


def test_a_model_compared_with_itself_is_said_so(ctx, value):
    """Issue 30, defect 9: two identical sides are not shown without a word."""
    out = events.on_explain(ctx, value, "isnet", "isnet", PREDICTED, 0.6, 3, editor_state.ADD,
                            None)
    notices = named(EXPLAIN_OUTPUTS + ("answered",), out)["notices"]
    assert "Both sides show the same model" in notices
    assert "same model" not in _explain(ctx, value)["notices"]
