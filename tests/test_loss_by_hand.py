"""The loss module's edges, each value computed by hand (issue 35 item 5: the mutants of
``isnet/loss.py`` that the other tests let through; ``results/mutation/2026-12-06.json``).

Every case uses more than one sample with different values, so a reduction over the wrong axis
(the whole batch instead of each sample) cannot pass.
"""

from __future__ import annotations

import pytest
import torch

from isnet.loss import (
    background_share,
    global_weighted_rank_pooling,
    heatmap_loss,
    isnet_loss,
    prepare_masks,
)

# 2 × 2 maps (B, K=1, C=1, 2, 2); the foreground is the left column
LEFT_COLUMN = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]], dtype=torch.float64)  # (1, 2, 2)


def test_background_share_is_per_sample_and_zero_without_relevance():
    heatmaps = torch.tensor([[[1.0, 3.0], [0.0, 0.0]],     # outside 3 of 4 → 0.75
                             [[2.0, 0.0], [-2.0, -4.0]],   # |R|: outside 4 of 8 → 0.5
                             [[0.0, 0.0], [0.0, 0.0]]],    # no relevance → 0
                            dtype=torch.float64)[:, None, None]  # (3, 1, 1, 2, 2)
    masks = LEFT_COLUMN.expand(3, 1, 2, 2)
    torch.testing.assert_close(background_share(heatmaps, masks),
                               torch.tensor([0.75, 0.5, 0.0], dtype=torch.float64))


@pytest.mark.parametrize("heat_weight", [0.0, 1.0])
def test_isnet_loss_accepts_both_ends_of_the_mix(heat_weight):
    """P = 0 is plain cross-entropy, P = 1 the heatmap loss alone: both are valid settings."""
    terms = isnet_loss(*_two_sample_loss_inputs(), heat_weight=heat_weight)
    expected = terms.heatmap if heat_weight == 1.0 else terms.classification
    torch.testing.assert_close(terms.total, expected)


@pytest.mark.parametrize("decay", [-0.1, 1.0 + 1e-9, 1.5])
def test_gwrp_rejects_a_decay_outside_zero_to_one(decay):
    with pytest.raises(ValueError, match=r"decay must lie in \[0, 1\]"):
        global_weighted_rank_pooling(torch.ones(1, 3, dtype=torch.float64), decay)


def _two_sample_loss_inputs() -> tuple[torch.Tensor, ...]:
    """Logits (2, 2), labels (2,), heatmaps (2, 1, 1, 2, 2) and left-column masks (2, 1, 2, 2)."""
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    heatmaps = torch.tensor([[[1.0, 3.0], [0.0, 0.0]], [[2.0, 0.0], [2.0, 4.0]]],
                            dtype=torch.float64)[:, None, None]
    return logits, torch.tensor([0, 0]), heatmaps, LEFT_COLUMN.expand(2, 1, 2, 2)


def test_isnet_loss_mixes_with_the_papers_weight_by_default():
    """P = 0.7 unless given: total = 0.3·CE + 0.7·L."""
    terms = isnet_loss(*_two_sample_loss_inputs())
    torch.testing.assert_close(terms.total, 0.3 * terms.classification + 0.7 * terms.heatmap)


@pytest.mark.parametrize("heat_weight", [-0.1, 1.0 + 1e-9, 1.5])
def test_isnet_loss_rejects_a_weight_outside_zero_to_one(heat_weight):
    with pytest.raises(ValueError, match=r"heat_weight P must lie in \[0, 1\]"):
        isnet_loss(*_two_sample_loss_inputs(), heat_weight=heat_weight)


def test_isnet_loss_passes_its_extra_settings_to_the_heatmap_loss():
    """A narrow band and another decay change the heatmap term, and ``isnet_loss`` uses them."""
    logits, labels, heatmaps, masks = _two_sample_loss_inputs()
    settings = dict(foreground_range=(0.5, 2.0), decay=0.5, saturation=2.0)
    terms = isnet_loss(logits, labels, heatmaps, masks, **settings)
    torch.testing.assert_close(terms.heatmap, heatmap_loss(heatmaps, masks, **settings))
    assert abs(terms.heatmap - heatmap_loss(heatmaps, masks)) > 0.1


