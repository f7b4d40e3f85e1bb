"""Evaluation command and the experiment's data description (rebuilt bit for bit by seed)."""

from __future__ import annotations

import json

import pytest
import torch

import isnet
from isnet.evaluate import main
from isnet.models.densenet import tiny_densenet
from isnet.training.evaluate import evaluate_checkpoint
from isnet.training.experiment import ExperimentData, evaluation_set, training_sets

SMALL = ExperimentData(size=32, train_limit=24, val_limit=8, test_limit=12, seed=5)


def test_description_round_trips_through_json():
    values = json.loads(json.dumps(SMALL.to_dict()))
    assert values["dataset"] == "fashion-mnist"
    assert ExperimentData.from_dict(values) == SMALL
    with pytest.raises(ValueError, match="train_split"):
        ExperimentData(train_split="confounding")
    with pytest.raises(ValueError, match="fashion-mnist"):
        ExperimentData.from_dict({"dataset": "imagenet"})


def test_training_sets_are_disjoint_seeded_and_marked():
    train, val = training_sets(SMALL)
    again, _ = training_sets(SMALL)
    assert (len(train), len(val)) == (24, 8)
    assert torch.equal(train.images, again.images)
    flat_train, flat_val = train.images.flatten(1), val.images.flatten(1)
    assert not any(torch.equal(a, b) for a in flat_train for b in flat_val)
    clean, _ = training_sets(ExperimentData(**{**SMALL.__dict__, "train_split": "unbiased"}))
    assert torch.equal(clean.masks, train.masks) and not torch.equal(clean.images, train.images)
    background = (1 - train.masks) * (train.images - clean.images).abs()
    assert torch.equal(background, (train.images - clean.images).abs())  # marks off the object


def test_test_splits_differ_only_in_the_mark():
    biased, confounding = evaluation_set(SMALL, "biased"), evaluation_set(SMALL, "confounding")
    unbiased = evaluation_set(SMALL, "unbiased")
    assert torch.equal(biased.labels, confounding.labels)
    assert not torch.equal(biased.images, confounding.images)
    inside = biased.masks.bool().expand_as(biased.images)
    assert torch.equal(biased.images[inside], unbiased.images[inside])
    with pytest.raises(ValueError, match="split"):
        evaluation_set(SMALL, "shifted")


def test_evaluate_command_prints_json_and_table(tmp_path, capsys):
    torch.manual_seed(0)
    path = isnet.save_checkpoint(tmp_path / "tiny.safetensors",
                                 tiny_densenet(num_classes=10), data=SMALL.to_dict())
    assert main([str(path), "--json", "--split", "biased", "confounding"]) == 0
    values = json.loads(capsys.readouterr().out)
    assert set(values["tiny"]) == {"biased", "confounding"}
    for split in values["tiny"].values():
        assert split["count"] == 12 and 0 <= split["accuracy"] <= 1
        assert 0 <= split["background_share"] <= 1
    assert main([str(path), "--limit", "6", "--split", "unbiased"]) == 0
    assert "| tiny | unbiased |" in capsys.readouterr().out


def test_evaluation_uses_the_input_rule_the_model_was_trained_with(tmp_path, capsys):
    from isnet.training.evaluate import measure

    torch.manual_seed(0)
    model = tiny_densenet(num_classes=10)
    path = isnet.save_checkpoint(tmp_path / "eps.safetensors", model, data=SMALL.to_dict(),
                                 config=isnet.TrainConfig(zb=False, num_classes=10).to_dict())
    images = evaluation_set(SMALL, "biased", 6)
    trained = evaluate_checkpoint(path, ["biased"], limit=6)["biased"]
    assert trained["zb"] is False
    assert trained["background_share"] == pytest.approx(
        measure(model.eval(), images, epsilon=0.01, zb=False)["background_share"], rel=1e-5)
    chosen = evaluate_checkpoint(path, ["biased"], limit=6, zb=True)["biased"]
    assert chosen["background_share"] == pytest.approx(
        measure(model.eval(), images, epsilon=0.01, zb=True)["background_share"], rel=1e-5)
    assert chosen["background_share"] != pytest.approx(trained["background_share"])
    assert main([str(path), "--limit", "6", "--split", "biased"]) == 0
    assert "| ε |" in capsys.readouterr().out
    assert main([str(path), "--limit", "6", "--split", "biased", "--input-rule", "zb"]) == 0
    assert "| z^B |" in capsys.readouterr().out


