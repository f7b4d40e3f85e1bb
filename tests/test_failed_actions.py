"""An error belongs to the action that failed (issue 30, defect 4).

Gradio marks *every* output of an event that raises with a red "Error" box, which stays until
dismissed. So a failed checkpoint load must not be an event whose outputs include the Explain
tab's model pickers or the model cards, and a failed Arena row click must raise nothing (its
message goes into its own card). Checked on the built app's event table and by calling the
events' own functions with input that fails.
"""

from __future__ import annotations

import gradio as gr
import pytest
from ui_fixtures import build_tiny_demo, events_of, only_block

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return build_tiny_demo(tmp_path_factory.mktemp("failed-actions"))




def _chained(demo: gr.Blocks, first) -> list:
    return [f for f in demo.fns.values() if f.trigger_after == first._id]


def test_a_failed_checkpoint_load_marks_only_the_loaded_card(demo, tmp_path):
    button = only_block(demo, gr.Button, value="Load checkpoint")
    pickers = [only_block(demo, gr.Dropdown, label=f"{side} model") for side in ("Left", "Right")]
    [click] = events_of(demo, button, "click")
    assert not set(click.outputs) & set(pickers), "a failed load would mark Explain's pickers"
    assert len(click.outputs) == 1, "only the loaded model's card may show the failure"
    not_a_checkpoint = tmp_path / "notes.pt"
    not_a_checkpoint.write_text("not a checkpoint")
    with pytest.raises(gr.Error, match="checkpoint"):
        click.fn(str(not_a_checkpoint), "")
    [after] = _chained(demo, click)
    assert after.trigger_only_on_success and set(pickers) <= set(after.outputs)


def test_a_failed_override_marks_only_the_loaded_card(demo):
    button = only_block(demo, gr.Button, value="Apply the overrides to this model")
    [click] = events_of(demo, button, "click")
    assert len(click.outputs) == 1
    with pytest.raises(gr.Error):
        click.fn("no-such-model", 40, "", "", None)
    [after] = _chained(demo, click)
    assert after.trigger_only_on_success


def test_a_failed_arena_row_click_raises_nothing_and_says_why(demo, tmp_path):
    table = only_block(demo, gr.Dataframe, elem_id="arena-table")
    [select] = events_of(demo, table, "select")
    folder = tmp_path / "arena-empty"
    folder.mkdir()
    event = gr.SelectData(table, {"index": [0, 0], "value": "Standard"})
    card, left, right = select.fn(event, str(folder), None)
    assert card.startswith("⚠️") and left == gr.update() and right == gr.update()
