"""Issue 30 defect 7 and issue 29 leftover (a): an audit's results lead back to files.

Gallery captions name files, the per-image CSV carries file, label, prediction, confidence,
share, strategy and marked/clean, the export's JSON the files, indices and flags; a half-marked
set shows its marked and clean images apart; and the maps shown carry their conservation
readout (Σ R against the logit), checked against an independent sum of the heatmaps."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import torch
from ui_fixtures import make_context, object_image

import isnet
from explorer.handlers import audit as ha
from explorer.handlers import audit_conservation as conservation
from explorer.handlers import audit_views as views
from explorer.handlers import export as hx
from explorer.handlers.audit_table import save_strategies, write_per_image_csv
from explorer.handlers.lrp_modes import lrp_config
from explorer.tabs.audit import _record_audit
from isnet.data.folders import save_image_folder


def named_zip(tmp_path: Path) -> Path:
    """Six object images of two classes, with masks, as a zip of class folders."""
    pairs = [object_image(i % 2, size=32, seed=i) for i in range(6)]
    image_set = isnet.ImageSet(
        torch.stack([torch.from_numpy(p).permute(2, 0, 1).float() / 255 for p, _ in pairs]),
        torch.stack([torch.from_numpy(m.astype(np.float32))[None] for _, m in pairs]),
        torch.tensor([i % 2 for i in range(6)]), ["circle", "square"])
    save_image_folder(image_set, tmp_path / "named")
    return Path(shutil.make_archive(str(tmp_path / "named"), "zip", tmp_path / "named"))


def test_an_uploads_results_name_their_files_everywhere(tmp_path):
    ctx = make_context(tmp_path)
    record = list(ha.run_audit(ctx, "s", ha.AuditRequest(
        tuple(ctx.default_pair), source="upload", paths=(str(named_zip(tmp_path)),))))[-1].record
    data = ha.read_audit(record)
    files = [str(n) for n in data.image_names()]
    assert sorted(files) == sorted(f"{c}/{c}_{i}.png" for i, c in
                                   enumerate(["circle", "square"] * 3))
    pictures, ranked = views.top_gallery(data, 0)
    assert [c for _, c in pictures][0].startswith(files[ranked[0]] + " · ")
    assert not any(c.startswith("#") for _, c in pictures)
    circles = [int(i) for i in np.flatnonzero(data.labels == 0)]
    save_strategies(record, 0, "circle", [circles[:2], circles[2:]])
    with open(write_per_image_csv(data), newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 12 and rows[0]["file"] == files[0] and rows[0]["marked"] == ""
    first = next(r for r in rows if r["model"] == ctx.default_pair[0]
                 and r["index"] == str(circles[2]))
    assert first["strategy"] == "circle strategy 2" and first["label"] == "circle"
    assert first["file"] == files[circles[2]]
    assert float(first["confidence"]) == float(f"{data.confidence[0][circles[2]]:.6f}")
    conservation.measure(ctx, "s", data, ranked)
    _record_audit(ctx, "s", data, pictures)
    exported = json.loads(Path(hx.export_view(ctx, "s", hx.ExportRequest("audit")).numbers)
                          .read_text())["numbers"]
    assert exported["files"] == files and exported["indices"] == list(range(6))
    assert exported["marked"] == [""] * 6


def test_a_half_marked_set_shows_marked_and_clean_images_apart(tmp_path):
    ctx = make_context(tmp_path)
    record = list(ha.run_audit(ctx, "s", ha.AuditRequest(
        (ctx.default_pair[0],), source="mixed", limit=10)))[-1].record
    data = ha.read_audit(record)
    assert list(data.marks()) == [1] * 5 + [0] * 5
    assert [str(n) for n in data.image_names()][4:6] == ["biased #4", "unbiased #0"]
    table = views.summary(data, 0.5)
    share = data.share[0]
    for part, chosen in (("marked", slice(0, 5)), ("clean", slice(5, 10))):
        row = next(line for line in table.splitlines() if f"· {part} |" in line)
        assert "| 5 |" in row and f"{np.nanmean(share[chosen]):.1%}" in row


def test_the_maps_shown_carry_their_conservation_readout(tmp_path):
    ctx = make_context(tmp_path)
    record = list(ha.run_audit(ctx, "s", ha.AuditRequest(
        tuple(ctx.default_pair), source="upload", paths=(str(named_zip(tmp_path)),))))[-1].record
    data = ha.read_audit(record)
    _, ranked = views.top_gallery(data, 0)
    found = conservation.measure(ctx, "s", data, ranked, count=4)
    for model in record["models"]:
        entry = ctx.store.get(model["id"], "s")
        x = torch.from_numpy(data.images[ranked[:4]]).permute(0, 3, 1, 2).float() / 255
        logits, heatmaps = isnet.explain(entry.model, x, None, lrp=lrp_config(entry))
        explained = logits.gather(1, logits.argmax(1, keepdim=True))[:, 0]
        expected = (heatmaps.flatten(1).sum(1) / explained).double().detach().numpy()  # Σ R / f
        numbers = found[model["label"]]
        np.testing.assert_allclose(numbers["ratios"], expected.round(4), atol=2e-4)
        assert abs(numbers["ratio_median"] - float(np.median(expected))) < 1e-4
        conserved = int((np.abs(expected - 1) <= 0.05).sum())
        assert numbers["conserved"] == conserved
    text = views.summary(data, 0.5)
    assert "Conservation, Tiny standard (4 most reliant images):* Σ R / logit median" in text
