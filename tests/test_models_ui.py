"""The Models tab's work: torchvision state dicts of every family (random weights, no downloads),
ImageNet preprocessing, overrides, paths on disk, the LRP mode switch, transfer heads and the
explain path with each model's own input size and normalisation."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from ui_fixtures import make_context, object_image

import isnet
from explorer.errors import InputError
from explorer.handlers import lrp_compare
from explorer.handlers import models as hm
from explorer.handlers.explain import ExplainRequest, explain
from explorer.handlers.lrp_modes import AUTHORS, CORRECTED, lrp_config
from explorer.limits import Limits
from explorer.media.editor import EditorInput, editor_value
from explorer.media.tensors import model_input
from isnet.training.transfer import classifier_path, replace_classifier

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@pytest.fixture
def ctx(tmp_path):
    return make_context(tmp_path)


def _local(ctx, on: bool):
    return dataclasses.replace(ctx, limits=Limits(local_paths=on))


def _vgg11_state(num_classes: int) -> dict:
    """torchvision's vgg11 features with a narrow classifier (the 4096-wide one is 500 MB)."""
    features = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["A"])
    with torch.device("meta"):
        theirs = torchvision.models.vgg.VGG(features, init_weights=False)
    theirs.classifier = torch.nn.Sequential(
        torch.nn.Linear(512 * 7 * 7, 8), torch.nn.ReLU(), torch.nn.Dropout(),
        torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Dropout(), torch.nn.Linear(8, num_classes))
    return theirs.state_dict()


def test_resnet18_and_vgg11_state_dicts_load_with_family_and_classes(ctx, tmp_path):
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(num_classes=5).state_dict(), tmp_path / "r18.pth")
    torch.save(_vgg11_state(4), tmp_path / "v11.pth")
    resnet = hm.load_model_file(ctx, "ann", str(tmp_path / "r18.pth"))
    vgg = hm.load_model_file(ctx, "ann", str(tmp_path / "v11.pth"))
    assert (resnet.family, resnet.model.num_classes, resnet.class_names) == \
        ("resnet", 5, ["0", "1", "2", "3", "4"])
    assert (vgg.family, vgg.model.num_classes) == ("vgg", 4)
    card = hm.model_card(resnet)
    assert "**Family:** resnet" in card and "resnet18" in card and "Classes (5)" in card
    assert "none (pixels in [0, 1])" in card and "corrected LRP" in card
    assert "**Family:** vgg" in hm.model_card(vgg)
    assert resnet.lrp_mode == vgg.lrp_mode == CORRECTED


def test_imagenet_dict_gets_names_size_normalisation_and_bounds(ctx, tmp_path):
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tmp_path / "r18.pth")
    entry = hm.load_model_file(ctx, "bo", str(tmp_path / "r18.pth"))
    assert entry.class_names[:2] == ["tench", "goldfish"] and entry.input_size == 224
    mean, std = entry.normalisation
    assert mean == pytest.approx(MEAN) and std == pytest.approx(STD)
    low, high = entry.bounds
    assert low == pytest.approx([-m / s for m, s in zip(MEAN, STD, strict=True)])
    card = hm.model_card(entry)
    assert "224×224" in card and "tench" in card and "mean (0.485, 0.456, 0.406)" in card
    assert "z^B bounds" in card and "Classes (1000)" in card and "980 more" in card
    config = lrp_config(entry)
    assert config.low == low and config.high == high and config.reference_quirks is False


