"""Issue 30 defect 6, the explorer side: an uploaded zip is what the audit reads; class folders
spelt differently from the model's classes still count as those classes, the result says which
folder matched which class; a fine-tune never trains a new head because of a spelling."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from ui_fixtures import CLASSES, make_context, object_image, tiny_models, write_samples

import isnet
from explorer.errors import InputError
from explorer.handlers import audit as ha
from explorer.handlers import audit_views as views
from explorer.handlers import train as handlers_train
from isnet.data.folders import save_image_folder


def spelt_zip(tmp_path: Path, folders: dict[str, int], mapping: str | None = None) -> Path:
    """A zip of object images in folders named as given (folder → object kind), with masks,
    and an optional classes.csv."""
    images, masks, labels = [], [], []
    for label, kind in enumerate(folders.values()):
        for seed in range(3):
            image, mask = object_image(kind, size=32, seed=seed + 10 * label)
            images.append(torch.from_numpy(image).permute(2, 0, 1).float() / 255)
            masks.append(torch.from_numpy(mask.astype(np.float32))[None])
            labels.append(label)
    root = tmp_path / "spelt"
    save_image_folder(isnet.ImageSet(torch.stack(images), torch.stack(masks),
                                     torch.tensor(labels), list(folders)), root)
    if mapping is not None:
        (root / "classes.csv").write_text(mapping)
    return Path(shutil.make_archive(str(tmp_path / "spelt"), "zip", root))


def test_an_uploaded_zip_chooses_uploaded_zip_as_the_audits_images(tmp_path):
    from explorer.app import build_demo

    images, masks = write_samples(tmp_path / "assets")
    demo = build_demo(models=tiny_models(), samples_dir=images, masks_dir=masks,
                      work_dir=tmp_path / "work")
    zip_box = next(b for b in demo.blocks.values() if getattr(b, "label", None)
                   == "Zip of class folders")
    source = next(b for b in demo.blocks.values() if getattr(b, "label", None) == "Images")
    chosen = [f for f in demo.fns.values()
              if any(t[0] == zip_box._id for t in f.targets) and source in f.outputs]
    assert chosen, "uploading a zip must choose the audit's image source"
    assert chosen[0].fn(str(tmp_path / "set.zip")) == "upload"


def test_misspelt_folders_count_as_the_models_classes_and_the_match_is_said(tmp_path):
    ctx = make_context(tmp_path)
    upload = spelt_zip(tmp_path, {"CIRCLE": 0, "_Square": 1, "tri": 2, "hexagon": 0},
                       mapping="folder,class\ntri,triangle\n")
    last = list(ha.run_audit(ctx, "s", ha.AuditRequest(
        tuple(ctx.default_pair), source="upload", paths=(str(upload),))))[-1]
    record = last.record
    assert record["class_names"] == CLASSES and record["count"] == 9  # hexagon left out
    assert all(model["same_classes"] for model in record["models"])  # accuracy is measured
    assert record["class_match"]["matched"] == {"CIRCLE": "circle", "_Square": "square",
                                                "tri": "triangle"}
    assert record["class_match"]["unmatched"] == ["hexagon"]
    said = " ".join(last.notices)
    assert "CIRCLE → circle" in said and "tri → triangle (classes.csv)" in said
    assert "hexagon" in said
    data = ha.read_audit(record)
    assert sorted(set(data.labels.tolist())) == [0, 1, 2]
    assert "_Square → square" in views.summary(data, 0.5)


def test_a_fine_tune_keeps_the_head_for_misspelt_folders_and_refuses_a_partial_match(tmp_path):
    ctx = make_context(tmp_path)
    base = ctx.default_pair[1]
    upload = spelt_zip(tmp_path, {"Circle": 0, "SQUARE": 1})
    steps = handlers_train.fine_tune(ctx, "s", handlers_train.FineTuneRequest(
        base, source="upload", paths=(str(upload),), epochs=1))
    first = next(steps)  # "reading the uploaded images…" (Stop can end the reading)
    assert "reading" in first.status
    matched = next(steps)  # before the worker starts: the set is read, matched and split
    steps.close()
    assert "new classifier head" not in matched.status
    assert "2 of 2 folder(s) match the model's classes" in matched.status
    partial = spelt_zip(tmp_path / "partial", {"Circle": 0, "squares": 1})
    refused = handlers_train.fine_tune(ctx, "s", handlers_train.FineTuneRequest(
        base, source="upload", paths=(str(partial),), epochs=1))
    next(refused)  # reading
    with pytest.raises(InputError, match=r"No class for folder\(s\) squares.*classes.csv"):
        next(refused)


def test_the_in_memory_audit_keeps_a_zip_safe(tmp_path):
    ctx = make_context(tmp_path)
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as archive:
        archive.writestr("../circle/a.png", b"x")
    with pytest.raises(InputError):
        list(ha.run_audit(ctx, "s", ha.AuditRequest((ctx.default_pair[0],), source="upload",
                                                    paths=(str(bad),))))
    assert not (tmp_path / "circle").exists()


def test_an_upload_stays_within_its_pixel_limits(tmp_path):
    from explorer.handlers.audit_sets import read_files, unpack_upload
    from isnet.io.limits import UploadLimits

    root = unpack_upload(spelt_zip(tmp_path, {"circle": 0, "square": 1}), tmp_path / "s")
    read = read_files(root, 32, "squeeze", CLASSES, "set", 100, UploadLimits())
    assert len(read) == 6 and read.names[0] == "circle/circle_0.png"
    with pytest.raises(InputError, match="pixels \\(the limit for an upload\\)"):
        read_files(root, 32, "squeeze", CLASSES, "set", 100,
                   UploadLimits(max_total_pixels=6 * 32 * 32 - 1))
    with pytest.raises(InputError, match="pixels to decode"):
        read_files(root, 32, "squeeze", CLASSES, "set", 100,
                   UploadLimits(max_decoded_pixels=3 * 2 * 32 * 32))


def test_a_streamed_folder_says_which_folder_matched_which_class(tmp_path):
    ctx = make_context(tmp_path)
    spelt_zip(tmp_path, {"CIRCLE": 0, "_Square": 1, "hexagon": 2})  # leaves the folder too
    updates = list(ha.run_audit(ctx, "s", ha.AuditRequest(
        (ctx.default_pair[0],), source="folder", folder=str(tmp_path / "spelt")), local=True))
    record = updates[-1].record
    assert record["streamed"] and record["count"] == 6 and record["class_names"] == CLASSES
    said = " ".join(updates[0].notices)
    assert "CIRCLE → circle" in said and "_Square → square" in said and "hexagon" in said
    from explorer.handlers.audit_table import write_per_image_csv

    lines = write_per_image_csv(ha.read_audit(record)).read_text().splitlines()
    assert len(lines) == 7 and ",CIRCLE/CIRCLE_0.png,circle," in lines[1]  # named by its file
