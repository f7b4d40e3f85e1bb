"""The Audit tab's local folder: streamed from disk (no cap), the same shares as
``python -m isnet.audit``, the views on a streamed audit, Stop, and uploads keeping their cap."""

from __future__ import annotations

import csv
import json
import shutil
import threading
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from ui_fixtures import CLASSES, make_context, object_image

import isnet
from explorer.errors import InputError
from explorer.handlers import audit as ha
from explorer.handlers import audit_sets
from explorer.handlers import audit_stream as hs
from explorer.handlers import audit_views as views
from explorer.handlers import export as hx
from explorer.tabs.audit import _record_audit
from isnet.audit import main as audit_command
from isnet.data.folders import load_image_folder, save_image_folder
from isnet.io.checkpoints import save_checkpoint

COUNT = 30
UNMASKED = ("circle/circle_3.mask.png", "square/square_4.mask.png")


def write_folder(root: Path, count: int = COUNT) -> Path:
    """``count`` 32 px object images of the tiny models' three classes in class folders, with
    masks except for two images."""
    images, masks, labels = [], [], []
    for index in range(count):
        kind = index % len(CLASSES)
        image, mask = object_image(kind, size=32, seed=index)
        images.append(torch.from_numpy(image).permute(2, 0, 1).float() / 255)
        masks.append(torch.from_numpy(mask.astype(np.float32))[None])
        labels.append(kind)
    save_image_folder(isnet.ImageSet(torch.stack(images), torch.stack(masks),
                                     torch.tensor(labels), list(CLASSES)), root)
    for name in UNMASKED:
        (root / name).unlink()
    return root


def streamed(ctx, folder: Path, model_ids, stop=None, **options) -> list[ha.AuditUpdate]:
    """Every update of a local folder's audit."""
    request = ha.AuditRequest(tuple(model_ids), source="folder", folder=str(folder), **options)
    return list(ha.run_audit(ctx, "s", request, stop, local=True))


@pytest.fixture
def setup(tmp_path, monkeypatch):
    """A context with the tiny models, a folder of 30 images and the old cap lowered to 10 (a
    folder over the cap, audited fast); the in-memory loader refuses to run."""
    monkeypatch.setattr(ha, "MAX_IMAGES", 10)

    def in_memory(*args, **kwargs):
        raise AssertionError("a local folder must be streamed, not loaded")

    monkeypatch.setattr(ha, "read_files", in_memory)
    return make_context(tmp_path), write_folder(tmp_path / "set")


def test_a_local_folder_is_streamed_past_the_cap_with_the_audit_commands_shares(setup,
                                                                                tmp_path):
    ctx, folder = setup
    updates = streamed(ctx, folder, ctx.default_pair)
    last = updates[-1]
    record = last.record
    assert record["streamed"] and record["complete"] and record["count"] == COUNT
    assert last.status.startswith(f"Done: {COUNT} images × 2 model(s)")
    assert any("2 of 30 images have no mask file" in n for n in updates[0].notices)
    assert [u for u in updates if u.interim] and 0 < updates[1].fraction < 1
    stored = {p.name for p in Path(record["dir"]).iterdir()}
    assert "images.npy" not in stored and "relevance_0.npy" not in stored  # nothing full-size
    data = ha.read_audit(record)
    names = [str(data.files["names"][e]) for e in data.entries]
    for index, model_id in enumerate(ctx.default_pair):
        entry = ctx.store.get(model_id, None)
        checkpoint = save_checkpoint(tmp_path / f"{model_id}.safetensors", entry.model,
                                     class_names=entry.class_names,
                                     input_size=entry.input_size)
        out = tmp_path / f"command-{model_id}"
        assert audit_command(["--data", str(folder), "--checkpoint", str(checkpoint), "--out",
                              str(out), "--workers", "0"]) == 0
        with open(out / checkpoint.stem / "per_image.csv", newline="") as handle:
            rows = {row["file"]: row for row in csv.DictReader(handle)}
        assert sorted(rows) == sorted(names)
        expected = np.array([float(rows[n]["background_share"] or "nan") for n in names])
        np.testing.assert_allclose(data.share[index], expected, rtol=0, atol=1e-5)
        assert np.isnan(data.share[index]).sum() == len(UNMASKED)
        assert [CLASSES[p] for p in data.predictions[index]] == [rows[n]["prediction"]
                                                                 for n in names]
        top = data.top[index]
        assert len(top["positions"]) == hs.KEEP_TOP and top["pictures"].shape[1:] == (32, 32, 3)
    # the export and the session report take a streamed audit too (its 16 px maps)
    _record_audit(ctx, "s", data, views.top_gallery(data, 0)[0])
    files = hx.export_view(ctx, "s", hx.ExportRequest("audit"))
    assert np.load(files.heatmaps).shape == (2, COUNT, hs.MAP_SIZE, hs.MAP_SIZE)
    numbers = json.loads(Path(files.numbers).read_text())["numbers"]["per_model"]
    assert numbers["Tiny standard"]["background_share"][0] == pytest.approx(
        float(data.share[0][0]), abs=1e-6) or np.isnan(data.share[0][0])
    assert f"Audit of {COUNT} images" in Path(hx.session_report(ctx, "s")).read_text()