def test_overrides_apply_and_bad_ones_are_refused(ctx, tmp_path):
    torch.save(isnet.create_model("tiny_resnet", num_classes=3).state_dict(), tmp_path / "t.pt")
    names = tmp_path / "names.txt"
    names.write_text("cat\ndog\n\nbird\n")
    overrides = hm.Overrides(input_size=48, mean="0.5", std="0.25, 0.5, 0.25",
                             class_file=str(names))
    entry = hm.load_model(ctx, "cy", hm.LoadRequest(upload=str(tmp_path / "t.pt"),
                                                    overrides=overrides))
    assert entry.input_size == 48 and entry.class_names == ["cat", "dog", "bird"]
    assert entry.normalisation == ([0.5] * 3, [0.25, 0.5, 0.25])
    assert entry.bounds == ([-2.0, -1.0, -2.0], [2.0, 1.0, 2.0])
    assert "*(overridden)*" in hm.model_card(entry)
    hm.override_model(ctx, "cy", entry.model_id, hm.Overrides(mean="none", std="none"))
    assert entry.normalisation is None and entry.bounds == (0.0, 1.0)
    names.write_text("only\ntwo\n")
    with pytest.raises(InputError, match="2 class names"):
        hm.override_model(ctx, "cy", entry.model_id, hm.Overrides(class_file=str(names)))
    with pytest.raises(InputError, match="positive"):
        hm.override_model(ctx, "cy", entry.model_id, hm.Overrides(mean="0", std="0"))
    with pytest.raises(InputError, match="one value per input channel"):
        hm.override_model(ctx, "cy", entry.model_id, hm.Overrides(mean="1,2", std="1,2"))
    with pytest.raises(InputError, match="shared"):
        hm.override_model(ctx, None, "standard", hm.Overrides(input_size=40))


def test_mobilenet_like_dict_gets_the_clear_error(ctx, tmp_path):
    torch.save(torchvision.models.mobilenet_v3_small(num_classes=3).state_dict(),
               tmp_path / "m.pth")
    with pytest.raises(InputError, match="match no supported model family.*Closest"):
        hm.load_model_file(ctx, "di", str(tmp_path / "m.pth"))


def test_path_on_disk_only_when_local_and_not_shared(ctx, tmp_path):
    path = tmp_path / "t.pt"
    torch.save(isnet.create_model("tiny_vgg", num_classes=3).state_dict(), path)
    with pytest.raises(InputError, match="only when the app runs locally"):
        hm.load_model(ctx, "ed", hm.LoadRequest(disk_path=str(path)))
    local = _local(ctx, True)
    entry = hm.load_model(local, "ed", hm.LoadRequest(disk_path=str(path)))
    assert entry.family == "vgg" and entry.path == str(path)
    with pytest.raises(InputError, match="not a file"):
        hm.load_model(local, "ed", hm.LoadRequest(disk_path=str(tmp_path / "nope.pt")))
    small = dataclasses.replace(local, limits=Limits(local_paths=True, max_checkpoint_size="1kb"))
    with pytest.raises(InputError, match="limit"):
        hm.load_model(small, "ed", hm.LoadRequest(disk_path=str(path)))
    assert Limits().upload_limit == "1gb" and Limits(max_checkpoint_size="1mb").upload_limit \
        == "25mb"


def test_two_families_side_by_side_each_with_its_own_input(ctx, tmp_path):
    torch.manual_seed(0)
    torch.save(isnet.create_model("tiny_resnet", num_classes=3).state_dict(), tmp_path / "r.pt")
    resnet = hm.load_model(ctx, "fay", hm.LoadRequest(
        upload=str(tmp_path / "r.pt"),
        overrides=hm.Overrides(input_size=40, mean=",".join(map(str, MEAN)),
                               std=",".join(map(str, STD)))))
    image, mask = object_image(1, size=64)
    pair = explain(ctx, "fay", ExplainRequest(EditorInput(editor_value(image, mask)),
                                              "standard", resnet.model_id))
    assert pair.right.share is not None and pair.left.share is not None
    assert set(pair.right.probabilities) == {"0", "1", "2"}
    # the right side's map is the engine's on the resized, normalised image with its bounds
    x = model_input(image, 40, resnet.normalisation)
    assert x.shape == (1, 3, 40, 40) and float(x.min()) < 0
    _, expected = isnet.explain(resnet.model, x, lrp=lrp_config(resnet))
    scale = pair.scale
    drawn = isnet.viz.heatmap_to_rgb(expected[0, 0], scale, size=(256, 256))
    assert np.array_equal(drawn, pair.right.heatmap)


def _dense_file(tmp_path, block_config, prefix=""):
    torch.manual_seed(1)
    model = isnet.create_model("tiny_densenet", num_classes=3, block_config=block_config)
    for module in model.modules():  # non-trivial BatchNorm, so every consumer matters
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
    path = tmp_path / f"dense{len(block_config)}{prefix.strip('.')}.pt"
    torch.save({prefix + k: v for k, v in model.state_dict().items()}, path)
    return path


