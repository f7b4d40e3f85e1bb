"""The explorer's handlers without a server: uploads, masks, explain, bias lab, fine-tune and
models."""

import pickle
import threading

import numpy as np
import pytest
import torch
from PIL import Image
from ui_fixtures import CLASSES, SIZE, make_context, object_image

from explorer.errors import InputError
from explorer.handlers import bias as handlers_bias
from explorer.handlers import image as handlers_image
from explorer.handlers import models as handlers_models
from explorer.handlers import train as handlers_train
from explorer.handlers import train_data
from explorer.handlers.explain import ExplainRequest, explain
from explorer.handlers.explain_views import Explanation
from explorer.media import editor, masking
from explorer.media.decode import decode_image, decode_mask, mask_from_array
from explorer.media.editor import EditorInput, editor_value
from explorer.media.tensors import mask_tensor, model_tensor


@pytest.fixture
def ctx(tmp_path):
    return make_context(tmp_path)


@pytest.fixture
def value():
    image, mask = object_image(1, size=64)
    return editor_value(image, mask)


def explain_pair(ctx, value, left="standard", right="isnet", **options):
    """The Explain handler on an editor value, without a session."""
    return explain(ctx, None, ExplainRequest(EditorInput(value), left, right, **options))


def bias_request(value, true_class, mark, **options):
    return handlers_bias.BiasRequest(EditorInput(value), "standard", "isnet", true_class, mark,
                                     **options)


# --- uploads ---------------------------------------------------------------------------------

@pytest.mark.parametrize("mode,suffix", [("L", ".png"), ("RGB", ".jpg"), ("RGB", ".webp"),
                                         ("RGB", ".bmp"), ("RGB", ".tiff"), ("P", ".png")])
def test_decode_common_formats_to_rgb_uint8(tmp_path, mode, suffix):
    path = tmp_path / f"img{suffix}"
    Image.new(mode, (40, 30), 128 if mode != "RGB" else (10, 200, 30)).save(path)
    decoded = decode_image(str(path))
    assert decoded.image.shape == (30, 40, 3) and decoded.image.dtype == np.uint8


