"""A failed fine-tune marks only its own widgets, never Explain's model pickers (issue 30,
defect 4).

Gradio marks every output of an event that raises with a red "Error" box. The Fine-tune event's
outputs used to include the Explain tab's two model pickers and the "Start from" list, so a
refused set turned them red. Now its outputs are its own widgets plus hidden stand-ins (the API
answer keeps :data:`explorer.components.FINE_TUNE_OUTPUTS`), and the pickers follow in an event
that runs only on success. Checked on the built app's event table and by running the event's own
function with input that fails.
"""

from __future__ import annotations

import gradio as gr
import pytest
from ui_fixtures import build_tiny_demo, only_block

from explorer.components import FINE_TUNE_OUTPUTS

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return build_tiny_demo(tmp_path_factory.mktemp("failed-fine-tune"))



def test_a_failed_fine_tune_leaves_the_model_pickers_alone(demo):
    button = only_block(demo, gr.Button, value="Fine-tune")
    pickers = [only_block(demo, gr.Dropdown, label=f"{side} model") for side in ("Left", "Right")]
    pickers.append(only_block(demo, gr.Dropdown, label="Start from"))
    [click] = [f for f in demo.fns.values() if (button._id, "click") in f.targets]
    assert click.api_name == "fine_tune"
    assert len(click.outputs) == 1 + len(FINE_TUNE_OUTPUTS)  # the API answer is unchanged
    assert not set(click.outputs) & set(pickers), "a failed run would mark Explain's pickers"
    with pytest.raises(gr.Error, match="No model"):
        list(click.fn("no-such-model", "samples", [], "standard", 1, 0.7, 0.9, 0.01, None))
    [after] = [f for f in demo.fns.values() if f.trigger_after == click._id]
    assert after.trigger_only_on_success and set(pickers) == set(after.outputs)


def test_after_a_run_the_lists_offer_the_new_model_on_the_right(demo):
    button = only_block(demo, gr.Button, value="Fine-tune")
    [click] = [f for f in demo.fns.values() if (button._id, "click") in f.targets]
    [after] = [f for f in demo.fns.values() if f.trigger_after == click._id]
    left, right, base = after.fn("standard", None)
    assert right["value"] == "standard" and "value" not in left and "value" not in base
    assert [c[1] for c in right["choices"]] == ["standard", "isnet"]
    _, unchanged, _ = after.fn(None, None)  # a stopped run made no model: no value is set
    assert "value" not in unchanged