@pytest.mark.slow
def test_lrp_switch_difference_is_where_the_quirks_act(ctx, tmp_path):
    image, _ = object_image(2, size=64)
    deep = hm.load_model_file(ctx, "gil", str(_dense_file(tmp_path, (10,))))
    assert deep.lrp_mode == CORRECTED  # torchvision layout
    result = lrp_compare.compare_modes(ctx, "gil", deep.model_id, image)
    assert result.largest_difference > 1e-6 and result.difference.shape == (256, 256, 3)
    x = model_input(image, deep.input_size, None)
    _, fixed = isnet.explain(deep.model, x, lrp=lrp_config(deep, CORRECTED))
    _, quirky = isnet.explain(deep.model, x, lrp=lrp_config(deep, AUTHORS))
    assert lrp_config(deep, AUTHORS).reference_quirks
    peak = float(isnet.viz.relevance_map(fixed[0, 0]).__abs__().max())
    expected = np.abs(isnet.viz.relevance_map(fixed[0, 0] - quirky[0, 0])).max() / peak
    assert result.largest_difference == pytest.approx(expected)
    # the Explain tab's difference mode shows the same map, with no background share
    pair = explain(ctx, "gil", ExplainRequest(EditorInput(editor_value(image, None)),
                                              deep.model_id, deep.model_id,
                                              lrp_mode="difference"))
    assert pair.left.share is None
    # another family has no published block: both modes agree
    torch.save(isnet.create_model("tiny_resnet", num_classes=3).state_dict(), tmp_path / "r.pt")
    resnet = hm.load_model_file(ctx, "gil", str(tmp_path / "r.pt"))
    other = lrp_compare.compare_modes(ctx, "gil", resnet.model_id, image)
    assert other.largest_difference == 0 and "no LRP block" in other.summary
    with pytest.raises(ValueError, match="reference"):
        isnet.explain(resnet.model, model_input(image, 64), lrp=isnet.LRPConfig(
            reference_quirks=True))


def test_authors_format_opens_in_authors_mode_and_says_why(ctx, tmp_path):
    entry = hm.load_model_file(ctx, "hal", str(_dense_file(tmp_path, (1, 1), "DenseNet.")))
    assert entry.lrp_mode == AUTHORS and lrp_config(entry).reference_quirks
    assert "authors' own format" in hm.model_card(entry)
    lightning = tmp_path / "lightning.ckpt"  # their Lightning layout: a "state_dict" entry
    torch.save({"state_dict": torch.load(_dense_file(tmp_path, (1, 1), "DenseNet."),
                                         weights_only=True)}, lightning)
    assert hm.load_model_file(ctx, "hal", str(lightning)).lrp_mode == AUTHORS
    lrp_compare.set_mode(ctx, "hal", entry.model_id, CORRECTED)
    assert not lrp_config(entry).reference_quirks
    with pytest.raises(InputError, match="shared"):
        lrp_compare.set_mode(ctx, None, "standard", AUTHORS)


@pytest.mark.parametrize("name,path", [("tiny_resnet", "fc"), ("tiny_vgg", "classifier.6"),
                                       ("tiny_densenet", "classifier")])
def test_head_replacement_keeps_the_body_and_trains(name, path):
    torch.manual_seed(0)
    model = isnet.create_model(name, num_classes=7).double()
    body = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith(path + ".")}
    assert classifier_path(model) == path
    replace_classifier(model, 2, torch.Generator().manual_seed(0))
    assert model.num_classes == 2 and model.arch["num_classes"] == 2
    assert model.classifier_layer.weight.dtype == torch.float64
    assert all(torch.equal(model.state_dict()[k], v) for k, v in body.items())
    images = torch.rand(4, 3, 32, 32, dtype=torch.float64)
    masks = torch.zeros(4, 1, 32, 32, dtype=torch.float64)
    masks[..., 8:24, 8:24] = 1
    labels = torch.tensor([0, 1, 0, 1])
    net = isnet.ISNet(model, explain="target")
    optimiser = torch.optim.SGD(model.parameters(), lr=0.01)
    losses = []
    model.train()
    for _ in range(6):
        logits, heatmaps = net(images, labels)
        loss = isnet.isnet_loss(logits, labels, heatmaps, masks).total
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]


# --- the arena tab -----------------------------------------------------------------------------

