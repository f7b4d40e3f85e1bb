"""Issue 31, "thin tabs": each Audit-tab event is a named function of
:mod:`explorer.handlers.audit_events`, called here alone on the tiny models (no server)."""

from __future__ import annotations

import inspect
import shutil
import threading
import zipfile
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import torch
from ui_fixtures import make_context, named, object_image

import isnet
from explorer.components import AUDIT_OUTPUTS, CLEARED_NAMES, with_context
from explorer.handlers import audit_events as events
from explorer.state import AppContext
from isnet.data.folders import save_image_folder

COUNT = 6


def _planted_zip(folder: Path) -> Path:
    """A zip of 6 object images of two classes (circle, square), with masks."""
    images, masks, labels = [], [], []
    for index in range(COUNT):
        image, mask = object_image(index % 2, size=32, seed=index)
        images.append(torch.from_numpy(image).permute(2, 0, 1).float() / 255)
        masks.append(torch.from_numpy(mask.astype(np.float32))[None])
        labels.append(index % 2)
    save_image_folder(isnet.ImageSet(torch.stack(images), torch.stack(masks),
                                     torch.tensor(labels), ["circle", "square"]),
                      folder / "planted")
    return Path(shutil.make_archive(str(folder / "planted"), "zip", folder / "planted"))


@pytest.fixture(scope="module")
def ctx(tmp_path_factory) -> AppContext:
    return make_context(tmp_path_factory.mktemp("audit-events"))


@pytest.fixture(scope="module")
def audit(ctx, tmp_path_factory) -> tuple[list, dict]:
    """Every update of an audit of the planted zip by both tiny models, and the last one read
    by name."""
    upload = _planted_zip(tmp_path_factory.mktemp("audit-zip"))
    updates = list(events.on_audit(ctx, {}, *ctx.default_pair, "upload", 200, str(upload), "",
                                   "set", None, progress=lambda *a, **k: None))
    last = updates[-1]
    return updates, {"record": last[0], "order": last[1],
                     **named(AUDIT_OUTPUTS, last[2:-1]), "per_image": last[-1]}


def test_on_audit_yields_every_output_and_records_the_view(ctx, audit):
    updates, last = audit
    assert all(len(u) == len(AUDIT_OUTPUTS) + 3 for u in updates)
    assert last["record"]["count"] == COUNT and last["record"]["complete"]
    assert set(last["order"]) <= set(range(COUNT)) and last["order"]
    assert last["rank_by"]["choices"] == [m["label"] for m in last["record"]["models"]]
    assert Path(last["per_image"]).read_text().count("\n") >= COUNT  # header + one per image
    assert [v["title"] for v in ctx.views.of(None) if v["kind"] == "audit"] == \
        [f"Audit of {COUNT} images (upload)"]


def test_on_stop_sets_only_a_running_sessions_event(ctx):
    stops: dict[str, threading.Event] = {}
    assert "Stopping" in events.on_stop(ctx, stops)
    assert stops == {}  # nothing running: nothing to set
    stops["anonymous"] = threading.Event()
    events.on_stop(ctx, stops)
    assert stops["anonymous"].is_set()


def test_on_open_and_on_zip_and_on_new_audit(ctx):
    first, second = events.on_open(ctx)
    assert "standard" in [v for _, v in first["choices"]] or "standard" in first["choices"]
    assert len(second["choices"]) == len(first["choices"]) + 1  # and "(none)"
    assert events.on_zip("set.zip") == "upload"
    assert events.on_zip(None) == {"__type__": "update"}
    assert events.on_new_audit() == ([], None, "", [], [], [], None, "", None)


def test_on_rank_orders_the_gallery_by_the_chosen_model(ctx, audit):
    _, last = audit
    pictures, ranked = events.on_rank(last["record"], 1)
    assert len(pictures) == len(ranked) and sorted(ranked) == sorted(set(ranked))
    assert events.on_rank(last["record"], None)[1] == last["order"]  # model 0 as the audit


def test_on_pick_and_on_member_open_the_image_in_explain(ctx, audit):
    _, last = audit
    picked = events.on_pick(ctx, last["record"], last["order"],
                            gr.SelectData(None, {"index": 0, "value": None}))
    value, record, label = picked[:3]
    assert value["background"] is not None and record is not None
    assert label in ("circle", "square")
    assert tuple(picked[3:3 + len(CLEARED_NAMES)]) == CLEARED_NAMES
    member = events.on_member(ctx, last["record"], [last["order"][0]],
                              gr.SelectData(None, {"index": 0, "value": None}))
    assert member[2] == label


def test_on_strategies_then_on_strategy_show_members(ctx, audit):
    _, last = audit
    means, _eigengap, text, groups, members, table = events.on_strategies(
        ctx, last["record"], "circle", 0, 2)
    assert len(means) == len(groups) == 2 and members == [] and text
    assert sorted(i for group in groups for i in group) == \
        list(range(COUNT // 2))  # the 3 circles (positions in the class), each in one strategy
    assert "strategy" in Path(table).read_text().splitlines()[0]
    gallery, chosen = events.on_strategy(last["record"], groups, 0,
                                         gr.SelectData(None, {"index": 1, "value": None}))
    assert chosen == groups[1] and len(gallery) == len(chosen)


def test_on_make_set_writes_a_zip_and_to_fine_tune_hands_it_on(ctx, audit):
    _, last = audit
    path, text = events.on_make_set(ctx, last["record"], 0, 0.0)  # share ≥ 0: every image
    count = int(text.split()[0])
    with zipfile.ZipFile(path) as archive:
        pngs = [n for n in archive.namelist() if n.endswith(".png")
                and not n.endswith(".mask.png")]
    assert len(pngs) == count and count > 0
    assert events.to_fine_tune(str(path)) == ([str(path)], "upload")
    assert events.to_fine_tune(None) == ({"__type__": "update"}, {"__type__": "update"})


def test_local_request_needs_local_paths_and_a_local_browser(ctx):
    assert events.local_request(ctx, None) is False


def test_the_bound_audit_keeps_the_api_parameter_names(ctx):
    bound = with_context(with_context(events.on_audit, ctx), {})
    parameters = list(inspect.signature(bound).parameters)
    assert parameters[:7] == ["model", "second_model", "image_source", "bundled_images",
                              "uploaded_zip", "folder_path", "mask_source"]
    assert bound.__name__ == "on_audit"