def test_data_seed_rebuilds_the_test_images_of_another_draw(tmp_path):
    from dataclasses import replace

    from isnet.training.evaluate import measure

    torch.manual_seed(0)
    model = tiny_densenet(num_classes=10)
    path = isnet.save_checkpoint(tmp_path / "tiny.safetensors", model, data=SMALL.to_dict())
    other = evaluate_checkpoint(path, ["unbiased"], limit=6, data_seed=3)["unbiased"]
    expected = measure(model.eval(), evaluation_set(replace(SMALL, seed=3), "unbiased", 6))
    assert other["accuracy"] == expected["accuracy"]
    assert other["background_share"] == pytest.approx(expected["background_share"], rel=1e-5)
    assert not torch.equal(evaluation_set(replace(SMALL, seed=3), "unbiased", 6).images,
                           evaluation_set(SMALL, "unbiased", 6).images)


def test_checkpoint_without_data_description_is_explained(tmp_path):
    path = isnet.save_checkpoint(tmp_path / "bare.safetensors", tiny_densenet(10))
    with pytest.raises(ValueError, match="no 'data' description"):
        evaluate_checkpoint(path)


def test_checkpoints_with_the_same_file_name_keep_their_own_results(tmp_path, capsys):
    from pathlib import Path

    from isnet.evaluate import row_names

    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        folder = tmp_path / f"run{seed}"
        folder.mkdir()
        paths.append(isnet.save_checkpoint(folder / "model.safetensors",
                                           tiny_densenet(num_classes=10), data=SMALL.to_dict()))
    assert main([str(p) for p in paths] + ["--json", "--split", "biased", "--limit", "6"]) == 0
    values = json.loads(capsys.readouterr().out)
    assert set(values) == {"run0/model", "run1/model"}
    for name, path in zip(("run0/model", "run1/model"), paths, strict=True):
        assert values[name]["biased"]["accuracy"] == evaluate_checkpoint(
            path, ["biased"], limit=6)["biased"]["accuracy"]
    assert row_names([Path("a/x.pt"), Path("b/y.pt")]) == ["x", "y"]
    assert len(set(row_names([Path("a/b/x.pt"), Path("c/b/x.pt")]))) == 2


def test_the_recorded_data_folder_is_a_hint_and_data_root_overrides_it(tmp_path, capsys):
    from dataclasses import replace

    from isnet.training.experiment import checkpoint_data

    elsewhere = replace(SMALL, root=str(tmp_path / "the-trainers-machine")).to_dict()
    assert checkpoint_data({"data": elsewhere}, "x").root is None  # not there: the default
    assert checkpoint_data({"data": elsewhere}, "x", root=tmp_path).root == str(tmp_path)
    torch.manual_seed(0)
    path = isnet.save_checkpoint(tmp_path / "moved.safetensors", tiny_densenet(num_classes=10),
                                 data=elsewhere)
    assert evaluate_checkpoint(path, ["biased"], limit=3)["biased"]["count"] == 3
    with pytest.raises(ValueError, match="not found in"):
        evaluate_checkpoint(path, ["biased"], limit=3, data_root=tmp_path)  # no files there
    bare = isnet.save_checkpoint(tmp_path / "bare.safetensors", tiny_densenet(10))
    assert main([str(bare), str(path), "--limit", "3", "--split", "biased"]) == 1
    captured = capsys.readouterr()
    assert "| moved | biased |" in captured.out  # a failure does not stop the others
    assert "bare: " in captured.err and "1 of 2 checkpoints" in captured.err


def test_progress_follows_each_batch_and_leaves_the_results_unchanged(tmp_path):
    torch.manual_seed(0)
    path = isnet.save_checkpoint(tmp_path / "tiny.safetensors", tiny_densenet(num_classes=10),
                                 data=SMALL.to_dict())
    calls: list[tuple[int, int]] = []
    batched = evaluate_checkpoint(path, ["biased", "unbiased"], limit=5, batch_size=2,
                                  progress=lambda done, total: calls.append((done, total)))
    assert calls == [(2, 10), (4, 10), (5, 10), (7, 10), (9, 10), (10, 10)]
    whole = evaluate_checkpoint(path, ["biased", "unbiased"], limit=5, batch_size=2)
    for split, values in whole.items():
        assert batched[split]["accuracy"] == values["accuracy"]
        assert batched[split]["count"] == values["count"] == 5
        assert batched[split]["background_share"] == pytest.approx(values["background_share"],
                                                                   rel=1e-9)


def test_the_readme_evaluate_command_measures_every_bundled_checkpoint(capsys):
    """The README's own command, at ``--limit 4``: every bundled checkpoint prints its rows."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    command = "python -m isnet.evaluate assets/checkpoints/*.safetensors"
    assert f"`{command}`" in (root / "README.md").read_text(encoding="utf-8").replace("\n", " ")
    paths = sorted(root.glob(command.split()[-1]))
    assert len(paths) >= 5
    assert main([str(path) for path in paths] + ["--limit", "4"]) == 0
    out = capsys.readouterr().out
    for path in paths:
        for split in ("biased", "unbiased", "confounding"):
            assert f"| {path.stem} | {split} |" in out
    assert out.count("| 4 |") == 3 * len(paths)