def _arena_record(method, title, accuracies, share_lrp, share_native=None, native="LRP"):
    """One method's record in the format benchmarks/arena.py writes."""
    return {"method": method, "title": title, "model": "tiny_densenet", "status": "finished",
            "advice": None, "steps": 3, "train_seconds_per_epoch": 1.25, "parameters": 1234,
            "native_map": native, "inference_ms_per_image": 0.5,
            "splits": {split: {"accuracy": acc, "background_share_lrp": share_lrp,
                               "background_share_native": share_native}
                       for split, acc in zip(("biased", "unbiased", "confounding"), accuracies,
                                             strict=True)},
            "command": "python -m benchmarks.arena --epochs 1", "device": "cpu"}


def test_arena_reads_results_and_loads_a_rows_model(ctx, tmp_path):
    from explorer.handlers import arena as ha
    from isnet.io.checkpoints import save_checkpoint

    folder = tmp_path / "arena"
    assert ha.read_leaderboard(folder).methods == []
    folder.mkdir()
    records = [_arena_record("standard", "Standard", (0.99, 0.5, 0.2), 0.6),
               _arena_record("selective", "Selective ISNet", (0.8, 0.79, 0.78), 0.2)]
    (folder / "arena.json").write_text(json.dumps({
        "command": "python -m benchmarks.arena --epochs 1", "device": "CPU", "data": {},
        "uniform_map_background_share": 0.75, "methods": records}))
    torch.manual_seed(0)
    model = isnet.create_model("tiny_densenet", num_classes=3)
    save_checkpoint(folder / "selective.safetensors", model, class_names=["a", "b", "c"],
                    input_size=32, config={"method": "selective"})
    board = ha.read_leaderboard(folder)
    assert board.methods == ["standard", "selective"] and len(board.rows[0]) == len(ha.HEADERS)
    assert board.rows[0][:5] == ["Standard", "tiny_densenet", 99.0, 50.0, 20.0]
    assert board.rows[1][-1] == "load" and board.rows[0][-1] == "—"
    assert "0.750" in board.summary and "python -m benchmarks.arena" in board.summary
    lrp = ha.HEADERS.index("BG share, LRP (input rule)")
    assert board.rows[0][lrp] == "0.600 (z^B)"  # an older record without the rule: z^B
    with pytest.raises(InputError, match="no checkpoint for standard"):
        ha.load_method(ctx, "ivy", board, 0)
    entry = ha.load_method(ctx, "ivy", board, 1)
    assert entry.label == "Arena · Selective ISNet" and entry.trained_as == "isnet"
    assert ha.load_method(ctx, "ivy", board, 1) is entry  # once per session
    assert entry.model_id in [i for _, i in ctx.store.choices("ivy")]
    image, mask = object_image(0, size=64)
    pair = explain(ctx, "ivy", ExplainRequest(EditorInput(editor_value(image, mask)),
                                              "standard", entry.model_id))
    assert pair.right.label == entry.label and pair.right.share is not None
    # a table resumed from two runs: the input rule and both commands are named
    records[1].update(lrp_input_rule="ε",
                      command="python -m benchmarks.arena --isnet-recipe bundled")
    (folder / "arena.json").write_text(json.dumps({
        "command": "python -m benchmarks.arena --resume", "device": "CPU", "methods": records}))
    board = ha.read_leaderboard(folder)
    assert board.rows[1][lrp] == "0.200 (ε)" and "made by 2 arena commands" in board.summary
    (folder / "arena.json").write_text("{not json")
    with pytest.raises(InputError, match="not readable JSON"):
        ha.read_leaderboard(folder)


