"""``scripts/mark_channels.py``: the mark's effect on the logits and what LRP credits to it, on
the bundled checkpoints (a standard DenseNet121 that learned the corner mark, and the ISNet)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from isnet import LRPConfig, explain, load_checkpoint
from isnet.training.experiment import ExperimentData, evaluation_set
from scripts.mark_channels import mark_channels

CHECKPOINTS = Path(__file__).resolve().parents[1] / "assets" / "checkpoints"
STANDARD = CHECKPOINTS / "standard_densenet121.safetensors"
ISNET = CHECKPOINTS / "isnet_densenet121.safetensors"
IMAGES = 12


@pytest.fixture(scope="module")
def results():
    if not (STANDARD.is_file() and ISNET.is_file()):
        pytest.fail("the bundled checkpoints are missing from assets/checkpoints")
    return {name: mark_channels(path, IMAGES, batch_size=5)
            for name, path in (("standard", STANDARD), ("isnet", ISNET))}


def test_the_shortcut_model_reads_the_mark_and_the_isnet_does_not(results):
    standard, isnet = results["standard"], results["isnet"]
    assert standard["true"] > 1.0 and standard["margin"] > 1.0  # the mark decides its answer
    assert abs(isnet["true"]) < standard["true"] / 10
    assert standard["share_true"] > 0.05 > 0.01 > isnet["share_true"]
    for r in results.values():
        assert 0.0 <= r["share_true"] <= 1.0 and 0.0 <= r["share_others"] <= 1.0
        assert abs(r["signed_true"]) <= r["share_true"] + 1e-9


def test_credit_to_the_mark_matches_the_true_class_map_computed_on_its_own(results):
    """The "all maps" bookkeeping picks each image's own class: recompute the credit with one
    map per image (target = the label) and a plain sum over the changed pixels."""
    model, metadata = load_checkpoint(ISNET)
    data = ExperimentData(test_limit=IMAGES)
    marked, clean = evaluation_set(data, "biased"), evaluation_set(data, "unbiased")
    with torch.inference_mode():
        logits, maps = explain(model, marked.images, marked.labels,
                               lrp=LRPConfig.as_trained(metadata.get("config")))
        clean_logits = model(clean.images)
    on_mark = ((marked.images - clean.images).abs().sum(1) > 0).float()  # (N, H, W)
    credit = float((maps[:, 0].sum(1) * on_mark).sum()) / IMAGES
    assert results["isnet"]["credited_true"] == pytest.approx(credit, abs=1e-5)
    change = (logits - clean_logits).gather(1, marked.labels[:, None]).mean()
    assert results["isnet"]["true"] == pytest.approx(float(change), abs=1e-5)
