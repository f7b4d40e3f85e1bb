"""Issue 31, "thin tabs": each Models-tab event is a named function of
:mod:`explorer.handlers.models_events`, called here alone on the tiny models (no server)."""

from __future__ import annotations

import gradio as gr
import pytest
from ui_fixtures import CLASSES, SIZE, make_context, named, object_image

from explorer.components import LOAD_CHECKPOINT_OUTPUTS, MODEL_CARDS_OUTPUTS
from explorer.errors import InputError
from explorer.handlers import models_events as events
from explorer.handlers import sanity
from explorer.media import editor as editor_state
from explorer.media.editor import editor_value


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    return make_context(tmp_path_factory.mktemp("models-events"))


@pytest.fixture(scope="module")
def loaded(ctx, tmp_path_factory):
    """A checkpoint of the tiny ISNet loaded by one visitor: (request, model id, outputs)."""
    from isnet.io.checkpoints import save_checkpoint

    path = save_checkpoint(tmp_path_factory.mktemp("files") / "mine.safetensors",
                           ctx.store.get("isnet", None).model, class_names=CLASSES,
                           input_size=SIZE, config={"variant": "selective"})
    request = gr.Request(session_hash="visitor")
    out = named(LOAD_CHECKPOINT_OUTPUTS, events.on_load(ctx, str(path), "mine",
                                                        request=request))
    ids = [value for _, value in out["download_choices"]["choices"]]
    return request, ids[-1], out


def test_on_load_gives_the_card_and_every_model_list(loaded):
    _, model_id, out = loaded
    assert "mine" in out["card"] and "mine" in out["cards"]
    assert out["left_model"]["choices"] == out["download_choices"]["choices"]
    assert model_id not in ("standard", "isnet")


def test_on_load_card_is_on_load_s_first_output_and_refuses_nothing_to_load(ctx):
    with pytest.raises(InputError):
        events.on_load_card(ctx, None, "")


def test_on_model_lists_and_on_cards_are_the_session_s(ctx, loaded):
    request, model_id, _ = loaded
    cards, left, right, choices = events.on_model_lists(ctx, request)
    assert "mine" in cards and left == right == choices
    assert model_id in [value for _, value in choices["choices"]]
    shared = named(MODEL_CARDS_OUTPUTS, events.on_cards(ctx))  # another visitor: no "mine"
    assert "mine" not in shared["cards"]


def test_on_pick_gives_the_file_and_the_mode(ctx, loaded):
    request, model_id, _ = loaded
    path, mode = events.on_pick(ctx, model_id, request)
    assert str(path).endswith(".safetensors") and mode in ("corrected", "authors")
    assert events.on_pick(ctx, None, request) == (None, {"__type__": "update"})


def test_on_apply_and_on_mode_change_the_visitor_s_model(ctx, loaded):
    request, model_id, _ = loaded
    card = events.on_apply(ctx, model_id, SIZE, "", "", None, request)
    assert "mine" in card
    assert ctx.store.get(model_id, "visitor").input_size == SIZE
    events.on_mode(ctx, model_id, "authors", request)
    assert ctx.store.get(model_id, "visitor").lrp_mode == "authors"
    assert events.on_mode(ctx, None, "authors", request) == {"__type__": "update"}
    with pytest.raises(InputError, match="shared"):
        events.on_mode(ctx, "isnet", "authors", request)


def test_on_compare_and_on_randomise(ctx):
    image, mask = object_image(1, size=64)
    value = editor_value(image, mask)
    compared = events.on_compare(ctx, "isnet", value, editor_state.ADD, None)
    assert len(compared) == 4 and compared[0].ndim == 3
    figure, summary = events.on_randomise(ctx, "isnet", sanity.EXPLAIN_IMAGE, value,
                                          editor_state.ADD, None)
    assert figure.axes and summary


def test_overrides_reads_blank_fields_as_none():
    blank = events.overrides(None, None, None, None)
    assert (blank.input_size, blank.mean, blank.std, blank.class_file) == (None, "", "", None)
    assert events.overrides(64.0, "0.5", "0.2", None).input_size == 64
