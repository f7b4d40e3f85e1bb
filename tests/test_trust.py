"""Trusting a map: the conservation readout in Explain, the Bias lab and exports; the Bag case
of the bundled standard model (numbers of ``docs/trust.md``)."""

import json

import pytest
import torch
from test_handlers import bias_request, ctx, explain_pair, value  # noqa: F401

from explorer.handlers import bias as handlers_bias
from explorer.handlers.explain_views import conservation_cell, conservation_notice
from explorer.handlers.export import explain_numbers
from scripts import bag_case


def test_every_explain_map_carries_its_conservation(ctx, value):  # noqa: F811
    pair = explain_pair(ctx, value)
    for view in pair.views:
        numbers = view.conservation
        assert numbers is not None and set(numbers) >= {"score", "relevance_sum", "ratio",
                                                        "bias_share", "conserved"}
        assert all(type(v) in (float, bool) for v in numbers.values())
        total = numbers["relevance_sum"] + numbers["absorbed_by_bias"] + numbers[
            "absorbed_by_epsilon"] + numbers["start_gap"]
        assert total == pytest.approx(numbers["score"], abs=1e-4)
        assert abs(view.relevance.sum() - numbers["relevance_sum"]) < 1e-4
    assert "Σ R / score" in pair.summary
    assert conservation_cell(pair.left.conservation) in pair.summary
    exported = explain_numbers(pair.views)["per_model"]
    assert json.dumps(exported)  # plain numbers
    assert all(entry["conservation"] for entry in exported.values())


def test_bias_lab_maps_carry_it_too(ctx, value):  # noqa: F811
    settings = handlers_bias.BiasSettings(kind="shape", mark_class="triangle", size=0.2)
    view = handlers_bias.inject(ctx, None, bias_request(value, "square", settings))
    assert all(v.conservation is not None for v in view.pair.views)
    assert "Σ R / score" in view.pair.summary


def test_a_map_that_does_not_conserve_gets_a_notice():
    numbers = {"score": 10.5, "relevance_sum": -6.05, "ratio": -0.58, "bias_share": 1.56,
               "absorbed_by_bias": 16.39, "conserved": False}
    line = conservation_notice("standard", numbers)
    assert "-6.05" in line and "10.5" in line and "docs/trust.md" in line
    assert conservation_cell(numbers) == "-6.05 / 10.5 = -0.58 (biases 156%)"
    assert conservation_cell(None) == "—"


@pytest.mark.slow
def test_the_bag_case_is_the_models_and_lrps_not_the_engines():
    """The bundled standard model: Bag is its no-mark answer, carried by the biases; a planted
    Bag mark raises the Bag logit a little yet gets negative relevance under z^B, ε and
    gradient × input alike (docs/trust.md)."""
    torch.set_num_threads(2)
    loaded = bag_case.isnet.load_checkpoint(bag_case.STANDARD)
    model, names = loaded.model.eval(), loaded.metadata["class_names"]
    bag = names.index("Bag")
    top, probability = bag_case.black_image(model, bag)
    assert top == bag and probability > 0.99
    case = bag_case.measure(model, "fashion_sneaker_9", names.index("Sneaker"), bag)
    assert case.probability > 0.999
    assert case.logit == pytest.approx(10.497, abs=0.01)
    assert case.occlusion_change == pytest.approx(0.783, abs=0.01)  # the mark helps, a little
    assert case.relevance_sum == pytest.approx(-6.051, abs=0.02)
    assert case.absorbed_by_bias == pytest.approx(16.392, abs=0.02)  # 156 % of the logit
    assert case.mark_zb == pytest.approx(-1.092, abs=0.02)
    assert case.mark_epsilon == pytest.approx(-1.631, abs=0.02)
    assert case.mark_gradient == pytest.approx(-2.100, abs=0.02)