def test_decode_16bit_scales_to_8bit(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((20, 20), 65535 // 2, np.uint16)).save(path)
    decoded = decode_image(str(path))
    assert abs(int(decoded.image[0, 0, 0]) - 127) <= 1
    assert any("16-bit" in n for n in decoded.notices)


def test_decode_rgba_offers_alpha_as_mask(tmp_path):
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[5:15, 5:15] = (255, 0, 0, 255)
    path = tmp_path / "cut.png"
    Image.fromarray(rgba).save(path)
    decoded = decode_image(str(path))
    assert decoded.alpha_mask is not None and decoded.alpha_mask.sum() == 100
    assert tuple(decoded.image[0, 0]) == (255, 255, 255)  # flattened on white


def test_huge_images_are_downscaled_with_a_notice():
    decoded = decode_image(np.zeros((300, 600, 3), np.uint8), max_side=100)
    assert decoded.image.shape == (50, 100, 3)
    assert any("downscaled" in n for n in decoded.notices)


def test_bad_files_are_refused_with_a_message(tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("this is not an image")
    with pytest.raises(InputError, match="not an image"):
        decode_image(str(text))
    good = tmp_path / "good.png"
    Image.new("RGB", (64, 64), (1, 2, 3)).save(good)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:60])
    with pytest.raises(InputError):
        decode_image(str(truncated))
    with pytest.raises(InputError, match="8×8"):
        decode_image(np.zeros((4, 4, 3), np.uint8))


def test_masks_of_another_size_are_resized_or_refused():
    small = np.zeros((10, 10), np.uint8)
    small[:5] = 255
    resized = mask_from_array(small, (20, 20))
    assert resized.shape == (20, 20) and resized[:10].all() and not resized[10:].any()
    with pytest.raises(InputError, match="size"):
        mask_from_array(np.zeros((10, 30), np.uint8), (20, 20))


def test_decode_mask_file(tmp_path):
    path = tmp_path / "mask.png"
    Image.fromarray((object_image(0)[1] * 255).astype(np.uint8)).save(path)
    mask = decode_mask(str(path), (64, 64))
    assert mask.dtype == bool and np.array_equal(mask, object_image(0)[1])


# --- masks -----------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["threshold", "grabcut"])
def test_automatic_masks_find_the_object(method):
    image, truth = object_image(1, size=96)
    mask = masking.auto_mask(image, method)
    iou = (mask & truth).sum() / (mask | truth).sum()
    assert iou > 0.8


def test_editor_layers_round_trip_and_union():
    image, mask = object_image(0)
    value = editor_value(image, mask)
    out_image, out_mask = EditorInput(value).read()
    assert np.array_equal(out_image, image) and np.array_equal(out_mask, mask)
    extra = np.zeros((64, 64, 4), np.uint8)
    extra[0, 0, 3] = 255
    value["layers"].append(extra)
    assert EditorInput(value).read()[1][0, 0]
    with pytest.raises(InputError, match="No image"):
        EditorInput({"background": None, "layers": []}).read()


# --- explain ---------------------------------------------------------------------------------

def test_explain_returns_plain_types_on_one_scale(ctx, value):
    pair = explain_pair(ctx, value)
    assert len(pair.views) == 2 and (pair.left, pair.right) == tuple(pair.views)
    for view in pair.views:
        assert view.heatmap.dtype == np.uint8 and view.overlay.dtype == np.uint8
        assert type(view.share) is float and 0.0 <= view.share <= 1.0
        assert all(type(p) is float for p in view.top.values())
        assert abs(sum(view.probabilities.values()) - 1.0) < 1e-6
        assert view.target == view.predicted  # default: the predicted class
    assert type(pair.scale) is float and pair.scale > 0
    assert pair.colorbar.dtype == np.uint8


def test_each_model_on_its_own_colour_scale(ctx, value):
    from explorer.handlers.explain_views import OWN_SCALES
    from isnet import viz

    shared = explain_pair(ctx, value)
    own = explain_pair(ctx, value, colour_scale=OWN_SCALES)
    assert all(v.scale == shared.scale for v in shared.views) and own.scale is None
    for view, before in zip(own.views, shared.views, strict=True):
        # the scale of its own map alone, and the same map and numbers as before
        assert view.scale == pytest.approx(viz.shared_scale([view.relevance]))
        assert np.array_equal(view.relevance, before.relevance) and view.share == before.share
        assert view.scale <= shared.scale + 1e-12
    weaker = min(range(2), key=lambda i: own.views[i].scale)
    assert own.views[weaker].scale < shared.scale  # the tiny models' maps differ in strength
    # the weaker model's map is drawn stronger on its own scale: further from white
    def colour(view):
        return np.abs(view.heatmap.astype(int) - 255).sum()
    assert colour(own.views[weaker]) > colour(shared.views[weaker])
    assert "own colour scale" in own.summary and "Shared colour scale" in shared.summary
    assert not np.array_equal(own.colorbar, shared.colorbar)  # ticks in percent


def test_unknown_colour_scale_is_refused(ctx, value):
    with pytest.raises(InputError, match="colour scale"):
        explain_pair(ctx, value, colour_scale="rainbow")


def test_colour_scale_has_tick_values_and_the_heatmaps_colours():
    from explorer.media.colour_scale import colour_scale_picture, colour_scale_ticks
    from isnet import viz

    assert [t for _, t in colour_scale_ticks(2.0, relative=True)] == [
        "\u2212100 %", "\u221250 %", "0", "50 %", "100 %"]
    ticks = colour_scale_ticks(0.435)
    assert [value for value, _ in ticks] == pytest.approx([-0.435, -0.2175, 0.0, 0.2175, 0.435])
    assert [text for _, text in ticks] == ["\u22120.435", "\u22120.217", "0", "0.217", "0.435"]
    picture = colour_scale_picture(0.435)
    assert picture.dtype == np.uint8 and picture.ndim == 3 and picture.shape[2] == 3
    # the bar's middle row runs through the engine's ramp: its end colours (blue at −s, red at
    # +s, to within one of the ramp's 256 steps) at the two ends of the bar, white in between
    ramp = viz.colorbar(0.435, width=256, height=1)[0].astype(int)
    row = picture[picture.shape[0] // 4].astype(int)
    coloured = np.flatnonzero(np.abs(row[:, 0] - row[:, 2]) > 50)  # blue or red, not grey
    bar = row[coloured[0]: coloured[-1] + 1]
    assert np.abs(bar[0] - ramp[0]).sum() <= 16 and np.abs(bar[-1] - ramp[-1]).sum() <= 16
    assert (np.abs(bar - 255).sum(axis=1) <= 6).any()  # white at 0
    # below the bar, dark tick text on white
    assert (picture[picture.shape[0] // 2:] < 100).all(axis=2).sum() > 50


def test_share_is_the_engine_share_of_the_explained_map(ctx, value):
    from isnet import background_share
    from isnet import explain as isnet_explain

    entry = ctx.store.get("standard", None)
    image, mask = EditorInput(value).read()
    x, m = model_tensor(image, SIZE), mask_tensor(mask, SIZE)
    with torch.no_grad():
        _, heat = isnet_explain(entry.model, x, target=2)
    expected = float(background_share(heat, m)[0])
    pair = explain_pair(ctx, value, target="triangle")
    assert pair.left.target == "triangle"
    assert pair.left.share == pytest.approx(expected, abs=1e-4)


def test_explain_warns_on_empty_and_full_masks(ctx):
    image, _ = object_image(0)
    empty = explain_pair(ctx, editor_value(image, None))
    assert empty.left.share is None and "empty" in empty.notices[0]
    full = explain_pair(ctx, editor_value(image, np.ones((64, 64), bool)))
    assert full.left.share is None and "whole image" in full.notices[0]


def test_explain_refuses_unknown_models_and_classes(ctx, value):
    with pytest.raises(InputError, match="No model"):
        explain_pair(ctx, value, right="nope")
    with pytest.raises(InputError, match="no class"):
        explain_pair(ctx, value, target="dog")


# --- bias lab --------------------------------------------------------------------------------

def test_inject_changes_only_the_background(ctx, value):
    settings = handlers_bias.BiasSettings(kind="decoy", mark_class="triangle", size=0.2)
    view = handlers_bias.inject(ctx, None, bias_request(value, "square", settings))
    image, mask = EditorInput(value).read()
    small, small_mask = handlers_bias.at_model_resolution(image, mask, SIZE)
    biased = handlers_bias.draw_mark(small, small_mask, 1, 2, 3, settings)
    changed = np.any(biased != small, axis=2)
    assert changed.any() and not (changed & small_mask).any()
    assert view.biased.dtype == np.uint8 and "P(square)" in view.comparison


def test_inject_needs_a_mask_and_room(ctx):
    image, _ = object_image(0)
    settings = handlers_bias.BiasSettings(mark_class="circle", size=0.2)
    with pytest.raises(InputError, match="mask"):
        handlers_bias.inject(ctx, None, bias_request(editor_value(image, None), "circle",
                                                     settings))
    full = editor_value(image, np.ones((64, 64), bool))
    with pytest.raises(InputError, match="Cannot place"):
        handlers_bias.inject(ctx, None, bias_request(full, "circle", settings))


def test_stress_test_and_counterfactual(ctx, value):
    settings = handlers_bias.BiasSettings(mark_class="circle", size=0.2)
    request = bias_request(value, "square", settings)
    stress = handlers_bias.stress_test(ctx, None, request, sweep="opacity", steps=4)
    rows = stress.rows
    assert [r[0] for r in rows] == pytest.approx([0.0, 1 / 3, 2 / 3, 1.0], abs=1e-4)
    assert all(type(v) is float and 0 <= v <= 1 for r in rows for v in r[1:])
    assert rows[0][1:] != rows[-1][1:]  # the mark moves the probabilities
    assert stress.figure.axes and stress.notices == []
    counter = handlers_bias.counterfactual(ctx, None, request)
    assert "of 2" in counter.summary and counter.figure.axes


def test_colour_parsing():
    assert handlers_bias.parse_colour("#ff0000") == (1.0, 0.0, 0.0)
    assert handlers_bias.parse_colour("rgba(0, 255, 0, 0.5)") == (0.0, 1.0, 0.0)
    assert handlers_bias.parse_colour(None) is None
    with pytest.raises(InputError):
        handlers_bias.parse_colour("reddish")


# --- fine-tune and models --------------------------------------------------------------------

def _run(ctx, session, stop=None, **kw):
    settings = dict(base_id="standard", source="samples", method="selective", epochs=1,
                    heat_weight=0.7, decay=0.9, learning_rate=0.01)
    request = handlers_train.FineTuneRequest(**{**settings, **kw})
    return list(handlers_train.fine_tune(ctx, session, request, stop=stop))


def test_fine_tune_keeps_the_base_models_heatmaps_and_loss_shape(ctx):
    base = ctx.store.get("isnet", None)
    request = handlers_train.FineTuneRequest(base_id="isnet", source="samples",
                                             method="selective", epochs=1, heat_weight=0.6,
                                             decay=0.8, learning_rate=0.01)
    plain = handlers_train._config(base, request, 3, 20)
    assert (plain.zb, plain.foreground_range, plain.foreground_form) == (True, (1.0, 25.0), "l2")
    base.metadata["config"] = {"zb": False, "foreground_range": [1.0, 250.0],
                               "foreground_form": "hybrid", "epsilon": 0.05, "decay": 0.99}
    config = handlers_train._config(base, request, 3, 20)
    assert (config.zb, config.foreground_range, config.foreground_form, config.epsilon) == \
        (False, (1.0, 250.0), "hybrid", 0.05)
    assert (config.heat_weight, config.decay) == (0.6, 0.8)  # what the tab sends wins


@pytest.mark.slow
def test_fine_tune_saves_and_registers_for_the_session_only(ctx):
    from isnet.io.checkpoints import load_checkpoint

    updates = _run(ctx, "alice", background_tint=0.5, mask_margin=2)
    last = updates[-1]
    assert last.entry is not None and last.checkpoint and last.fraction == 1.0
    assert "on CPU" in updates[0].status and "on CPU" in last.status  # the device it ran on
    model, metadata = load_checkpoint(last.checkpoint)
    assert metadata["class_names"] == CLASSES and metadata["config"]["method"] == "selective"
    assert metadata["config"]["background_tint"] == 0.5  # the UI's settings reached the run
    assert metadata["config"]["mask_margin"] == 2
    assert ctx.store.get(last.entry.model_id, "alice") is last.entry
    with pytest.raises(InputError):
        ctx.store.get(last.entry.model_id, "bob")
    assert last.entry.method == "selective" and last.entry.trained_as == "isnet"
    assert last.entry.family == metadata["family"] == "densenet"
    assert last.before_after is not None and len(last.before_after.views) == 2
    assert any(u.history for u in updates)


@pytest.mark.slow
def test_stopped_fine_tune_saves_nothing(ctx):
    stop = threading.Event()
    stop.set()
    updates = _run(ctx, "carol", stop=stop)
    assert "Stopped" in updates[-1].status and updates[-1].entry is None
    assert not list(ctx.session_dir("carol").glob("*.safetensors"))


def test_fine_tune_refuses_one_class_sets_and_bad_settings(ctx):
    ctx.samples[:] = [s for s in ctx.samples if s.label == "circle"]
    with pytest.raises(InputError, match="one class"):
        _run(ctx, "dave")
    with pytest.raises(InputError, match="Epochs"):
        _run(ctx, "dave", epochs=999)
    with pytest.raises(InputError, match="training method"):
        _run(ctx, "dave", method="isnet")


def test_load_checkpoints_and_refuse_bad_files(ctx, tmp_path):
    from isnet.io.checkpoints import save_checkpoint

    entry = ctx.store.get("isnet", None)
    path = save_checkpoint(tmp_path / "mine.safetensors", entry.model, class_names=CLASSES,
                           input_size=SIZE, config={"variant": "selective"},
                           metrics={"val_accuracy": 0.5})
    loaded = handlers_models.load_model_file(ctx, "erin", str(path))
    card = handlers_models.model_card(loaded)
    assert loaded.trained_as == "isnet" and loaded.method == "selective"  # 0.1: config.variant
    assert "triangle" in card and "val_accuracy" in card and "selective" in card
    assert loaded.model_id in [i for _, i in ctx.store.choices("erin")]
    assert loaded.model_id not in [i for _, i in ctx.store.choices("frank")]
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    with pytest.raises(InputError, match="not a checkpoint"):
        handlers_models.load_model_file(ctx, "erin", str(text))

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"features.conv0.weight": Evil()}))
    with pytest.raises(InputError, match="not a checkpoint"):
        handlers_models.load_model_file(ctx, "erin", str(evil))


def test_uploaded_sets_from_zip_and_loose_files(ctx, tmp_path):
    import zipfile

    loose, zipped = [], tmp_path / "set.zip"
    with zipfile.ZipFile(zipped, "w") as archive:
        for kind, name in enumerate(CLASSES[:2]):
            for i in range(2):
                image, mask = object_image(kind, seed=i)
                for suffix, array in ((".png", image), (".mask.png", mask * 255)):
                    path = tmp_path / f"{name}_{i}{suffix}"
                    Image.fromarray(array.astype(np.uint8)).save(path)
                    loose.append(str(path))
                    archive.write(path, f"{name}/{i}{suffix}")
    for paths in (loose, [str(zipped)]):
        image_set, _ = train_data.uploaded_set(ctx, "gina", paths, SIZE)
        assert list(image_set.class_names) == CLASSES[:2] and len(image_set.labels) == 4
        assert tuple(image_set.images.shape[-2:]) == (SIZE, SIZE)
    with pytest.raises(InputError, match="named"):
        train_data.uploaded_set(ctx, "gina", [str(tmp_path / "noprefix.png")], SIZE)


def test_session_record_is_plain_and_grows_by_copy(ctx):
    import copy

    from explorer.handlers.train import new_record, record_run, runs_table

    record = new_record()
    entry = ctx.store.get("isnet", None)
    entry.metadata["config"] = {"variant": "selective", "epochs": 2}
    grown = record_run(record, entry, "/tmp/x.safetensors")
    assert record == {"runs": []}  # the old value is not mutated (Gradio compares by value)
    assert copy.deepcopy(grown) == grown
    assert runs_table(grown) == [["Tiny ISNet", "selective", 2, None, None]]


def test_foreign_state_dicts_load_with_inferred_architecture(ctx, tmp_path):
    entry = ctx.store.get("standard", None)
    path = tmp_path / "authors.pth"
    torch.save({"DenseNet." + k: v for k, v in entry.model.state_dict().items()}, path)
    loaded = handlers_models.load_model_file(ctx, "hana", str(path))
    assert "foreign weights" in loaded.label and loaded.class_names == ["0", "1", "2"]
    assert loaded.model.arch == entry.model.arch
    card = handlers_models.model_card(loaded)
    assert "size not recorded" in card and "torch.load" in card


def test_editor_record_keeps_the_clean_image_and_base_mask(ctx):
    image, truth = object_image(1)
    value, record = editor.show(ctx.session_dir("ivan"), image, truth)
    assert value["composite"] is not None and record["mask"]
    same_image, same_mask = editor.resolve(value, record)  # the browser echoes the base layer
    assert np.array_equal(same_image, image) and np.array_equal(same_mask, truth)
    stroke = np.zeros((64, 64, 4), np.uint8)
    stroke[:4, :, 3] = 255  # a stroke along the top edge
    painted = {"background": value["composite"], "layers": [stroke], "composite": None}
    clean, added = editor.resolve(painted, record, editor.ADD)  # background = tinted composite
    assert np.array_equal(clean, image)
    assert added[:4].all() and np.array_equal(added[4:], truth[4:])
    cut = np.zeros((64, 64, 4), np.uint8)
    cut[32:, :, 3] = 255
    _, removed = editor.resolve({"background": image, "layers": [cut]}, record, editor.REMOVE)
    assert not removed[32:].any() and np.array_equal(removed[:32], truth[:32])
    other = object_image(0, seed=5)[0]  # a value that is not the record's image: taken as is
    taken, mask = editor.resolve({"background": other, "layers": []}, record)
    assert np.array_equal(taken, other) and mask is None


def test_bias_lab_starts_from_the_training_mark(ctx):
    entry = ctx.store.get("standard", None)
    assert handlers_bias.training_defaults(entry) == handlers_bias.BiasSettings(size=0.2)
    entry.metadata["data"] = {"bias": {"kind": "decoy", "position": "corner",
                                       "corner": "bottom_right", "size": 8, "opacity": 0.5}}
    start = handlers_bias.training_defaults(entry)
    assert (start.kind, start.position, start.opacity) == ("decoy", "bottom_right", 0.5)
    assert start.size == pytest.approx(8 / SIZE)


# --- the Explain path, names and layout ------------------------------------------------------

def test_heatmaps_stay_tensors_until_viz_draws_them(ctx, value):
    from explorer.handlers.explain import explain_cached
    from isnet import viz

    pair = explain_pair(ctx, value)
    entry = ctx.store.get("standard", None)
    image, _ = EditorInput(value).read()
    answer = explain_cached(ctx, entry, model_tensor(image, SIZE), None)
    assert isinstance(answer, Explanation) and isinstance(answer.heatmap, torch.Tensor)
    assert tuple(answer.heatmap.shape) == (3, SIZE, SIZE)
    assert explain_cached(ctx, entry, model_tensor(image, SIZE), None) is answer  # cached
    side = ctx.limits.display_side
    drawn = viz.heatmap_to_rgb(answer.heatmap, pair.scale, size=(side, side))
    assert np.array_equal(drawn, pair.left.heatmap)
    assert pair.scale == pytest.approx(viz.shared_scale(
        [viz.relevance_map(explain_cached(ctx, ctx.store.get(i, None),
                                          model_tensor(image, SIZE), None).heatmap)
         for i in ("standard", "isnet")]))


def test_explain_uses_the_epsilon_the_model_was_trained_with(ctx, value):
    import isnet
    from explorer.handlers.explain import engine_explain

    entry = ctx.store.get("isnet", None)
    x = model_tensor(EditorInput(value).read()[0], SIZE)
    assert entry.epsilon == isnet.LRPConfig().epsilon  # not recorded: the LRP default
    entry.metadata["config"] = {"method": "selective", "epsilon": 0.5}
    with torch.no_grad():
        _, wide = isnet.explain(entry.model, x, epsilon=0.5)
        _, default = isnet.explain(entry.model, x)
    heatmap = engine_explain(entry, x, None).heatmap
    assert torch.allclose(heatmap, wide[0, 0].double())
    assert not torch.allclose(heatmap, default[0, 0].double())


def test_training_method_and_trained_as_come_from_the_metadata():
    from explorer.entries import trained_as, training_method

    assert training_method({"config": {"method": "standard"}}) == "standard"
    assert training_method({"config": {"variant": "stochastic"}}) == "stochastic"  # 0.1 name
    assert training_method({"config": {}}) is None
    assert trained_as({"config": {"method": "standard"}}) == "standard"
    assert trained_as({"config": {"method": "all"}}) == "isnet"
    assert trained_as({"config": {"method": "gradient_input"}}) == "isnet"
    for method in ("vit", "ag_sononet", "gain", "rrr", "ham", "unet_segment"):
        assert trained_as({"config": {"method": method}}) == "comparison"
    assert trained_as({"trained_as": "isnet", "config": {}}) == "isnet"
    assert trained_as({"config": {}, "provenance": {"source_file": "/w/isnet_dn.pth"}}) == "isnet"
    assert trained_as({"config": {}, "provenance": {"source_file": "/w/plain.pth"}}) == "standard"
    assert trained_as({}) == "unknown"


def test_image_handlers_return_named_results(ctx, value):
    sample = handlers_image.load_sample(ctx, "square_0")
    assert sample.label == "square" and sample.mask is not None and sample.mask.any()
    auto = handlers_image.auto_mask(EditorInput(value), "threshold")
    assert auto.mask.shape == auto.image.shape[:2] and auto.notices == []
    cleared = handlers_image.clear_mask(EditorInput(value))
    assert cleared.mask is None and np.array_equal(cleared.image, auto.image)
    with pytest.raises(InputError, match="No image uploaded"):
        handlers_image.load_upload(ctx, None)


def test_outputs_are_laid_out_by_name():
    from explorer import components

    for names in (components.EXPLAIN_OUTPUTS, components.INJECT_BIAS_OUTPUTS,
                  components.FINE_TUNE_OUTPUTS, components.LOAD_CHECKPOINT_OUTPUTS):
        assert len(set(names)) == len(names)
    assert components.ordered({"b": 2, "a": 1}, ("a", "b")) == [1, 2]
    with pytest.raises(KeyError, match="summary"):
        components.ordered({"plot": 1}, components.COUNTERFACTUAL_OUTPUTS)


def test_explorer_layout_tabs_stay_apart_and_files_stay_small():
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "explorer"
    for path in root.rglob("*.py"):
        text = path.read_text()
        assert len(text.splitlines()) <= 400, f"{path} is over 400 lines"
        imported = {node.module for node in ast.walk(ast.parse(text))
                    if isinstance(node, ast.ImportFrom) and node.module}
        imported |= {f"{node.module}.{alias.name}" for node in ast.walk(ast.parse(text))
                     if isinstance(node, ast.ImportFrom) and node.module for alias in node.names}
        layer = path.relative_to(root).parts[0]
        if layer == "tabs":  # a tab never imports another tab
            assert not {m for m in imported if m.startswith("explorer.tabs")}, path
        if layer in ("handlers", "media"):  # the work never reaches up into the widgets
            assert not {m for m in imported if m.startswith(("explorer.tabs",
                                                             "explorer.components"))}, path


def test_explaining_another_class_of_the_same_image_gives_that_class_s_map(ctx, value):
    """Both caches (whole answers and engine results) are keyed by the target class: changing
    only the class must never show the previous class's picture."""
    from explorer.handlers.explain import engine_explain
    from isnet import viz

    first = explain_pair(ctx, value, target=CLASSES[0])
    second = explain_pair(ctx, value, target=CLASSES[1])
    x = model_tensor(EditorInput(value).read()[0], SIZE)
    for pair, index in ((first, 0), (second, 1)):
        for view, model_id in zip(pair.views, ("standard", "isnet"), strict=True):
            assert view.target == CLASSES[index]
            fresh = engine_explain(ctx.store.get(model_id, None), x, index)  # no cache
            np.testing.assert_allclose(view.relevance, viz.relevance_map(fresh.heatmap),
                                       rtol=1e-6, atol=1e-12)
    for before, after in zip(first.views, second.views, strict=True):
        assert not np.allclose(before.relevance, after.relevance)
        assert not np.array_equal(before.heatmap, after.heatmap)
    again = explain_pair(ctx, value, target=CLASSES[0])  # back to the first class: its picture
    assert all(np.array_equal(a.heatmap, b.heatmap) for a, b in zip(again.views, first.views,
                                                                    strict=True))