def test_arena_leaderboard_exports_its_table_plot_and_checkpoints(ctx, tmp_path):
    from explorer.handlers import arena as ha
    from explorer.handlers import export as hx
    from isnet.io.export import file_sha256

    folder = _arena_folder(tmp_path, methods=["standard", "selective"])
    Image.fromarray(np.full((40, 60, 3), 200, np.uint8)).save(folder / "arena.png")
    (folder / "selective.safetensors").unlink()  # one method without its file
    board = ha.read_leaderboard(folder)
    with pytest.raises(InputError, match="Nothing to export yet"):
        hx.export_view(ctx, "ivy", hx.ExportRequest(kind="arena"))
    ha.record_leaderboard(ctx, "ivy", board)
    files = hx.export_view(ctx, "ivy", hx.ExportRequest(kind="arena"))
    record = json.loads(Path(files.numbers).read_text())
    assert record["view"] == "arena" and record["title"] == "Arena: arena"
    assert record["table"]["headers"] == ha.HEADERS[:-1]  # the table as shown (no link column)
    assert record["table"]["rows"] == [cells[:-1] for cells in board.rows]
    assert record["numbers"]["per_model"]["STANDARD"]["Acc. biased %"] == 50.0
    assert record["settings"]["results_folder"] == "arena"
    assert record["settings"]["commands"] == ["python -m benchmarks.arena --epochs 1"]
    standard, selective = record["models"]
    assert standard["file"] == "standard.safetensors"
    assert standard["sha256"] == file_sha256(folder / "standard.safetensors")
    assert selective["file"] is None and selective["sha256"] is None
    assert files.heatmaps is None  # a leaderboard has no heatmaps
    with Image.open(files.figure) as figure:
        assert figure.width >= 1000  # wide enough for the table's eleven columns
    report = Path(hx.session_report(ctx, "ivy")).read_text()
    assert "Arena: arena" in report
    empty = tmp_path / "empty"
    empty.mkdir()
    assert ha.record_leaderboard(ctx, "ivy", ha.read_leaderboard(empty)) is None


def test_arena_rows_load_bundled_checkpoints_of_a_folder_of_that_name(ctx, tmp_path):
    from explorer.handlers import arena as ha
    from isnet.io.checkpoints import save_checkpoint

    folder, bundled = tmp_path / "results" / "arena-cpu", tmp_path / "assets" / "arena"
    folder.mkdir(parents=True)
    (folder / "arena.json").write_text(json.dumps({"command": "python -m benchmarks.arena",
                                                   "device": "CPU", "methods": [
        _arena_record("standard", "Standard", (0.99, 0.5, 0.2), 0.6),
        _arena_record("selective", "Selective ISNet", (0.8, 0.79, 0.78), 0.2)]}))
    torch.manual_seed(0)
    model = isnet.create_model("tiny_densenet", num_classes=3)
    save_checkpoint(bundled / "arena-cpu" / "selective.safetensors", model,
                    class_names=["a", "b", "c"], input_size=32, config={"method": "selective"})
    save_checkpoint(bundled / "other" / "standard.safetensors", model,  # another folder's
                    class_names=["a", "b", "c"], input_size=32, config={"method": "standard"})
    board = ha.read_leaderboard(folder, bundled)
    assert board.checkpoints == {"selective": str(bundled / "arena-cpu" /
                                                  "selective.safetensors")}
    assert [r[-1] for r in board.rows] == ["—", "load"]
    assert ha.load_method(ctx, "ivy", board, 1).label == "Arena · Selective ISNet"
    # the folder's own file wins over the bundled one
    save_checkpoint(folder / "selective.safetensors", model, class_names=["a", "b", "c"],
                    input_size=32, config={"method": "selective"})
    assert ha.read_leaderboard(folder, bundled).checkpoints["selective"] == str(
        folder / "selective.safetensors")


def test_bundled_arena_checkpoints_load_and_match_their_results():
    from explorer.handlers import arena as ha

    board = ha.read_leaderboard(ha.DEFAULT_FOLDER.parent / "arena-cpu")
    assert {"vit", "ag_sononet"} <= set(board.checkpoints)
    for method in ("vit", "ag_sononet"):
        model, metadata = isnet.load_checkpoint(board.checkpoints[method])
        assert metadata["config"]["method"] == method
        assert metadata["class_names"][0] == "T-shirt/top"
        assert sum(p.numel() for p in model.parameters()) == board.rows[
            board.methods.index(method)][ha.HEADERS.index("Parameters")]


