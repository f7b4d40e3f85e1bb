"""Robustness to unseen background changes: planted test images and the accuracy drop."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import isnet
from isnet.data.bias.config import BIAS_KINDS
from isnet.evaluate import format_robustness, main
from isnet.models.densenet import tiny_densenet
from isnet.training.experiment import ExperimentData, evaluation_set
from isnet.training.robustness import accuracy, checkpoint_robustness, planted_set, robustness

SMALL = ExperimentData(size=32, train_limit=24, val_limit=8, test_limit=12, seed=5)


@pytest.mark.parametrize("kind", BIAS_KINDS)
def test_planted_images_change_only_the_background(kind):
    clean = evaluation_set(SMALL, "unbiased")
    planted = planted_set(SMALL, kind)
    assert torch.equal(planted.labels, clean.labels)
    assert torch.equal(planted.masks, clean.masks)
    inside = clean.masks.bool().expand_as(clean.images)
    assert torch.equal(planted.images[inside], clean.images[inside])  # the object is untouched
    assert not torch.equal(planted.images, clean.images)  # and something was planted
    assert torch.equal(planted_set(SMALL, kind).images, planted.images)  # seeded


def test_local_marks_move_and_region_kinds_cover_the_background():
    clean = evaluation_set(SMALL, "unbiased")
    changed = {kind: ((planted_set(SMALL, kind).images - clean.images).abs().sum(1) > 0)
               for kind in ("shape", "tint")}  # (N, H, W) pixels changed
    background = ~clean.masks[:, 0].bool()
    # a tint changes (nearly) all of the background, a shape mark a small part of it
    assert changed["tint"].sum() > 0.8 * background.sum()
    assert changed["shape"].sum() < 0.2 * background.sum()
    corners = changed["shape"][:, :8, :8].flatten(1).any(1)  # marks at random places, not
    assert not corners.all()  # always in the training corner


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="kind must be one of"):
        planted_set(SMALL, "sticker")


def test_robustness_is_the_accuracy_difference_in_points():
    torch.manual_seed(0)
    model = tiny_densenet(num_classes=10).double()
    result = robustness(model, SMALL, kinds=("shape", "tint"))
    clean = accuracy(model, evaluation_set(SMALL, "unbiased"))
    assert set(result) == {"shape", "tint"}
    for kind, values in result.items():
        planted = accuracy(model, planted_set(SMALL, kind))
        assert values == {"clean": clean, "planted": planted,
                          "drop_points": round(100 * (clean - planted), 1)}
    labels = evaluation_set(SMALL, "unbiased").labels
    with torch.no_grad():  # accuracy is the plain forward's
        direct = (model(evaluation_set(SMALL, "unbiased").images.double()).argmax(1) == labels)
    assert clean == pytest.approx(float(direct.double().mean()))
    given = robustness(model, SMALL, kinds=("shape",), clean=0.5)["shape"]
    assert given["clean"] == 0.5 and given["drop_points"] == round(100 * (0.5 - given["planted"]),
                                                                   1)


def test_robustness_command_and_table(tmp_path, capsys):
    torch.manual_seed(0)
    path = isnet.save_checkpoint(tmp_path / "tiny.safetensors", tiny_densenet(num_classes=10),
                                 data=SMALL.to_dict())
    assert main([str(path), "--robustness", "--kinds", "shape", "texture", "--json"]) == 0
    values = json.loads(capsys.readouterr().out)["tiny"]
    assert values == checkpoint_robustness(path, ("shape", "texture"))
    assert main([str(path), "--robustness", "--kinds", "decoy", "--limit", "6"]) == 0
    table = capsys.readouterr().out
    assert "| checkpoint | clean accuracy (%) | decoy: drop (points) |" in table
    assert table.strip().splitlines()[-1].startswith("| tiny | ")
    # --data-seed: the same model on another draw of the test images
    assert main([str(path), "--robustness", "--kinds", "tint", "--data-seed", "3", "--json"]) == 0
    other = json.loads(capsys.readouterr().out)["tiny"]
    model, _ = isnet.load_checkpoint(path)
    assert other == robustness(model, replace(SMALL, seed=3), kinds=("tint",))
    bare = isnet.save_checkpoint(tmp_path / "bare.safetensors", tiny_densenet(num_classes=10))
    with pytest.raises(ValueError, match="no 'data' description"):
        checkpoint_robustness(bare)


def test_robustness_table_lists_every_kind_once():
    results = {"a": {"shape": {"clean": 0.8, "planted": 0.75, "drop_points": 5.0}},
               "b": {"shape": {"clean": 0.9, "planted": 0.9, "drop_points": 0.0},
                     "tint": {"clean": 0.9, "planted": 0.4, "drop_points": 50.0}}}
    lines = format_robustness(results).splitlines()
    assert lines[0] == ("| checkpoint | clean accuracy (%) | shape: drop (points) | "
                        "tint: drop (points) |")
    assert lines[2] == "| a | 80.0 | 5.0 | – |"
    assert lines[3] == "| b | 90.0 | 0.0 | 50.0 |"


def test_bias_lab_measures_both_models_and_exports_the_table(tmp_path):
    from ui_fixtures import write_samples

    from explorer.app import make_context
    from explorer.errors import InputError
    from explorer.handlers import export as hx
    from explorer.handlers import robustness as hr
    from isnet.data.fashion_mnist import FASHION_MNIST_CLASSES

    models = {}
    for seed, kind in enumerate(("standard", "isnet")):
        torch.manual_seed(seed)
        models[f"F {kind}"] = (tiny_densenet(num_classes=10).eval(),
                               {"class_names": list(FASHION_MNIST_CLASSES), "input_size": 32,
                                "trained_as": kind, "model_name": "tiny_densenet"})
    torch.manual_seed(2)
    models["Three"] = (tiny_densenet(num_classes=3).eval(),
                       {"class_names": ["a", "b", "c"], "input_size": 32})
    images, masks = write_samples(tmp_path / "assets")
    ctx = make_context(models=models, samples_dir=images, masks_dir=masks,
                       work_dir=tmp_path / "work")
    ids = {entry.label: entry.model_id for entry in ctx.store.visible(None)}
    view = hr.measure(ctx, "s", hr.RobustnessRequest((ids["F standard"], ids["F isnet"]), 12))
    data = ExperimentData(size=32, test_limit=12)
    for label, row in zip(("F standard", "F isnet"), view.rows, strict=True):
        expected = robustness(ctx.store.get(ids[label], "s").model, data)
        assert view.results[label] == expected
        assert row == [label, round(100 * expected["shape"]["clean"], 1),
                       *(expected[kind]["drop_points"] for kind in BIAS_KINDS)]
    assert view.markdown.count("| F ") == 2
    exported = hx.export_view(ctx, "s", hx.ExportRequest("robustness"))
    record = json.loads(Path(exported.numbers).read_text())
    assert record["table"]["rows"] == view.rows and record["settings"]["images"] == 12
    with pytest.raises(InputError, match="other classes than Fashion-MNIST"):
        hr.measure(ctx, "s", hr.RobustnessRequest((ids["Three"],), 12))
    with pytest.raises(InputError, match="between 1 and"):
        hr.measure(ctx, "s", hr.RobustnessRequest((ids["F isnet"],), hr.MAX_IMAGES + 1))
    large = ctx.store.get(ids["F isnet"], "s")
    large.metadata["input_size"] = 224  # fewer images for larger inputs (same pixels)
    assert hr.most_images(large) == int(hr.MAX_IMAGES * (64 / 224) ** 2)
    with pytest.raises(InputError, match="at most 81 test images"):
        hr.measure(ctx, "s", hr.RobustnessRequest((ids["F isnet"],), 100))
    large.metadata["input_size"] = 32
    same = hr.measure(ctx, "s", hr.RobustnessRequest((ids["F isnet"], ids["F isnet"]), 12))
    assert len(same.rows) == 1  # the same model twice is measured once