def test_gwrp_pools_the_last_axis_of_a_three_axis_tensor():
    """(2, 2, 3) → (2, 2). d = 0: the max of each row; d = 0.5: weights 1, 1/2, 1/4 over the
    row sorted in descending order, divided by 1.75 (e.g. 3, 2, 1 → 4.25 / 1.75)."""
    values = torch.tensor([[[3.0, 1.0, 2.0], [0.0, 7.0, 7.0]],
                           [[-1.0, -2.0, -3.0], [4.0, 0.0, 0.0]]], dtype=torch.float64)
    torch.testing.assert_close(global_weighted_rank_pooling(values, 0.0),
                               torch.tensor([[3.0, 7.0], [-1.0, 4.0]], dtype=torch.float64))
    by_hand = torch.tensor([[4.25, 10.5], [-2.75, 4.0]], dtype=torch.float64) / 1.75
    torch.testing.assert_close(global_weighted_rank_pooling(values, 0.5), by_hand)


def test_gwrp_keeps_every_term_float64_can_see():
    """Equal values pool to themselves. With d = 0.001 the weights 1, 1e-3, …, 1e-12 all count
    at float64 precision: leaving out the 1e-9 term would move the result by 1e-9."""
    pooled = global_weighted_rank_pooling(torch.ones(2, 8, dtype=torch.float64), 0.001)
    torch.testing.assert_close(pooled, torch.ones(2, dtype=torch.float64), rtol=1e-12, atol=0)


def test_gwrp_builds_its_weights_on_the_values_device():
    """The rank weights live where the values do ('meta' stands in for a GPU here)."""
    values = torch.ones(2, 8, dtype=torch.float64, device="meta")
    assert global_weighted_rank_pooling(values, 0.5).device.type == "meta"


def _two_sample_heatmaps() -> tuple[torch.Tensor, torch.Tensor]:
    """Heatmaps (2, 1, 1, 2, 2) and left-column masks (2, 1, 2, 2)."""
    return _two_sample_loss_inputs()[2:]


@pytest.mark.parametrize(("settings", "message"), [
    (dict(foreground_range=(0.0, 1.0)), r"foreground_range must satisfy 0 < C1 <= C2"),
    (dict(foreground_range=(2.0, 1.0)), r"foreground_range must satisfy 0 < C1 <= C2"),
    (dict(saturation=0.0), r"saturation E must be > 0"),
    (dict(foreground_form="l3"), r"foreground_form must be 'l2' or 'hybrid'"),
])
def test_heatmap_loss_rejects_bad_settings_by_name(settings, message):
    with pytest.raises(ValueError, match=message):
        heatmap_loss(*_two_sample_heatmaps(), **settings)


def test_a_band_of_one_value_is_allowed():
    """C1 = C2 = 4: sample 0 (F = 1) pays (1 − 4)²/16 = 9/16, sample 1 (F = 4) nothing;
    with the background term off (w₁ = 0) and w₂ = 1 the mean is 9/32."""
    loss = heatmap_loss(*_two_sample_heatmaps(), foreground_range=(4.0, 4.0),
                        background_weight=0.0, foreground_weight=1.0)
    torch.testing.assert_close(loss, torch.tensor(9 / 32, dtype=torch.float64))


def test_half_precision_heatmaps_are_scored_in_float32():
    heatmaps, masks = _two_sample_heatmaps()
    loss = heatmap_loss(heatmaps.half(), masks)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, heatmap_loss(heatmaps.float(), masks.float()))


def test_one_empty_mask_in_a_batch_is_named():
    heatmaps, masks = _two_sample_heatmaps()
    masks = torch.stack([masks[0], torch.zeros_like(masks[1])])
    with pytest.raises(ValueError, match=r"samples \[1\] have an empty foreground mask; the "
                                         r"heatmap loss needs at least one foreground pixel"):
        heatmap_loss(heatmaps, masks)


def test_an_infinite_relevance_counts_as_the_largest_finite_one():
    """+inf becomes the batch's largest finite |R| (0.4 here, every value below 1), not more."""
    heatmaps, masks = _two_sample_heatmaps()
    small = heatmaps / 10
    with_inf, replaced = small.clone(), small.clone()
    with_inf[0, 0, 0, 0, 1] = float("inf")
    replaced[0, 0, 0, 0, 1] = 0.4
    torch.testing.assert_close(heatmap_loss(with_inf, masks), heatmap_loss(replaced, masks))


def test_a_nan_relevance_counts_as_none():
    heatmaps, masks = _two_sample_heatmaps()
    with_nan, zero = heatmaps.clone(), heatmaps.clone()
    with_nan[1, 0, 0, 0, 1] = float("nan")
    zero[1, 0, 0, 0, 1] = 0.0
    torch.testing.assert_close(heatmap_loss(with_nan, masks), heatmap_loss(zero, masks))