def test_arena_tab_offers_every_results_folder_by_name(ctx, tmp_path):
    from explorer.handlers import arena as ha

    root = tmp_path / "results"
    for name, methods in (("run-b", 2), ("run-a", 1)):
        (root / name).mkdir(parents=True)
        records = [dict(_arena_record(f"m{i}", f"M{i}", (0.9, 0.5, 0.1), 0.5), epochs_done=i + 1)
                   for i in range(methods)]
        (root / name / "arena.json").write_text(json.dumps(
            {"device": "CPU", "data": {"size": 32}, "methods": records}))
    (root / "not-arena").mkdir()
    (tmp_path / "elsewhere" / "run-a").mkdir(parents=True)
    (root / "damaged").mkdir()
    (root / "damaged" / "arena.json").write_text("{not json")
    ctx.arena_dir = root / "run-b"
    folders = ha.results_folders(ctx, root)
    assert [f.name for f in folders] == ["run-b", "damaged", "run-a"]  # --arena-dir first, once
    assert ha.folder_label(folders[0]) == "run-b: 2 methods, CPU, 32 px, 1–2 epochs"
    assert ha.folder_label(folders[1]) == "damaged (unreadable)"
    assert ha.folder_label(folders[2]) == "run-a: 1 method, CPU, 32 px, 1 epoch"
    assert ha.chosen_folder(ctx, None) == ctx.arena_dir
    assert ha.chosen_folder(ctx, "run-b") == ctx.arena_dir
    with pytest.raises(InputError, match="choose one from the list"):
        ha.chosen_folder(ctx, str(tmp_path))  # a path is never taken from a request
    ctx.arena_dir = tmp_path / "elsewhere" / "run-a"  # its name hides results/run-a
    assert ha.results_folders(ctx, root) == [ctx.arena_dir, root / "damaged", root / "run-b"]
    ctx.arena_dir = None
    assert ha.results_folders(ctx, root)[0] == ha.DEFAULT_FOLDER


def _arena_folder(tmp_path, methods=None):
    """A results folder as benchmarks/arena.py writes it, with tiny untrained networks of
    ``methods`` (default: every training method) saved as the arena saves them."""
    from isnet.io.checkpoints import save_checkpoint
    from isnet.training.config import TRAINING_METHODS, TrainConfig
    from isnet.training.methods import create_network, get_method

    folder = tmp_path / "arena"
    folder.mkdir()
    records = []
    for method in methods or TRAINING_METHODS:
        comparison = get_method(method)
        name = comparison.model_name("tiny_densenet") if comparison else "tiny_densenet"
        config = TrainConfig(model=name, num_classes=3, method=method, input_size=32)
        torch.manual_seed(0)
        network = create_network(config).eval()
        save_checkpoint(folder / f"{method}.safetensors", network, model_name=name,
                        class_names=["a", "b", "c"], input_size=32, config=config.to_dict())
        records.append(_arena_record(method, method.upper(), (0.5, 0.4, 0.3), 0.5))
    (folder / "arena.json").write_text(json.dumps({"command": "python -m benchmarks.arena",
                                                   "device": "CPU", "methods": records}))
    return folder


