"""Specification of the dataset audit (isnet.analysis.audit) and strategy discovery (SpRAy)."""

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score

import isnet
from isnet.analysis.audit import audit_images, rank_by_background
from isnet.analysis.strategies import eigengap, find_strategies, normalised_maps
from isnet.training.experiment import ExperimentData, evaluation_set

CHECKPOINTS = "assets/checkpoints"


def _planted(counts, generator, side=32):
    """Relevance maps of len(counts) strategies: strategy s puts a blob at its own place."""
    places = [(2, 2), (20, 20), (2, 20), (20, 2)]
    maps, truth = [], []
    for strategy, count in enumerate(counts):
        for _ in range(count):
            noise = 0.05 * torch.rand(side, side, generator=generator)
            row, col = places[strategy]
            noise[row:row + 8, col:col + 8] += 1.0 + torch.rand(1, generator=generator)
            maps.append(noise)
            truth.append(strategy)
    return torch.stack(maps), np.array(truth)


@pytest.mark.parametrize("counts", [(30, 30), (25, 15, 20)])
def test_clustering_separates_planted_strategies(counts, generator):
    maps, truth = _planted(counts, generator)
    found = find_strategies(maps, size=16, max_clusters=6, seed=0)
    assert found.num_clusters == len(counts)
    assert adjusted_rand_score(truth, found.labels) == 1.0
    assert sorted(found.sizes.tolist()) == sorted(counts)
    assert found.sizes[0] == max(counts)  # cluster 0 is the largest
    # each mean map peaks where its strategy put relevance (16 px maps: half the coordinates)
    for cluster in range(found.num_clusters):
        members = truth[found.labels == cluster]
        row, col = [(2, 2), (20, 20), (2, 20), (20, 2)][members[0]]
        peak = int(found.mean_maps[cluster].argmax())
        assert (peak // 16, peak % 16) in {(r, c) for r in range(row // 2, row // 2 + 4)
                                          for c in range(col // 2, col // 2 + 4)}


def test_eigengap_counts_the_components_of_a_block_diagonal_affinity():
    blocks = [4, 3, 5]
    affinity = np.zeros((12, 12))
    start = 0
    for size in blocks:
        affinity[start:start + size, start:start + size] = 1.0
        start += size
    np.fill_diagonal(affinity, 0.0)
    count, values = eigengap(affinity, max_clusters=6)
    assert count == 3
    np.testing.assert_allclose(values[:3], 0.0, atol=1e-12)  # one zero per component
    assert values[3] > 0.5


def test_normalised_maps_are_area_averages_scaled_to_one():
    relevance = torch.zeros(1, 4, 4)
    relevance[0, :2, :2] = torch.tensor([[1.0, 3.0], [-2.0, 2.0]])  # mean 1 in the top-left cell
    relevance[0, 2:, 2:] = -4.0  # mean −4 in the bottom-right cell
    maps = normalised_maps(relevance, size=2)
    torch.testing.assert_close(maps[0], torch.tensor([[0.25, 0.0], [0.0, -1.0]]))


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_audit_matches_explaining_each_batch_directly(tiny_model, generator, workers):
    images = torch.rand(7, 3, 32, 32, generator=generator, dtype=torch.float64)
    masks = (torch.rand(7, 1, 32, 32, generator=generator) > 0.5).double()
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0])
    seen = []
    result = audit_images(tiny_model, images, masks, labels, batch_size=3, workers=workers,
                          on_progress=lambda done, total: seen.append((done, total)))
    logits, heatmaps = isnet.explain(tiny_model, images)
    assert seen == [(3, 7), (6, 7), (7, 7)] and result.complete and len(result) == 7
    torch.testing.assert_close(result.predictions, logits.argmax(1))
    torch.testing.assert_close(result.confidence, torch.softmax(logits, 1).amax(1).float())
    torch.testing.assert_close(result.relevance, heatmaps[:, 0].sum(1).float())
    torch.testing.assert_close(result.background_share,
                               isnet.background_share(heatmaps, masks).float())
    torch.testing.assert_close(result.correct, logits.argmax(1) == labels)


def test_audit_without_masks_and_stopped_early(tiny_model, generator):
    images = torch.rand(5, 3, 32, 32, generator=generator, dtype=torch.float64)
    calls = iter([False, True])
    result = audit_images(tiny_model, images, batch_size=2, should_stop=lambda: next(calls))
    assert not result.complete and len(result) == 2
    assert all(math.isnan(v) for v in result.background_share.tolist())
    assert result.correct is None
    with pytest.raises(ValueError, match="masks must have shape"):
        audit_images(tiny_model, images, torch.ones(5, 1, 16, 16))


def test_audit_stopped_on_several_workers_keeps_exactly_the_batches_reported(tiny_model,
                                                                              generator):
    images = torch.rand(9, 3, 32, 32, generator=generator, dtype=torch.float64)
    seen = []
    result = audit_images(tiny_model, images, batch_size=2, workers=3,
                          on_progress=lambda done, total: seen.append(done),
                          should_stop=lambda: len(seen) >= 2)  # stop after two batches
    assert seen == [2, 4] and len(result) == 4 and not result.complete
    _, heatmaps = isnet.explain(tiny_model, images[:4])
    torch.testing.assert_close(result.relevance, heatmaps[:, 0].sum(1).float())


def test_ranking_is_descending_stable_with_unknown_shares_last():
    from isnet.analysis.audit import AuditResult

    share = torch.tensor([0.2, float("nan"), 0.9, 0.2, 0.5])
    result = AuditResult(torch.zeros(5).long(), torch.ones(5), torch.zeros(5, 2, 2), share)
    assert rank_by_background(result).tolist() == [2, 4, 0, 3, 1]


@pytest.mark.slow
def test_marked_images_rank_above_clean_ones_for_the_standard_model():
    """The bundled standard DenseNet121 learned the corner mark: on a mixed set of marked and
    clean test images, the marked ones are the most background-reliant."""
    model = isnet.load_checkpoint(f"{CHECKPOINTS}/standard_densenet121.safetensors").model
    data = ExperimentData(test_limit=24)
    marked, clean = evaluation_set(data, "biased"), evaluation_set(data, "unbiased")
    images = torch.cat([marked.images, clean.images])
    masks = torch.cat([marked.masks, clean.masks])
    result = audit_images(model, images, masks, batch_size=16)
    has_mark = torch.cat([torch.ones(24), torch.zeros(24)]).bool()
    order = rank_by_background(result)
    # area under the ROC curve of "share ranks marked above clean"
    share = result.background_share
    pairs = (share[has_mark][:, None] > share[~has_mark][None, :]).float().mean()
    assert float(pairs) > 0.9, float(pairs)
    assert has_mark[order[:12]].float().mean() >= 0.9
