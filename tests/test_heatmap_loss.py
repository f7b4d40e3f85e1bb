"""The heatmap loss against a naive element-wise implementation and hand-computed cases."""

from __future__ import annotations

import math

import pytest
import torch

import isnet
from isnet.loss import global_weighted_rank_pooling, prepare_masks


def naive_heatmap_loss(heatmaps, masks, w1=1.0, w2=3.0, c1=1.0, c2=25.0, e=1.0, d=0.9,
                       form="l2"):
    """Loops over samples, maps and channels; full sort; nothing vectorised."""
    batch, maps, channels, height, width = heatmaps.shape
    per_sample = []
    for b in range(batch):
        mask = masks[b, 0]
        bg_terms, fg_terms = [], []
        for k in range(maps):
            a = heatmaps[b, k].abs()
            inside_sum = sum((a[c] * mask).sum() for c in range(channels))
            mu = inside_sum / (mask.sum() * channels + 1e-10)
            for c in range(channels):
                values = sorted(((a[c] / (mu + 1e-10)) * (1 - mask)).flatten().tolist(),
                                reverse=True)
                weights = [d ** i for i in range(len(values))]
                g = sum(w * v for w, v in zip(weights, values, strict=False)) / sum(weights)
                bg_terms.append(math.log(1 + g / e))
            f = inside_sum.item()
            below = (min(f, c1) - c1) ** 2 / c1 ** 2
            if form == "l2" or f <= c1 + c2:
                above = (max(f, c2) - c2) ** 2 / c1 ** 2
            else:
                above = abs(f - (c1 + c2)) + 1
            fg_terms.append(below + above)
        per_sample.append(w1 * sum(bg_terms) / len(bg_terms) + w2 * sum(fg_terms) / len(fg_terms))
    return sum(per_sample) / batch


@pytest.mark.parametrize("form", ["l2", "hybrid"])
@pytest.mark.parametrize("scale", [0.01, 1.0, 40.0])
def test_matches_naive_implementation(generator, masks, form, scale):
    heatmaps = torch.randn(4, 2, 3, 32, 32, generator=generator, dtype=torch.float64) * scale / 100
    ours = isnet.heatmap_loss(heatmaps, masks, foreground_form=form)
    assert ours.item() == pytest.approx(naive_heatmap_loss(heatmaps, masks, form=form), rel=1e-9)


def test_matches_naive_with_other_settings(generator, masks):
    heatmaps = torch.randn(4, 1, 3, 32, 32, generator=generator, dtype=torch.float64) * 0.05
    ours = isnet.heatmap_loss(heatmaps, masks, background_weight=2.0, foreground_weight=0.5,
                              foreground_range=(0.5, 4.0), saturation=10.0, decay=0.5)
    naive = naive_heatmap_loss(heatmaps, masks, w1=2.0, w2=0.5, c1=0.5, c2=4.0, e=10.0, d=0.5)
    assert ours.item() == pytest.approx(naive, rel=1e-9)


def test_gwrp_limits_are_max_and_mean():
    values = torch.tensor([[1.0, 5.0, 3.0, 0.0]], dtype=torch.float64)
    assert global_weighted_rank_pooling(values, 0.0).item() == 5.0
    assert global_weighted_rank_pooling(values, 1.0).item() == pytest.approx(2.25)
    # d = 0.5: (5 + 0.5·3 + 0.25·1 + 0) / (1 + 0.5 + 0.25 + 0.125)
    assert global_weighted_rank_pooling(values, 0.5).item() == pytest.approx(6.75 / 1.875)


def _object_heatmap(inside=2.0, outside=0.0):
    heatmaps = torch.zeros(1, 1, 3, 8, 8, dtype=torch.float64)
    heatmaps[..., 2:6, 2:6] = inside / (3 * 16)  # total foreground relevance = inside
    heatmaps[..., 0, 0] = outside
    mask = torch.zeros(1, 1, 8, 8, dtype=torch.float64)
    mask[..., 2:6, 2:6] = 1
    return heatmaps, mask


def test_all_relevance_in_foreground_gives_zero_loss_inside_the_band():
    heatmaps, mask = _object_heatmap(inside=2.0)
    assert isnet.heatmap_loss(heatmaps, mask).item() == pytest.approx(0.0, abs=1e-12)
    assert isnet.background_share(heatmaps, mask).item() == 0.0


def test_moving_relevance_into_background_raises_the_loss():
    losses = [isnet.heatmap_loss(*_object_heatmap(inside=2.0, outside=o)).item()
              for o in (0.0, 0.01, 0.1, 1.0)]
    assert losses == sorted(losses) and losses[-1] > losses[0]


def test_foreground_band_penalises_too_little_and_too_much():
    # F = 0.5 < C1 = 1: w2 · (0.5 − 1)² / 1 = 3 · 0.25
    assert isnet.heatmap_loss(*_object_heatmap(inside=0.5)).item() == pytest.approx(0.75)
    # F = 30 > C2 = 25: l2 gives 3 · 25; hybrid (beyond C1 + C2 = 26) gives 3 · (4 + 1)
    assert isnet.heatmap_loss(*_object_heatmap(inside=30.0)).item() == pytest.approx(75.0)
    hybrid = isnet.heatmap_loss(*_object_heatmap(inside=30.0), foreground_form="hybrid")
    assert hybrid.item() == pytest.approx(15.0)