@pytest.mark.slow
def test_models_and_arena_through_the_client(tmp_path):
    """A launched app: a checkpoint from a path on disk, the LRP switch, an arena row → explain."""
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError
    from PIL import Image
    from ui_fixtures import free_port, named, tiny_models, write_samples

    from explorer.app import build_demo
    from explorer.components import (
        ARENA_LOAD_OUTPUTS,
        ARENA_OUTPUTS,
        COMPARE_MODES_OUTPUTS,
        EXPLAIN_OUTPUTS,
        EXPORT_OUTPUTS,
        LOAD_CHECKPOINT_OUTPUTS,
    )
    from isnet.training.config import TRAINING_METHODS

    folder = _arena_folder(tmp_path)
    dense = _dense_file(tmp_path, (1, 1), "DenseNet.")
    images, masks = write_samples(tmp_path / "assets")
    demo = build_demo(models=tiny_models(), samples_dir=images, masks_dir=masks,
                      work_dir=tmp_path / "work", limits=Limits(local_paths=True),
                      arena_dir=folder)
    demo.queue(default_concurrency_limit=2)
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1",
                            server_port=free_port(), quiet=True)
    try:
        client = Client(url, verbose=False)
        loaded = named(LOAD_CHECKPOINT_OUTPUTS, client.predict(
            checkpoint_file=None, display_name="theirs", disk_path=str(dense),
            api_name="/load_checkpoint"))
        assert "authors' own format" in loaded["card"]
        image, mask = object_image(1, size=64)
        Image.fromarray(image).save(tmp_path / "img.png")
        editor = {"background": handle_file(str(tmp_path / "img.png")), "layers": [],
                  "composite": None}
        model_id = [i for label, i in loaded["left_model"]["choices"] if label == "theirs"][0]
        compared = named(COMPARE_MODES_OUTPUTS, client.predict(
            model=model_id, image_and_mask=editor, api_name="/compare_lrp"))
        assert "largest |corrected − authors'|" in compared["summary"]
        results = named(ARENA_OUTPUTS, client.predict(results_folder="arena",
                                                      api_name="/arena_results"))
        assert results["summary"].startswith(f"{len(TRAINING_METHODS)} methods")
        with pytest.raises(AppError, match="not in the list of choices"):
            client.predict(results_folder="/etc", api_name="/arena_results")
        exported = named(EXPORT_OUTPUTS, client.predict(view_name="arena", api_name="/export"))
        board = json.loads(Path(exported["numbers"]).read_text())
        assert board["view"] == "arena" and len(board["table"]["rows"]) == len(TRAINING_METHODS)
        pair = {}
        for index, method in enumerate(TRAINING_METHODS):  # every method, through the client
            arena = named(ARENA_LOAD_OUTPUTS, client.predict(row_index=index,
                                                             api_name="/arena_load"))
            assert f"Arena · {method.upper()}" in arena["card"]
            pair = named(EXPLAIN_OUTPUTS, client.predict(
                image_and_mask=editor, left_model=model_id,
                right_model=arena["right_model"]["value"], explain_class="predicted class",
                overlay_opacity=0.6, top_predictions=3, lrp="difference", api_name="/explain"))
            assert pair["right_heatmap"] is not None, method
        assert pair["left_share"] is None and "Arena" in pair["summary"]
    finally:
        demo.close()


@pytest.mark.slow
def test_every_arena_methods_model_loads_from_a_row_and_is_explained(ctx, tmp_path):
    """Tiny networks of every training method, saved as the arena saves them; each row loads
    and is explained (LRP where the network has a walk, else its native map)."""
    from explorer.handlers import arena as ha
    from isnet.lrp.registry import is_lrp_ready
    from isnet.training.config import TRAINING_METHODS

    board = ha.read_leaderboard(_arena_folder(tmp_path))
    assert board.methods == list(TRAINING_METHODS)
    image, mask = object_image(2, size=64)
    native = 0
    for index in range(len(board.methods)):
        entry = ha.load_method(ctx, "joy", board, index)
        native += not is_lrp_ready(entry.model)
        pair = explain(ctx, "joy", ExplainRequest(EditorInput(editor_value(image, mask)),
                                                  "standard", entry.model_id))
        assert pair.right.heatmap.shape == (256, 256, 3), entry.label
        assert pair.right.share is not None and 0 <= pair.right.share <= 1, entry.label
    assert native >= 3  # U-Net pipelines, ViT, AG-Sononet, … use their native maps


def test_bundled_checkpoints_load_by_name_only(ctx, tmp_path):
    folder = tmp_path / "bundled"
    folder.mkdir()
    isnet.save_checkpoint(folder / "resnet_pair.safetensors",
                          isnet.create_model("tiny_resnet", num_classes=3),
                          model_name="tiny_resnet", class_names=["a", "b", "c"], input_size=32)
    shared = dataclasses.replace(ctx, bundled_dir=folder)  # bundled files load in shared apps too
    entry = hm.load_model(shared, "ivy", hm.LoadRequest(bundled="resnet_pair.safetensors"))
    assert entry.family == "resnet" and entry.owner == "ivy"
    for name in ("nope.safetensors", "../bundled/resnet_pair.safetensors"):
        with pytest.raises(InputError, match="not a bundled checkpoint.*resnet_pair"):
            hm.load_model(shared, "ivy", hm.LoadRequest(bundled=name))


@pytest.mark.parametrize(("limit", "words"), [("1gb", "1 GB"), ("25mb", "25 MB"),
                                               (1536, "1.5 kB"), ("300b", "300 bytes"),
                                               ("1.5gb", "1.5 GB")])
def test_upload_limits_read_as_people_write_them(limit, words):
    from explorer.limits import readable_size, size_bytes

    assert readable_size(limit) == words
    assert size_bytes(words.replace(" ", "").replace("bytes", "b")) == size_bytes(limit)
