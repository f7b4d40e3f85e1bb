"""The explorer's handlers without a server: uploads, masks, explain, bias lab, fine-tune and
models."""

import pickle
import threading

import numpy as np
import pytest
import torch
from PIL import Image
from ui_fixtures import CLASSES, SIZE, make_context, object_image

from explorer import handlers, handlers_bias, handlers_models, handlers_train, masking
from explorer.uploads import InputError, decode_image, decode_mask, mask_from_array


@pytest.fixture
def ctx(tmp_path):
    return make_context(tmp_path)


@pytest.fixture
def value():
    image, mask = object_image(1, size=64)
    return handlers.editor_value(image, mask)


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
    value = handlers.editor_value(image, mask)
    out_image, out_mask = handlers.read_editor(value)
    assert np.array_equal(out_image, image) and np.array_equal(out_mask, mask)
    extra = np.zeros((64, 64, 4), np.uint8)
    extra[0, 0, 3] = 255
    value["layers"].append(extra)
    assert handlers.read_editor(value)[1][0, 0]
    with pytest.raises(InputError, match="No image"):
        handlers.read_editor({"background": None, "layers": []})


# --- explain ---------------------------------------------------------------------------------

def test_explain_returns_plain_types_on_one_scale(ctx, value):
    pair = handlers.explain(ctx, None, value, "standard", "isnet")
    assert len(pair.views) == 2
    for view in pair.views:
        assert view.heatmap.dtype == np.uint8 and view.overlay.dtype == np.uint8
        assert type(view.share) is float and 0.0 <= view.share <= 1.0
        assert all(type(p) is float for p in view.top.values())
        assert abs(sum(view.probabilities.values()) - 1.0) < 1e-6
        assert view.target == view.predicted  # default: the predicted class
    assert type(pair.scale) is float and pair.scale > 0
    assert pair.colorbar.dtype == np.uint8


def test_share_is_the_engine_share_of_the_explained_map(ctx, value):
    from isnet import background_share, explain

    entry = ctx.store.get("standard", None)
    image, mask = handlers.read_editor(value)
    x, m = handlers.model_tensor(image, SIZE), handlers.mask_tensor(mask, SIZE)
    with torch.no_grad():
        _, heat = explain(entry.model, x, target=2)
    expected = float(background_share(heat, m)[0])
    pair = handlers.explain(ctx, None, value, "standard", "isnet", target="triangle")
    assert pair.views[0].target == "triangle"
    assert pair.views[0].share == pytest.approx(expected, abs=1e-4)


def test_explain_warns_on_empty_and_full_masks(ctx):
    image, _ = object_image(0)
    empty = handlers.explain(ctx, None, handlers.editor_value(image, None), "standard", "isnet")
    assert empty.views[0].share is None and "empty" in empty.notices[0]
    full = handlers.explain(ctx, None, handlers.editor_value(image, np.ones((64, 64), bool)),
                            "standard", "isnet")
    assert full.views[0].share is None and "whole image" in full.notices[0]


def test_explain_refuses_unknown_models_and_classes(ctx, value):
    with pytest.raises(InputError, match="No model"):
        handlers.explain(ctx, None, value, "standard", "nope")
    with pytest.raises(InputError, match="no class"):
        handlers.explain(ctx, None, value, "standard", "isnet", target="dog")


# --- bias lab --------------------------------------------------------------------------------

def test_inject_changes_only_the_background(ctx, value):
    settings = handlers_bias.BiasSettings(kind="decoy", mark_class="triangle", size=0.2)
    view = handlers_bias.inject(ctx, None, value, "standard", "isnet", "square", settings)
    image, mask = handlers.read_editor(value)
    small, small_mask = handlers_bias._working(image, mask, SIZE)
    biased = handlers_bias.draw_mark(small, small_mask, 1, 2, 3, settings)
    changed = np.any(biased != small, axis=2)
    assert changed.any() and not (changed & small_mask).any()
    assert view.biased.dtype == np.uint8 and "P(square)" in view.comparison


