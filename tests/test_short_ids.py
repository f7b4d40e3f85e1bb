"""Issue 31, "one vocabulary": the Explain, Bias lab and Models widgets take (label, id)
choices, so a gradio_client script sends short ids ("selective", "own"); the old label
spellings still work for one release, logged as deprecated (docs/glossary.md)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from PIL import Image
from ui_fixtures import launch_tiny_app, make_context, named, object_image

from explorer.components import EXPLAIN_OUTPUTS
from explorer.handlers import sanity
from explorer.handlers.explain import PREDICTED, SELECTIVE, class_choices, target_index
from explorer.handlers.spellings import current_spelling, old_labels
from explorer.media.editor import EditorInput, editor_value

pytestmark = pytest.mark.timeout(240)

OLD_SELECTIVE = "selective (log-odds of the least likely class)"
OLD_OWN_SCALES = "each model its own (compare where)"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("short-ids")
    mp = pytest.MonkeyPatch()
    mp.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    mp.setenv("GRADIO_TEMP_DIR", str(tmp / "gradio"))
    demo, url = launch_tiny_app(tmp)
    yield url, tmp
    demo.close()
    mp.undo()


def _explain(client, editor, target, colour_scale):
    return named(EXPLAIN_OUTPUTS, client.predict(
        image_and_mask=editor, left_model="standard", right_model="isnet", explain_class=target,
        overlay_opacity=0.6, top_predictions=3, colour_scale=colour_scale, api_name="/explain"))


def test_explain_takes_short_ids_and_old_labels_alike(app, caplog):
    from gradio_client import Client, handle_file

    url, tmp = app
    image, mask = object_image(1, seed=1)
    layer = np.zeros((*mask.shape, 4), np.uint8)
    layer[mask.astype(bool)] = (0, 255, 0, 120)
    Image.fromarray(image).save(tmp / "img.png")
    Image.fromarray(layer).save(tmp / "layer.png")
    editor = {"background": handle_file(str(tmp / "img.png")),
              "layers": [handle_file(str(tmp / "layer.png"))], "composite": None}
    client = Client(url, verbose=False)
    short = _explain(client, editor, "selective", "own")
    with caplog.at_level(logging.WARNING, logger="explorer.deprecated"):
        old = _explain(client, editor, OLD_SELECTIVE, OLD_OWN_SCALES)
    assert short["summary"] == old["summary"]
    assert "own colour scale" in short["summary"]
    assert (short["left_share"], short["right_share"]) == (old["left_share"], old["right_share"])
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "'selective'" in logged, logged
    assert "'own'" in logged, logged


def test_current_spelling_maps_old_labels_and_logs_them(caplog):
    old = old_labels([("predicted class", "predicted"), ("circle", "circle")])
    assert old == {"predicted class": "predicted"}  # a label that is its own id is no old one
    with caplog.at_level(logging.WARNING, logger="explorer.deprecated"):
        assert current_spelling("circle", old, "the class") == "circle"
        assert not caplog.records
        assert current_spelling("predicted class", old, "the class") == "predicted"
    assert "send 'predicted' instead" in caplog.records[0].getMessage()


def test_explain_class_choices_are_labelled_ids(tmp_path):
    ctx = make_context(tmp_path)
    entry = ctx.store.get("standard", None)
    choices = class_choices(ctx, None, "standard")
    assert [value for _, value in choices] == [PREDICTED, SELECTIVE] + entry.class_names
    assert (PREDICTED, SELECTIVE) == ("predicted", "selective")
    for spelling in ("predicted class", PREDICTED):
        assert target_index(entry, spelling) is None
    for spelling in (OLD_SELECTIVE, SELECTIVE):
        assert target_index(entry, spelling) == "selective"
    assert target_index(entry, entry.class_names[2]) == 2


def test_randomisation_image_takes_its_id_and_its_old_label(tmp_path):
    ctx = make_context(tmp_path)
    image, mask = object_image(1, size=48)
    editor = EditorInput(editor_value(image, mask))
    picked = sanity.chosen_image(ctx, sanity.EXPLAIN_IMAGE, editor)
    assert (picked == image).all()
    assert (sanity.chosen_image(ctx, "(the Explain tab's image)", editor) == picked).all()
