"""Any loaded model can be audited (issue 29 item 5): a 1000-class ImageNet state dict joins the
Audit tab's lists, and on a set with other classes it is ranked by background share alone,
without accuracy, and the audit says so."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch
import torchvision
from ui_fixtures import CLASSES, make_context, object_image, tiny_models, write_samples

import isnet
from explorer.handlers import audit as ha
from explorer.handlers import audit_views as views
from explorer.handlers import models as hm
from isnet.data.folders import save_image_folder


def _zip(tmp_path: Path, count: int = 6) -> Path:
    """A zip of the tiny models' three classes (images with masks, folder layout)."""
    pairs = [object_image(index % 3, size=32, seed=index) for index in range(count)]
    image_set = isnet.ImageSet(
        torch.stack([torch.from_numpy(i).permute(2, 0, 1).float() / 255 for i, _ in pairs]),
        torch.stack([torch.from_numpy(m.astype(np.float32))[None] for _, m in pairs]),
        torch.tensor([index % 3 for index in range(count)]), list(CLASSES))
    save_image_folder(image_set, tmp_path / "set")
    return Path(shutil.make_archive(str(tmp_path / "set"), "zip", tmp_path / "set"))


def test_a_loaded_imagenet_model_is_listed_and_audited_without_accuracy(tmp_path):
    ctx = make_context(tmp_path)
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tmp_path / "r18.pth")
    loaded = hm.load_model_file(ctx, "s", str(tmp_path / "r18.pth"))
    assert len(loaded.class_names) == 1000
    first, second = views.model_lists(ctx.store.choices("s"))
    assert loaded.model_id in {i for _, i in first} and loaded.model_id in {i for _, i in second}
    assert second[0] == ("(none)", "(none)")
    request = ha.AuditRequest((loaded.model_id, ctx.default_pair[0]), source="upload",
                              paths=(str(_zip(tmp_path)),))
    updates = list(ha.run_audit(ctx, "s", request, workers=1))
    last = updates[-1]
    assert last.record is not None and last.record["count"] == 6
    assert any(loaded.label in n and "no accuracy; ranked by share" in n for n in last.notices)
    data = ha.read_audit(last.record)
    assert data.correct(0) is None and data.correct(1) is not None  # the tiny model: same set
    assert np.isfinite(data.share[0]).all()
    ranked = views.ranking(data, 0)
    assert list(ranked) == list(np.argsort(-data.share[0], kind="stable"))
    table = views.summary(data, 0.5)
    row = next(line for line in table.splitlines() if line.startswith(f"| {loaded.label} |"))
    assert row.split("|")[3].strip() == "—"
    assert f"{loaded.label}: other classes than the set's, so no accuracy" in table
    assert "ranked by background share alone" in table


def test_the_audit_lists_follow_the_session_when_a_tab_is_chosen(tmp_path):
    from explorer.app import build_demo

    images, masks = write_samples(tmp_path / "assets")
    demo = build_demo(models=tiny_models(), samples_dir=images, masks_dir=masks,
                      work_dir=tmp_path / "work")
    opener = next(f for f in demo.fns.values() if getattr(f.fn, "__name__", "") == "on_open"
                  and {getattr(o, "label", None) for o in f.outputs}
                  == {"Model", "Second model (optional)"})
    assert any(target[1] == "select" for target in opener.targets)
    models, seconds = opener.fn(None)
    assert [c[1] for c in models["choices"]] == [c[1] for c in seconds["choices"][1:]]
