"""The arena with seeds (issue 33): one run per method and seed, robustness columns in every
run's JSON, a table of means and ranges, and --table-only remaking it from the files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import arena

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(),
                       reason="dataset-fashion-mnist not installed"),
]

TINY = ["--backbone", "tiny_densenet", "--size", "32", "--train-limit", "24",
        "--test-limit", "12", "--epochs", "1", "--batch-size", "12", "--threads", "1"]
KINDS = {"shape", "decoy", "text", "tint", "texture"}


def test_seeds_give_one_run_each_with_robustness_columns_and_a_table(tmp_path):
    out = tmp_path / "arena"
    assert arena.main(["--methods", "background_swap", "--seeds", "0", "1",
                       "--out-dir", str(out), *TINY]) == 0
    runs = [json.loads((out / f"background_swap-seed{k}.json").read_text()) for k in (0, 1)]
    assert [r["seed"] for r in runs] == [0, 1]
    for run in runs:
        assert set(run["robustness"]) == KINDS
        assert (out / f"{run['file']}.safetensors").is_file()
    summary = json.loads((out / "arena.json").read_text())
    [row] = summary["rows"]
    assert row["seeds"] == [0, 1] and row["files"] == ["background_swap-seed0",
                                                       "background_swap-seed1"]
    accuracies = [100 * r["splits"]["unbiased"]["accuracy"] for r in runs]
    assert row["columns"]["acc_unbiased"]["mean"] == pytest.approx(sum(accuracies) / 2)
    assert "2 (fewer than 3)" in (out / "arena.md").read_text()
    # a run without its columns gets them back from its checkpoint
    first = out / "background_swap-seed0.json"
    bare = {k: v for k, v in runs[0].items() if k != "robustness"}
    first.write_text(json.dumps(bare))
    assert arena.main(["--out-dir", str(out), "--table-only", *TINY]) == 0
    assert json.loads(first.read_text())["robustness"] == runs[0]["robustness"]


def test_the_unbiased_trained_ceiling_is_its_own_row(tmp_path):
    out = tmp_path / "arena"
    assert arena.main(["--methods", "standard", "--train-split", "unbiased",
                       "--out-dir", str(out), *TINY]) == 0
    record = json.loads((out / "standard-unbiased.json").read_text())
    assert record["train_split"] == "unbiased" and "ceiling" in record["title"]