def test_background_share_by_hand():
    heatmaps, mask = _object_heatmap(inside=3.0, outside=-1.0)  # |−1| on 3 channels outside
    assert isnet.background_share(heatmaps, mask).item() == pytest.approx(3.0 / 6.0)


def test_masks_are_resized_and_binarised(generator):
    heatmaps = torch.randn(2, 1, 3, 8, 8, generator=generator, dtype=torch.float64)
    big = torch.zeros(2, 1, 32, 32, dtype=torch.float64)
    big[:, :, 8:24, 8:24] = 1
    small = torch.zeros(2, 1, 8, 8, dtype=torch.float64)
    small[:, :, 2:6, 2:6] = 1
    torch.testing.assert_close(prepare_masks(big, heatmaps), prepare_masks(small, heatmaps))
    torch.testing.assert_close(isnet.heatmap_loss(heatmaps, big),
                               isnet.heatmap_loss(heatmaps, small))


@pytest.mark.parametrize("bad, message", [
    (torch.full((2, 1, 8, 8), 0.5), "binary"),
    (torch.ones(3, 1, 8, 8), "samples"),
    (torch.ones(2, 2, 8, 8), "channels"),
    (torch.ones(2, 8, 8), "shape"),
    (torch.zeros(2, 1, 8, 8), "empty foreground"),
])
def test_bad_masks_get_clear_errors(bad, message):
    heatmaps = torch.ones(2, 1, 3, 8, 8)
    with pytest.raises(ValueError, match=message):
        isnet.heatmap_loss(heatmaps, bad)


def test_isnet_loss_is_the_convex_mix(generator, masks):
    logits = torch.randn(4, 3, generator=generator, dtype=torch.float64)
    labels = torch.tensor([0, 1, 2, 1])
    heatmaps = torch.randn(4, 3, 3, 32, 32, generator=generator, dtype=torch.float64) * 0.01
    terms = isnet.isnet_loss(logits, labels, heatmaps, masks, heat_weight=0.7)
    ce = torch.nn.functional.cross_entropy(logits, labels)
    torch.testing.assert_close(terms.classification, ce)
    torch.testing.assert_close(terms.total, 0.3 * ce + 0.7 * isnet.heatmap_loss(heatmaps, masks))
    with pytest.raises(ValueError, match="heat_weight"):
        isnet.isnet_loss(logits, labels, heatmaps, masks, heat_weight=1.5)


def naive_grow(mask: torch.Tensor, margin: int) -> torch.Tensor:
    """A pixel is foreground when any pixel within Chebyshev distance ``margin`` is; loops."""
    height, width = mask.shape
    grown = torch.zeros_like(mask)
    for i in range(height):
        for j in range(width):
            window = mask[max(0, i - margin): i + margin + 1, max(0, j - margin): j + margin + 1]
            grown[i, j] = float(window.max() > 0)
    return grown


@pytest.mark.parametrize("margin", [1, 2, 5])
def test_mask_margin_equals_the_loss_on_naively_grown_masks(generator, margin):
    mask = (torch.rand(3, 1, 12, 12, generator=generator, dtype=torch.float64) > 0.85).double()
    mask[:, :, 0, 0] = 1  # an object at the border too: the border adds nothing
    heatmaps = torch.randn(3, 2, 3, 12, 12, generator=generator, dtype=torch.float64)
    grown = torch.stack([naive_grow(m[0], margin) for m in mask])[:, None]
    torch.testing.assert_close(isnet.loss.grow_masks(mask, margin), grown)
    ours = isnet.heatmap_loss(heatmaps, mask, mask_margin=margin)
    assert ours.item() == pytest.approx(naive_heatmap_loss(heatmaps, grown), rel=1e-9)
    assert ours.item() != pytest.approx(isnet.heatmap_loss(heatmaps, mask).item(), rel=1e-3)


def test_mask_margin_forgives_relevance_along_the_edge_only():
    heatmaps = torch.zeros(1, 1, 3, 12, 12, dtype=torch.float64)
    heatmaps[..., 4:8, 4:8] = 2.0 / (3 * 16)  # F = 2, inside the band
    mask = torch.zeros(1, 1, 12, 12, dtype=torch.float64)
    mask[..., 4:8, 4:8] = 1
    edge, far = heatmaps.clone(), heatmaps.clone()
    edge[..., 2, 5] = 0.5  # 2 px above the object
    far[..., 0, 11] = 0.5  # a corner, 4 px away
    assert isnet.heatmap_loss(heatmaps, mask).item() == pytest.approx(0.0, abs=1e-12)
    assert isnet.heatmap_loss(edge, mask).item() > 0.01  # the paper's loss penalises both
    assert isnet.heatmap_loss(edge, mask, mask_margin=2).item() == pytest.approx(0.0, abs=1e-12)
    assert isnet.heatmap_loss(edge, mask, mask_margin=1).item() > 0.01
    assert isnet.heatmap_loss(far, mask, mask_margin=2).item() > 0.01


@pytest.mark.parametrize("bad", [-1, 1.5, True, "2"])
def test_bad_mask_margin_gets_a_clear_error(bad):
    heatmaps, mask = _object_heatmap(inside=2.0)
    with pytest.raises(ValueError, match="mask_margin"):
        isnet.heatmap_loss(heatmaps, mask, mask_margin=bad)
