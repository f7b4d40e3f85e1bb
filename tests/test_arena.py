"""The arena command: trains a subset on the bundled experiment, writes its files, resumes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import isnet
from benchmarks import arena

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
