"""The Audit tab's handlers and the exports: ranking, strategies, the fine-tuning set, exports
that round-trip, the offline session report, and the endpoints' names."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from ui_fixtures import make_context, object_image, tiny_models, write_samples

import isnet
from explorer.errors import InputError
from explorer.handlers import audit as ha
from explorer.handlers import audit_views as views
from explorer.handlers import export as hx
from explorer.handlers.explain import explain_models
from explorer.media.tensors import model_tensor
from isnet.data.folders import load_image_folder, save_image_folder

CHECKPOINTS = Path(__file__).resolve().parent.parent / "assets" / "checkpoints"


def planted_zip(tmp_path: Path, count: int = 6, with_masks: bool = True) -> Path:
    """A zip of two classes of object images (with masks, unless told) in the folder layout."""
    images, masks, labels = [], [], []
    for index in range(count):
        kind = index % 2
        image, mask = object_image(kind, size=32, seed=index)
        images.append(torch.from_numpy(image).permute(2, 0, 1).float() / 255)
        masks.append(torch.from_numpy(mask.astype(np.float32))[None])
        labels.append(kind)
    image_set = isnet.ImageSet(torch.stack(images), torch.stack(masks), torch.tensor(labels),
                               ["circle", "square"])
    save_image_folder(image_set, tmp_path / "planted")
    if not with_masks:
        for mask_file in (tmp_path / "planted").rglob("*.mask.png"):
            mask_file.unlink()
    return Path(shutil.make_archive(str(tmp_path / "planted"), "zip", tmp_path / "planted"))


def audited(ctx, request: ha.AuditRequest, session: str = "s", stop=None) -> ha.AuditUpdate:
    """The last update of an audit."""
    return list(ha.run_audit(ctx, session, request, stop))[-1]


def test_audit_of_an_upload_stores_what_the_views_read(tmp_path):
    ctx = make_context(tmp_path)
    request = ha.AuditRequest(tuple(ctx.default_pair), source="upload",
                              paths=(str(planted_zip(tmp_path)),))
    last = audited(ctx, request)
    record = last.record
    assert record["count"] == 6 and record["complete"] and len(record["models"]) == 2
    data = ha.read_audit(record)
    assert data.images.shape == (6, 32, 32, 3) and data.relevance[0].shape == (6, 32, 32)
    assert np.isfinite(data.share[0]).all() and ((data.share[0] >= 0) & (data.share[0] <= 1)).all()
    # the gallery lists images from the highest background share down
    _, order = views.top_gallery(data, 1)
    assert np.all(np.diff(data.share[1][order]) <= 0)
    image, mask, label = views.explain_input(data, order[0])
    assert image.dtype == np.uint8 and mask.shape == (32, 32) and label in ("circle", "square")
    assert "| Tiny standard | 6 |" in views.summary(data, 0.5)


def test_audit_batches_shrink_for_large_inputs():
    assert ha.batch_size(64, 64) == 64 and ha.batch_size(32, 64) == 32
    assert ha.batch_size(64, 224) == 5 and ha.batch_size(64, 2048) == 1


def test_two_models_on_several_workers_give_the_same_audit(tmp_path, monkeypatch):
    monkeypatch.setattr(ha, "CHUNK", 2)
    ctx = make_context(tmp_path)
    request = ha.AuditRequest(tuple(ctx.default_pair), source="upload",
                              paths=(str(planted_zip(tmp_path, count=7)),))
    records = {}
    for workers in (1, 3):
        monkeypatch.setattr(ha, "default_workers", lambda device, n=workers: n)
        updates = list(ha.run_audit(ctx, f"s{workers}", request))
        fractions = [u.fraction for u in updates]
        assert fractions == sorted(fractions) and fractions[-1] == 1.0
        records[workers] = ha.read_audit(updates[-1].record)
    one, several = records[1], records[3]
    for model in (0, 1):
        np.testing.assert_array_equal(one.relevance[model], several.relevance[model])
        np.testing.assert_array_equal(one.share[model], several.share[model])


def test_an_upload_without_masks_is_audited_with_automatic_masks_or_none(tmp_path):
    ctx = make_context(tmp_path)
    upload = (str(planted_zip(tmp_path, with_masks=False)),)
    with pytest.raises(InputError, match="automatic masks"):  # its own masks: a clear pointer
        audited(ctx, ha.AuditRequest((ctx.default_pair[0],), source="upload", paths=upload))
    automatic = ha.read_audit(audited(ctx, ha.AuditRequest(
        (ctx.default_pair[0],), source="upload", paths=upload, masks="auto")).record)
    assert automatic.record["count"] == 6 and automatic.record["masks"] == "auto"
    assert np.isfinite(automatic.share[0]).all()
    # the threshold masks find the bright objects, not the whole frame
    assert 0.05 < automatic.masks.mean() < 0.6
    without = ha.read_audit(audited(ctx, ha.AuditRequest(
        (ctx.default_pair[0],), source="upload", paths=upload, masks="none")).record)
    assert without.record["count"] == 6 and without.masks is None
    assert np.isnan(without.share[0]).all()


def test_audit_stops_between_chunks_and_refuses_bad_requests(tmp_path):
    ctx = make_context(tmp_path)
    stop = threading.Event()
    stop.set()
    last = audited(ctx, ha.AuditRequest((ctx.default_pair[0],), source="upload",
                                        paths=(str(planted_zip(tmp_path)),)), stop=stop)
    assert last.record is None and "Stopped" in last.status
    for bad in (ha.AuditRequest(()), ha.AuditRequest(("standard",), source="nowhere"),
                ha.AuditRequest(("standard",), source="biased", limit=5000),
                ha.AuditRequest(("standard",), source="folder", folder=str(tmp_path)),
                ha.AuditRequest(("standard",), source="upload")):
        with pytest.raises(InputError):
            audited(ctx, bad)
    with pytest.raises(InputError):
        ha.read_audit(None)


def synthetic_audit(tmp_path: Path) -> ha.AuditData:
    """An audit with two planted strategies in class 0: relevance in the top-left corner
    (images 0–14) or in the centre (images 15–29)."""
    rng = np.random.default_rng(0)
    relevance = rng.normal(0, 0.02, (30, 32, 32)).astype(np.float32)
    relevance[:15, 1:7, 1:7] += 1.0
    relevance[15:, 12:20, 12:20] += 1.0
    masks = np.zeros((30, 32, 32), bool)
    masks[:, 10:22, 10:22] = True
    share = np.r_[np.full(15, 0.8), np.full(15, 0.1)].astype(np.float32)
    record = {"dir": str(tmp_path), "count": 30, "class_names": ["a", "b"], "complete": True,
              "models": [{"id": "standard", "label": "m", "class_names": ["a", "b"],
                          "same_classes": True, "epsilon": 0.01, "path": None}],
              "source": "upload", "masks": "set", "seconds": 0.0}
    images = np.zeros((30, 32, 32, 3), np.uint8)
    labels = np.zeros(30, np.int64)
    predictions = np.r_[np.zeros(15), np.ones(3), np.zeros(12)].astype(np.int64)  # 15–17 wrong
    return ha.AuditData(record, images, labels, masks, [relevance], [predictions],
                        [np.ones(30, np.float32)], [share])


def test_strategies_separate_a_planted_two_strategy_set(tmp_path):
    found = views.strategies(synthetic_audit(tmp_path), 0, "a")
    assert sorted(map(sorted, found.members)) == [list(range(15)), list(range(15, 30))]
    assert len(found.means) == 2 and "2 strategies" in found.text
    with pytest.raises(InputError):
        views.strategies(synthetic_audit(tmp_path), 0, "b")  # no image of class b


def test_fine_tuning_set_holds_the_wrong_and_background_reliant_images(tmp_path):
    data = synthetic_audit(tmp_path)
    data.share[0][20] = 0.9  # one more image above the threshold
    chosen = views.fine_tune_selection(data, 0, 0.5)
    assert chosen.tolist() == list(range(18)) + [20]
    path, count = views.fine_tune_zip(data, 0, 0.5, tmp_path)
    assert count == 19
    with pytest.raises(ValueError):  # one class only: the loader wants two …
        load_image_folder(path)
    data.labels[20] = 1  # … so give the set two classes and read it back
    path, _ = views.fine_tune_zip(data, 0, 0.5, tmp_path)
    loaded, problems = load_image_folder(path)
    assert len(loaded) == 19 and not problems and loaded.class_names == ["a", "b"]
    assert torch.equal(loaded.masks[0, 0] > 0, torch.from_numpy(data.masks[0]))


def test_explain_export_round_trips(tmp_path):
    ctx = make_context(tmp_path)
    entries = [ctx.store.get(i, None) for i in ctx.default_pair]
    image, mask = object_image(1)
    pair = explain_models(ctx, entries, image, mask)
    hx.record_pair(ctx, "s", "explain", "Explain", pair, entries, {"explained_class": "x"})
    files = hx.export_view(ctx, "s", hx.ExportRequest("explain"))
    record = json.loads(Path(files.numbers).read_text())
    for view in pair.views:
        shown = record["numbers"]["per_model"][view.label]
        assert shown["background_share"] == view.share and shown["predicted"] == view.predicted
    assert record["settings"]["explained_class"] == "x"
    assert record["settings"]["lrp"]["epsilon"] == [e.epsilon for e in entries]
    heatmaps = np.load(files.heatmaps)
    expected = np.stack([isnet.viz.relevance_map(isnet.explain(
        e.model, model_tensor(image, e.input_size), epsilon=e.epsilon)[1][0, 0])
        for e in entries])
    np.testing.assert_allclose(heatmaps, expected, rtol=1e-5, atol=1e-8)
    assert Path(files.figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_audit_export_round_trips_and_report_is_self_contained(tmp_path):
    from explorer.tabs.audit import _record_audit

    ctx = make_context(tmp_path)
    last = audited(ctx, ha.AuditRequest(tuple(ctx.default_pair), source="upload",
                                        paths=(str(planted_zip(tmp_path)),)))
    data = ha.read_audit(last.record)
    _record_audit(ctx, "s", data, views.top_gallery(data, 0)[0])
    files = hx.export_view(ctx, "s", hx.ExportRequest("audit"))
    record = json.loads(Path(files.numbers).read_text())
    shares = record["numbers"]["per_model"]["Tiny ISNet"]["background_share"]
    np.testing.assert_allclose(shares, data.share[1], rtol=1e-6)
    np.testing.assert_array_equal(np.load(files.heatmaps), np.stack(data.relevance))
    with pytest.raises(InputError):
        hx.export_view(ctx, "s", hx.ExportRequest("bias"))  # nothing shown there yet
    with pytest.raises(InputError):
        hx.session_report(ctx, "other session")
    report = Path(hx.session_report(ctx, "s")).read_text()
    assert "Audit of 6 images" in report and "data:image/png;base64," in report
    assert "http" not in report.replace("http-equiv", "")


def test_endpoints_have_api_names(tmp_path):
    from explorer.app import build_demo

    images, masks = write_samples(tmp_path / "assets")
    demo = build_demo(models=tiny_models(), samples_dir=images, masks_dir=masks,
                      work_dir=tmp_path / "work")
    names = {dependency.get("api_name") for dependency in demo.config["dependencies"]}
    assert {"audit", "stop_audit", "audit_strategies", "audit_fine_tune_set", "export",
            "session_report", "robustness", "arena_results"} <= names


def test_arena_plot_has_a_caption_and_no_label_badge_over_it(tmp_path):
    import gradio as gr

    from explorer.app import build_demo

    images, masks = write_samples(tmp_path / "assets")
    demo = build_demo(models=tiny_models(), samples_dir=images, masks_dir=masks,
                      work_dir=tmp_path / "work")
    blocks = list(demo.blocks.values())
    plot = next(b for b in blocks if getattr(b, "elem_id", None) == "arena-plot")
    assert isinstance(plot, gr.Image) and plot.show_label is False
    assert any(isinstance(b, gr.Markdown) and "Accuracy drop against background share"
               in str(b.value) for b in blocks)


@pytest.mark.slow
@pytest.mark.skipif(not (CHECKPOINTS / "standard_densenet121.safetensors").exists(),
                    reason="needs the bundled checkpoints")
def test_standard_model_ranks_marked_images_above_clean_ones(tmp_path):
    from explorer.app import make_context as build
    from explorer.catalog import entry_from_checkpoint
    from isnet.training.experiment import ExperimentData, evaluation_set

    data = ExperimentData(test_limit=24)
    marked, clean = evaluation_set(data, "biased"), evaluation_set(data, "unbiased")
    has_mark = torch.cat([(marked.images != clean.images).flatten(1).any(1),
                          torch.zeros(24, dtype=torch.bool)])
    # the folder's "classes" say whether an image carries a mark (read back in any order)
    mixed = isnet.ImageSet(torch.cat([marked.images, clean.images]),
                           torch.cat([marked.masks, clean.masks]), has_mark.long(),
                           ["clean", "marked"])
    save_image_folder(mixed, tmp_path / "mixed")
    entries = [entry_from_checkpoint(CHECKPOINTS / f"{name}_densenet121.safetensors", name)
               for name in ("standard", "isnet")]
    ctx = build(models=entries, work_dir=tmp_path / "work")
    request = ha.AuditRequest(("standard",), source="folder", folder=str(tmp_path / "mixed"))
    last = list(ha.run_audit(ctx, "s", request, local=True))[-1]
    audit = ha.read_audit(last.record)
    order = views.ranking(audit, 0)
    top = audit.labels[order[: len(order) // 2]]
    assert top.mean() >= 0.8, audit.labels[order]


# --- the Explain tab's settings and defects of the issue ------------------------------------
def test_strokes_keep_their_meaning_by_colour_whatever_the_brush_mode(tmp_path):
    from explorer.media import editor, masking

    image, truth = object_image(1)
    value, record = editor.show(tmp_path, image, truth)
    strokes = np.zeros((64, 64, 4), np.uint8)
    strokes[:4, :] = (*masking.LAYER_COLOUR, 140)  # a green stroke along the top: adds
    strokes[30:34, :] = (*masking.REMOVE_COLOUR, 140)  # a red stroke across the object: cuts
    painted = {"background": value["composite"], "layers": [strokes], "composite": None}
    masks = [editor.resolve(painted, record, mode)[1] for mode in editor.BRUSH_MODES]
    assert np.array_equal(masks[0], masks[1])
    expected = truth.copy()
    expected[:4] = True
    expected[30:34] = False
    assert np.array_equal(masks[0], expected)


def test_domain_notices_name_size_colour_and_unknown_classes(tmp_path):
    from explorer.handlers import domain

    ctx = make_context(tmp_path)
    entry = ctx.store.get("standard", None)
    entry.metadata["data"] = {"dataset": "fashion-mnist"}
    grey = np.full((64, 64, 3), 90, np.uint8)
    assert domain.notices([entry], grey, "circle") == []
    wide = np.zeros((40, 160, 3), np.uint8)
    wide[..., 0] = 200  # red: far from greyscale
    [notice] = domain.notices([entry], wide, "cat")
    assert "160×40" in notice and "colour" in notice and "'cat'" in notice
    assert "3 classes (circle, square, triangle)" in notice


def test_explain_settings_true_class_and_selective_map(tmp_path):
    from explorer.handlers.explain import SELECTIVE, ExplainRequest, explain
    from explorer.media.editor import EditorInput, editor_value

    ctx = make_context(tmp_path)
    image, mask = object_image(2)
    base = ExplainRequest(EditorInput(editor_value(image, mask)), *ctx.default_pair,
                          true_class="triangle")
    pair = explain(ctx, None, base)
    marks = ["✓" if v.predicted == "triangle" else "✗ (true: triangle)" for v in pair.views]
    for view, mark in zip(pair.views, marks, strict=True):
        assert f"{view.predicted} ({view.top[view.predicted]:.0%}) {mark}" in pair.summary
    wide = explain(ctx, None, ExplainRequest(EditorInput(editor_value(image, mask)),
                                             *ctx.default_pair, epsilon=5.0, zb=False))
    assert not np.allclose(wide.left.relevance, pair.left.relevance)
    selective = explain(ctx, None, ExplainRequest(EditorInput(editor_value(image, mask)),
                                                  *ctx.default_pair, target=SELECTIVE))
    for view in selective.views:
        assert view.target == min(view.probabilities, key=view.probabilities.get)
    with pytest.raises(InputError):
        explain(ctx, None, ExplainRequest(EditorInput(editor_value(image, mask)),
                                          *ctx.default_pair, epsilon=-1.0))


def test_model_card_starts_with_a_summary_line_and_folds_the_rest(tmp_path):
    from explorer.handlers.models import model_card

    ctx = make_context(tmp_path)
    entry = ctx.store.get("isnet", None)
    entry.metadata["data"] = {"dataset": "fashion-mnist", "bias": {"kind": "shape"}}
    entry.metadata["metrics"] = {"test": {"biased": {"accuracy": 0.9},
                                          "unbiased": {"accuracy": 0.8}}}
    card = model_card(entry)
    summary = card.splitlines()[1]
    assert summary == ("densenet · 3 classes · 32 px · ISNet · fashion-mnist, biased with a "
                       "shape mark · accuracy biased 90% / unbiased 80%")
    assert "<details>" in card and card.rstrip().endswith("</details>")
    assert "Unseen background changes" not in card  # not recorded: no line
    entry.metadata["metrics"]["robustness"] = {
        "shape": {"clean": 0.8, "planted": 0.79, "drop_points": 1.0},
        "tint": {"clean": 0.8, "planted": 0.2, "drop_points": 60.0}}
    line = next(x for x in model_card(entry).splitlines() if "Unseen background" in x)
    assert line.endswith("shape 1.0 · tint 60.0")


@pytest.mark.parametrize("workers", [1, 2])
def test_stop_mid_audit_keeps_what_is_done(tmp_path, monkeypatch, workers):
    monkeypatch.setattr(ha, "CHUNK", 2)
    monkeypatch.setattr(ha, "default_workers", lambda device: workers)
    ctx = make_context(tmp_path)
    stop = threading.Event()
    request = ha.AuditRequest(tuple(ctx.default_pair), source="upload",
                              paths=(str(planted_zip(tmp_path)),))
    updates = []
    for update in ha.run_audit(ctx, "s", request, stop):
        updates.append(update)
        if update.fraction > 0:
            stop.set()  # after the first chunk of the first model
    record = updates[-1].record
    assert "Stopped early" in updates[-1].status and not record["complete"]
    assert record["count"] == 2 and len(record["models"]) == 1
    assert ha.read_audit(record).relevance[0].shape[0] == 2


@pytest.mark.slow
def test_audit_and_export_through_the_api(tmp_path, monkeypatch):
    from gradio_client import Client
    from ui_fixtures import launch_tiny_app, named

    from explorer.components import AUDIT_OUTPUTS, EXPORT_OUTPUTS

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    zip_path = planted_zip(tmp_path)
    demo, url = launch_tiny_app(tmp_path)
    try:
        from gradio_client import handle_file

        client = Client(url, verbose=False)
        *shown, per_image = client.predict(
            model="standard", second_model="isnet", image_source="upload", bundled_images=200,
            uploaded_zip=handle_file(str(zip_path)), folder_path="", mask_source="set",
            api_name="/audit")
        audit = named(AUDIT_OUTPUTS, shown)  # and last, the per-image CSV (issue 30 defect 7)
        assert Path(per_image).read_text().startswith("model,index,file,")
        assert audit["status"].startswith("Done: 6 images × 2 model(s)")
        assert len(audit["gallery"]) == 6
        files = named(EXPORT_OUTPUTS, client.predict(view_name="audit", api_name="/export"))
        record = json.loads(Path(files["numbers"]).read_text())
        assert record["settings"]["images"] == 6 and record["view"] == "audit"
        assert np.load(files["heatmaps"]).shape == (2, 6, 32, 32)
        assert Path(files["figure"]).read_bytes()[:4] == b"\x89PNG"
    finally:
        demo.close()


def test_view_log_keeps_the_newest_views_and_deletes_older_files(tmp_path):
    from explorer.view_log import ViewLog

    ctx = make_context(tmp_path)
    ctx.views = ViewLog(capacity=2)
    shared = np.full((4, 4, 3), 7, np.uint8)  # shown by every view
    views = [hx.record_view(ctx, "s", "audit", f"view {i}", {"i": i}, {}, [],
                            [("p", np.full((4, 4, 3), i, np.uint8)), ("shared", shared)],
                            np.full((1, 4, 4), i)) for i in range(3)]
    assert [v["title"] for v in ctx.views.of("s")] == ["view 1", "view 2"]
    assert not Path(views[0]["images"][0][1]).exists() and not Path(views[0]["heatmaps"]).exists()
    assert Path(views[2]["heatmaps"]).exists() and ctx.views.of("other") == []
    assert Path(views[0]["images"][1][1]).exists()  # still shown by the views kept


def test_a_model_trained_with_the_epsilon_input_rule_is_explained_audited_and_recorded_so(
        tmp_path):
    """Each view explains a model with the input rule it was trained with (its checkpoint's
    ``config.zb``) unless the user chooses another, and the exported settings say which."""
    from explorer.tabs.audit import _record_audit

    ctx = make_context(tmp_path)
    entries = [ctx.store.get(i, None) for i in ctx.default_pair]  # standard, ISNet
    entries[1].metadata["config"] = {"zb": False}  # the ISNet was trained with ε at the input
    image, mask = object_image(1)
    pair = explain_models(ctx, entries, image, mask)
    for entry, view, zb in zip(entries, pair.views, (True, False), strict=True):
        expected = isnet.viz.relevance_map(isnet.explain(
            entry.model, model_tensor(image, entry.input_size), epsilon=entry.epsilon,
            zb=zb)[1][0, 0])
        np.testing.assert_allclose(view.relevance, expected, rtol=1e-5, atol=1e-8)
    assert [view.input_rule for view in pair.views] == ["z^B", "ε"]
    assert "| z^B |" in pair.summary and "| ε |" in pair.summary
    hx.record_pair(ctx, "s", "explain", "Explain", pair, entries, {})
    record = json.loads(Path(hx.export_view(ctx, "s", hx.ExportRequest("explain")).numbers)
                        .read_text())
    assert record["settings"]["lrp"]["zb"] == [True, False]
    last = audited(ctx, ha.AuditRequest(tuple(ctx.default_pair), source="upload",
                                        paths=(str(planted_zip(tmp_path)),)))
    data = ha.read_audit(last.record)
    pixels = torch.from_numpy(data.images).permute(0, 3, 1, 2).float() / 255
    for index, (entry, zb) in enumerate(zip(entries, (True, False), strict=True)):
        _, maps = isnet.explain(entry.model, pixels, None, epsilon=entry.epsilon, zb=zb)
        expected = maps[:, 0].sum(1).detach().numpy()
        np.testing.assert_allclose(data.relevance[index], expected, rtol=1e-4, atol=1e-6)
    _record_audit(ctx, "s", data, views.top_gallery(data, 0)[0])
    record = json.loads(Path(hx.export_view(ctx, "s", hx.ExportRequest("audit")).numbers)
                        .read_text())
    assert record["settings"]["lrp"]["zb"] == [True, False]


def test_two_models_show_the_first_ones_results_while_the_second_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(ha, "CHUNK", 2)
    ctx = make_context(tmp_path)
    request = ha.AuditRequest(tuple(ctx.default_pair), source="upload",
                              paths=(str(planted_zip(tmp_path, count=5)),))
    updates = list(ha.run_audit(ctx, "s", request))
    interims = [u for u in updates if u.interim]
    assert len(interims) == 1 and 0 < interims[0].fraction < 1
    first, last = interims[0].record, updates[-1].record
    assert [m["label"] for m in first["models"]] == [last["models"][0]["label"]]
    assert first["count"] == 5 and not first["complete"] and last["complete"]
    assert "its results are below" in interims[0].status
    assert updates.index(interims[0]) == 3  # right after the first model's third chunk
    # the final record repeats the first model's results, and the interim folder is gone
    shown, final = ha.read_audit({**first, "dir": last["dir"]}), ha.read_audit(last)
    np.testing.assert_array_equal(shown.relevance[0], final.relevance[0])
    assert not Path(first["dir"]).exists() and Path(last["dir"]).exists()
    # one model: no interim update
    single = ha.AuditRequest((ctx.default_pair[0],), source="upload", paths=request.paths)
    assert not any(u.interim for u in ha.run_audit(ctx, "s", single))