def test_the_hybrid_band_is_quadratic_up_to_c1_plus_c2():
    """Band [2, 2.5], hybrid: sample 0 (F = 1) pays (1 − 2)²/2² = 0.25 below the band; sample 1
    (F = 4 ≤ C1 + C2 = 4.5) pays (4 − 2.5)²/2² = 0.5625 above it; mean 0.40625."""
    loss = heatmap_loss(*_two_sample_heatmaps(), foreground_range=(2.0, 2.5),
                        foreground_form="hybrid", background_weight=0.0, foreground_weight=1.0)
    torch.testing.assert_close(loss, torch.tensor(0.40625, dtype=torch.float64))


def _resized(mask_rows: list[list[float]], height: int, width: int) -> torch.Tensor:
    """prepare_masks of one (1, 1, h, w) mask for heatmaps (1, 1, 1, height, width) → (H, W)."""
    mask = torch.tensor(mask_rows, dtype=torch.float64)[None, None]
    heatmaps = torch.zeros(1, 1, 1, height, width, dtype=torch.float64)
    return prepare_masks(mask, heatmaps)[0, 0, 0]


def test_a_larger_mask_is_shrunk_by_averaging():
    """Any foreground pixel in a block makes the block foreground (average pooling, then > 0),
    whichever side is larger; nearest sampling would have missed the odd rows and columns."""
    one_pixel = [[0.0] * 4 for _ in range(4)]
    one_pixel[1][1] = 1.0
    assert _resized(one_pixel, 2, 2).tolist() == [[1.0, 0.0], [0.0, 0.0]]
    odd_row = [[0.0, 0.0], [1.0, 1.0]] + [[0.0, 0.0]] * 6  # 8 × 2, row 1
    assert _resized(odd_row, 4, 2).tolist() == [[1.0, 1.0]] + [[0.0, 0.0]] * 3
    odd_column = [[0.0, 1.0, 0.0, 0.0]] * 4  # 4 × 4, column 1
    assert _resized(odd_column, 4, 2).tolist() == [[1.0, 0.0]] * 4


def test_a_mask_smaller_on_one_side_is_resized_by_nearest_sampling():
    """8 × 1 to 4 × 2: nearest sampling reads rows 0, 2, 4, 6, so row 1 alone disappears; a
    smaller 2 × 2 mask grows into 2 × 2 blocks."""
    odd_row = [[0.0], [1.0]] + [[0.0]] * 6
    assert _resized(odd_row, 4, 2).tolist() == [[0.0, 0.0]] * 4
    grown = _resized([[1.0, 0.0], [0.0, 1.0]], 4, 4)
    assert grown.tolist() == [[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0],
                              [0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]]


def test_masks_take_the_heatmaps_dtype():
    masks = torch.ones(2, 1, 2, 2, dtype=torch.float32)
    assert prepare_masks(masks, torch.zeros(2, 1, 1, 2, 2, dtype=torch.float64)).dtype \
        == torch.float64


@pytest.mark.parametrize(("masks", "message"), [
    (torch.ones(3, 1, 2, 2), r"masks hold 3 samples but heatmaps hold 2"),
    (torch.ones(2, 2, 5, 5), r"masks need 1 or 3 channels, got 2"),
    (torch.full((2, 1, 2, 2), 0.5), r"masks must be binary \(0 = background, 1 = foreground\); "
                                    r"threshold them first, e\.g\. \(mask > 0\.5\)\.float\(\)"),
])
def test_bad_masks_are_named_with_their_sizes(masks, message):
    with pytest.raises(ValueError, match=message):
        prepare_masks(masks, torch.zeros(2, 1, 3, 2, 2))


def test_per_channel_masks_apply_to_their_own_channel():
    """Masks (1, 3, 1, 2) against heatmaps (1, 1, 3, 1, 2) of ones: channel 0 keeps its left
    pixel, channel 1 its right one, channel 2 both, so 2 of the 6 units lie outside: 1/3."""
    masks = torch.tensor([[[[1.0, 0.0]], [[0.0, 1.0]], [[1.0, 1.0]]]], dtype=torch.float64)
    share = background_share(torch.ones(1, 1, 3, 1, 2, dtype=torch.float64), masks)
    torch.testing.assert_close(share, torch.tensor([1 / 3], dtype=torch.float64))
