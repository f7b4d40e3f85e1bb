"""Issue 30 defect 10: a class with too few images for strategy discovery says so (never a
silent single strategy), the user can set *k*, and a new audit clears the last audit's
strategies and fine-tuning zip."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ui_fixtures import tiny_models, write_samples

from explorer.errors import InputError
from explorer.handlers import audit as ha
from explorer.handlers import audit_views as views
from isnet.analysis.strategies import MIN_FOR_EIGENGAP, find_strategies


def small_audit(tmp_path, count: int) -> ha.AuditData:
    """An audit of ``count`` images of one class: half look at the corner, half at the centre."""
    rng = np.random.default_rng(0)
    relevance = rng.normal(0, 0.02, (count, 16, 16)).astype(np.float32)
    relevance[: count // 2, :4, :4] += 1.0
    relevance[count // 2:, 6:10, 6:10] += 1.0
    record = {"dir": str(tmp_path), "count": count, "class_names": ["a", "b"], "complete": True,
              "models": [{"id": "m", "label": "m", "class_names": ["a", "b"],
                          "same_classes": True, "epsilon": 0.01, "path": None}],
              "source": "upload", "masks": "none", "seconds": 0.0}
    zeros = np.zeros(count, np.int64)
    return ha.AuditData(record, np.zeros((count, 16, 16, 3), np.uint8), zeros, None,
                        [relevance], [zeros], [np.ones(count, np.float32)],
                        [np.full(count, np.nan, np.float32)])


def test_too_few_images_for_the_eigengap_are_said_and_k_can_be_set(tmp_path):
    data = small_audit(tmp_path, 5)
    found = views.strategies(data, 0, "a")
    assert "Only 5 images of a: too few for the eigengap" in found.text
    assert str(MIN_FOR_EIGENGAP) in found.text and "set *k*" in found.text
    chosen = views.strategies(data, 0, "a", 2)
    assert len(chosen.members) == 2 and "(your k)" in chosen.text
    assert sorted(map(sorted, chosen.members)) == [[0, 1], [2, 3, 4]]
    for bad in (6, -1):
        with pytest.raises(InputError, match="Strategies \\(k\\) must lie between 1 and 5"):
            views.strategies(data, 0, "a", bad)
    assert "too few" not in views.strategies(small_audit(tmp_path, 20), 0, "a").text


def test_the_engine_takes_a_given_number_of_strategies():
    maps = torch.zeros(12, 8, 8, dtype=torch.float64)
    maps[:4, 0, 0] = maps[4:8, 4, 4] = maps[8:, 7, 7] = 1.0
    maps += 0.01 * torch.rand(12, 8, 8, generator=torch.Generator().manual_seed(0))
    found = find_strategies(maps, size=8, num_clusters=3)
    assert found.num_clusters == 3 and found.chosen_by == "user" and not found.few
    assert sorted(found.sizes.tolist()) == [4, 4, 4]
    assert find_strategies(maps[:5], size=8).few
    with pytest.raises(ValueError, match="between 1 and the 12 maps"):
        find_strategies(maps, size=8, num_clusters=13)


def test_a_new_audit_clears_the_last_audits_strategies_and_fine_tuning_zip(tmp_path):
    from explorer.app import build_demo

    images, masks = write_samples(tmp_path / "assets")
    demo = build_demo(models=tiny_models(), samples_dir=images, masks_dir=masks,
                      work_dir=tmp_path / "work")
    button = next(b for b in demo.blocks.values()
                  if getattr(b, "elem_id", None) == "audit-button")
    labels = {"Fine-tuning set (zip)", "Mean heatmap per strategy",
              "Members of the chosen strategy"}
    clearing = [f for f in demo.fns.values() if any(t[0] == button._id for t in f.targets)
                and labels <= {getattr(o, "label", None) for o in f.outputs}]
    assert clearing, "the Audit button must clear the last audit's strategies and zip"
    values = clearing[0].fn()
    by_label = {getattr(o, "label", None): v for o, v in zip(clearing[0].outputs, values,
                                                             strict=True)}
    assert by_label["Fine-tuning set (zip)"] is None
    assert by_label["Mean heatmap per strategy"] == []
    assert by_label["Members of the chosen strategy"] == []