def test_inject_needs_a_mask_and_room(ctx):
    image, _ = object_image(0)
    settings = handlers_bias.BiasSettings(mark_class="circle", size=0.2)
    with pytest.raises(InputError, match="mask"):
        handlers_bias.inject(ctx, None, handlers.editor_value(image, None), "standard", "isnet",
                             "circle", settings)
    full = handlers.editor_value(image, np.ones((64, 64), bool))
    with pytest.raises(InputError, match="Cannot place"):
        handlers_bias.inject(ctx, None, full, "standard", "isnet", "circle", settings)


def test_stress_test_and_counterfactual(ctx, value):
    settings = handlers_bias.BiasSettings(mark_class="circle", size=0.2)
    figure, rows, _ = handlers_bias.stress_test(ctx, None, value, "standard", "isnet", "square",
                                                settings, "opacity", 4)
    assert [r[0] for r in rows] == pytest.approx([0.0, 1 / 3, 2 / 3, 1.0], abs=1e-4)
    assert all(type(v) is float and 0 <= v <= 1 for r in rows for v in r[1:])
    assert rows[0][1:] != rows[-1][1:]  # the mark moves the probabilities
    figure, summary = handlers_bias.counterfactual(ctx, None, value, "standard", "isnet",
                                                   "square", settings)
    assert "of 2" in summary and figure.axes


def test_colour_parsing():
    assert handlers_bias.parse_colour("#ff0000") == (1.0, 0.0, 0.0)
    assert handlers_bias.parse_colour("rgba(0, 255, 0, 0.5)") == (0.0, 1.0, 0.0)
    assert handlers_bias.parse_colour(None) is None
    with pytest.raises(InputError):
        handlers_bias.parse_colour("reddish")


# --- fine-tune and models --------------------------------------------------------------------

def _run(ctx, session, **kw):
    args = dict(base_id="standard", source="samples", paths=None, variant="selective", epochs=1,
                heat_weight=0.7, decay=0.9, learning_rate=0.01)
    return list(handlers_train.fine_tune(ctx, session, **{**args, **kw}))


def test_fine_tune_saves_and_registers_for_the_session_only(ctx):
    from isnet.io.checkpoints import load_checkpoint

    updates = _run(ctx, "alice")
    last = updates[-1]
    assert last.entry is not None and last.checkpoint and last.fraction == 1.0
    model, metadata = load_checkpoint(last.checkpoint)
    assert metadata["class_names"] == CLASSES and metadata["config"]["method"] == "selective"
    assert ctx.store.get(last.entry.model_id, "alice") is last.entry
    with pytest.raises(InputError):
        ctx.store.get(last.entry.model_id, "bob")
    assert last.before_after is not None and len(last.before_after.views) == 2
    assert any(u.history for u in updates)


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


def test_load_checkpoints_and_refuse_bad_files(ctx, tmp_path):
    from isnet.io.checkpoints import save_checkpoint

    entry = ctx.store.get("isnet", None)
    path = save_checkpoint(tmp_path / "mine.safetensors", entry.model, class_names=CLASSES,
                           input_size=SIZE, config={"variant": "selective"},
                           metrics={"val_accuracy": 0.5})
    loaded = handlers_models.load_model_file(ctx, "erin", str(path))
    card = handlers_models.model_card(loaded)
    assert loaded.variant == "isnet" and "triangle" in card and "val_accuracy" in card
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
        image_set, _ = handlers_train.uploaded_set(ctx, "gina", paths, SIZE)
        assert list(image_set.class_names) == CLASSES[:2] and len(image_set.labels) == 4
        assert tuple(image_set.images.shape[-2:]) == (SIZE, SIZE)
    with pytest.raises(InputError, match="named"):
        handlers_train.uploaded_set(ctx, "gina", [str(tmp_path / "noprefix.png")], SIZE)


def test_session_record_is_plain_and_grows_by_copy(ctx):
    import copy

    from explorer.state import new_record, record_run, runs_table

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
    from explorer import editor

    image, truth = object_image(1)
    value, record = editor.show(ctx, "ivan", image, truth)
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