def test_the_views_read_a_streamed_audit(setup, tmp_path):
    ctx, folder = setup
    data = ha.read_audit(streamed(ctx, folder, ctx.default_pair[:1])[-1].record)
    assert f"| Tiny standard | {COUNT} |" in views.summary(data, 0.5)
    assert views.histogram(data) is not None
    pictures, order = views.top_gallery(data, 0)
    assert len(order) == views.GALLERY_SIZE and len(set(order)) == len(order)
    shares = data.share[0][order]
    assert np.all(np.diff(shares[np.isfinite(shares)]) <= 0)
    assert all(p.dtype == np.uint8 for p, _ in pictures)
    # a kept image and one re-read from the folder: the same picture as the audit saw
    kept, other = order[0], next(i for i in range(COUNT) if data.kept(i, 0) is None)
    image, mask, label = views.explain_input(data, kept)
    np.testing.assert_array_equal(image, data.kept(kept, 0)[0])
    assert mask.shape == (32, 32) and label in CLASSES
    reread, _, _ = data.images([kept])
    np.testing.assert_array_equal(
        (reread[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8), image)
    assert views.explain_input(data, other)[0].shape == (32, 32, 3)
    assert views.shown(data, [other], 0)[0][1].endswith("16 px map")
    # strategies from the 16 px maps cover every image of the class
    found = views.strategies(data, 0, "circle")
    assert sorted(sum(found.members, [])) == np.flatnonzero(data.labels == 0).tolist()
    assert "16 px heatmaps" in found.text
    assert len(views.members_gallery(data, 0, found.members[0])) == len(found.members[0])
    # the fine-tuning set: re-read images with their masks, in the Fine-tune tab's layout
    path, written = views.fine_tune_zip(data, 0, 0.0, tmp_path)
    with zipfile.ZipFile(path) as archive:
        entries = archive.namelist()
    assert all(name.count("/") == 1 for name in entries) and len(entries) == 2 * written
    unpacked = tmp_path / "unpacked"
    shutil.unpack_archive(path, unpacked)
    loaded, _ = load_image_folder(unpacked)
    assert len(loaded) == written == COUNT - len(UNMASKED)


def test_stop_ends_a_streamed_audit_after_its_batch(setup):
    ctx, folder = setup

    class StopAfter(threading.Event):
        """Answers "stop" from its fourth question on: the check before the first model,
        then one per batch (so two batches run)."""

        def __init__(self) -> None:
            super().__init__()
            self.asked = 0

        def is_set(self) -> bool:
            self.asked += 1
            return self.asked > 3

    last = streamed(ctx, folder, ctx.default_pair, StopAfter(), batch_size=4)[-1]
    assert last.status.startswith("Stopped early") and not last.record["complete"]
    assert last.record["count"] == 8 and len(last.record["models"]) == 1
    stopped = threading.Event()
    stopped.set()
    assert "nothing to show" in streamed(ctx, folder, ctx.default_pair, stopped)[-1].status


def test_uploads_automatic_masks_and_remote_users_keep_the_cap(setup, tmp_path, monkeypatch):
    ctx, folder = setup
    monkeypatch.setattr(ha, "read_files", audit_sets.read_files)  # the in-memory loader back
    upload = Path(shutil.make_archive(str(tmp_path / "upload"), "zip", folder))
    with pytest.raises(InputError, match="at most 10"):
        list(ha.run_audit(ctx, "s", ha.AuditRequest(tuple(ctx.default_pair), source="upload",
                                                    paths=(str(upload),), masks="none")))
    with pytest.raises(InputError, match="streamed from disk without a cap"):
        streamed(ctx, folder, ctx.default_pair, masks="auto")
    with pytest.raises(InputError, match="only for a user at this machine"):
        list(ha.run_audit(ctx, "s", ha.AuditRequest(tuple(ctx.default_pair), source="folder",
                                                    folder=str(folder))))
    with pytest.raises(InputError, match="No folder"):
        streamed(ctx, tmp_path / "missing", ctx.default_pair[:1])


def test_folders_are_offered_only_to_a_local_unshared_app(tmp_path):
    from explorer.tabs.audit import _local

    ctx = make_context(tmp_path)
    here = SimpleNamespace(client=SimpleNamespace(host="127.0.0.1"))
    elsewhere = SimpleNamespace(client=SimpleNamespace(host="10.0.0.7"))
    assert not _local(ctx, here)  # Limits() default: no local paths (shared, or another host)
    ctx.limits = type(ctx.limits)(local_paths=True)
    assert _local(ctx, here) and not _local(ctx, elsewhere)


def test_a_streamed_audit_without_masks_ranks_by_the_border_share(setup):
    ctx, folder = setup
    data = ha.read_audit(streamed(ctx, folder, ctx.default_pair[:1], masks="none")[-1].record)
    assert np.isnan(data.share[0]).all() and len(data.top[0]["positions"]) == 0
    pictures, order = views.top_gallery(data, 0)
    assert len(pictures) == views.GALLERY_SIZE and all("16 px map" in c for _, c in pictures)
    with pytest.raises(InputError, match="without masks"):
        views.fine_tune_zip(data, 0, 0.5, ctx.session_dir("s"))
