"""The arena command: trains a subset on the bundled experiment, writes its files, resumes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import isnet
from benchmarks import arena
from isnet.training.experiment import ExperimentData, evaluation_set

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(),
                       reason="dataset-fashion-mnist not installed"),
]

TINY = ["--backbone", "tiny_densenet", "--size", "32", "--train-limit", "24",
        "--test-limit", "12", "--epochs", "1", "--batch-size", "12", "--threads", "1"]


def test_arena_writes_results_and_resumes(tmp_path, capsys):
    out = tmp_path / "arena"
    assert arena.main(["--methods", "standard,unet_segment", "--out-dir", str(out), *TINY]) == 0
    for name in ("standard.json", "unet_segment.json", "arena.json", "arena.md", "arena.png",
                 "standard.safetensors", "unet_segment.safetensors"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "arena.json").read_text())
    records = {r["method"]: r for r in summary["methods"]}
    assert set(records) == {"standard", "unet_segment"}
    standard, pipeline = records["standard"], records["unet_segment"]
    assert standard["splits"]["confounding"]["background_share_lrp"] is not None
    assert pipeline["splits"]["biased"]["background_share_lrp"] is None  # no LRP walk
    assert 0 <= pipeline["splits"]["biased"]["background_share_native"] <= 1
    assert pipeline["parameters"] > standard["parameters"] > 0
    model, metadata = isnet.load_checkpoint(out / "unet_segment.safetensors")
    assert metadata["config"]["method"] == "unet_segment"
    before = (out / "standard.json").read_text()
    capsys.readouterr()
    assert arena.main(["--methods", "standard", "--out-dir", str(out), "--resume", *TINY]) == 0
    assert (out / "standard.json").read_text() == before  # skipped, not retrained
    table = (out / "arena.md").read_text()
    assert "U-Net, then classifier" in table and "Standard" in table  # both runs listed


def test_arena_explains_each_model_with_its_own_input_rule_and_reevaluates(tmp_path):
    out = tmp_path / "arena"
    args = ["--methods", "selective", "--out-dir", str(out), "--isnet-recipe", "bundled", *TINY]
    assert arena.main(args) == 0
    record = json.loads((out / "selective.json").read_text())
    assert record["lrp_input_rule"] == "ε"  # the bundled recipe trains with the ε input rule
    assert "(ε input)" in (out / "arena.md").read_text()
    model, metadata = isnet.load_checkpoint(out / "selective.safetensors")
    assert metadata["config"]["zb"] is False
    data = ExperimentData(size=32, train_limit=24, val_limit=1, test_limit=12, seed=0)
    images = evaluation_set(data, "unbiased")
    expected = isnet.measure(model, images, 12, metadata["config"]["epsilon"], zb=False)
    measured = record["splits"]["unbiased"]
    assert measured["background_share_lrp"] == pytest.approx(expected["background_share"],
                                                             abs=1e-3)  # float16 weights
    # --reevaluate measures the saved network again and keeps the training results
    record["splits"]["unbiased"]["background_share_lrp"] = 5.0
    (out / "selective.json").write_text(json.dumps(record))
    assert arena.main([*args, "--resume", "--reevaluate"]) == 0
    again = json.loads((out / "selective.json").read_text())
    assert again["splits"]["unbiased"]["background_share_lrp"] == pytest.approx(
        expected["background_share"], abs=1e-9)
    assert again["evaluated_on"] == "CPU" and again["steps"] == record["steps"]
