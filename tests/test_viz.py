"""isnet.viz: one shared symmetric scale, diverging colours, overlays that keep the image."""

import numpy as np
import pytest
import torch

from isnet import viz


def test_relevance_map_sums_channels_and_accepts_explain_items():
    heat = torch.zeros(1, 3, 4, 5)
    heat[0, :, 1, 2] = torch.tensor([1.0, 2.0, -0.5])
    out = viz.relevance_map(heat)
    assert out.shape == (4, 5)
    assert out[1, 2] == pytest.approx(2.5)
    assert out.sum() == pytest.approx(2.5)
    with pytest.raises(ValueError, match="shape"):
        viz.relevance_map(np.zeros(7))


def test_shared_scale_is_the_largest_magnitude_of_the_group():
    a = np.array([[0.5, -2.0]])
    b = np.array([[1.0, 0.25]])
    assert viz.shared_scale([a, b]) == 2.0
    assert viz.shared_scale([np.zeros((3, 3))]) == 1.0  # no relevance: draws white, no 0-division
    many = np.concatenate([np.ones(999), [1000.0]])
    assert viz.shared_scale([many], percentile=99.0) == pytest.approx(1.0)


def test_colours_are_symmetric_and_zero_is_white():
    scale = 2.0
    rgb = viz.heatmap_to_rgb(np.array([[-2.0, 0.0, 2.0, 5.0]]), scale)
    assert rgb.dtype == np.uint8 and rgb.shape == (1, 4, 3)
    neg, zero, pos, beyond = rgb[0]
    assert zero.min() >= 250  # white (up to the colour map's 256-entry table)
    assert pos[0] > 200 and pos[2] < 50  # red for positive
    assert neg[2] > 200 and neg[0] < 50  # blue for negative
    assert tuple(beyond) == tuple(pos)  # saturates beyond the scale
    # mirror symmetry of the diverging map: R and B swap
    assert (int(neg[0]), int(neg[2])) == (int(pos[2]), int(pos[0]))


def test_same_relevance_same_colour_across_maps_on_a_shared_scale():
    a = np.array([[1.0, 0.0]])
    b = np.array([[4.0, 1.0]])
    scale = viz.shared_scale([a, b])
    assert np.array_equal(viz.heatmap_to_rgb(a, scale)[0, 0], viz.heatmap_to_rgb(b, scale)[0, 1])


def test_enlarging_keeps_blocks():
    rgb = viz.heatmap_to_rgb(np.array([[1.0, -1.0]]), 1.0, size=(4, 6))
    assert rgb.shape == (4, 6, 3)
    assert np.array_equal(rgb[:, :3], np.broadcast_to(rgb[0, 0], (4, 3, 3)))
    assert not np.array_equal(rgb[0, 0], rgb[0, 5])


def test_overlay_leaves_irrelevant_pixels_and_respects_opacity():
    image = np.full((4, 4, 3), 100, np.uint8)
    heat = np.zeros((2, 2))
    heat[0, 0] = 3.0
    out = viz.overlay(image, heat, scale=3.0, opacity=1.0)
    assert out.shape == (4, 4, 3) and out.dtype == np.uint8
    assert np.array_equal(out[2:, 2:], image[2:, 2:])  # zero relevance → image unchanged
    assert out[0, 0, 0] > 200 and out[0, 0, 2] < 50  # full relevance, full opacity → red
    assert np.array_equal(viz.overlay(image, heat, 3.0, opacity=0.0), image)


def test_as_rgb_handles_grey_float_and_channels_first():
    assert viz.as_rgb_uint8(np.zeros((3, 2))).shape == (3, 2, 3)
    chw = torch.ones(3, 5, 6)
    out = viz.as_rgb_uint8(chw)
    assert out.shape == (5, 6, 3) and out.max() == 255
    assert viz.as_rgb_uint8(np.zeros((2, 2, 4), np.uint8)).shape == (2, 2, 3)


def test_mask_overlay_distinguishes_foreground():
    image = np.full((2, 2, 3), 200, np.uint8)
    mask = np.array([[1, 0], [0, 0]])
    out = viz.mask_overlay(image, mask)
    assert out[0, 0, 1] > out[0, 0, 0]  # green tint on foreground
    assert out[1, 1].max() < 200  # background dimmed


def test_colorbar_runs_blue_to_red():
    bar = viz.colorbar(1.0, width=10, height=2)
    assert bar.shape == (2, 10, 3)
    assert bar[0, 0, 2] > bar[0, 0, 0] and bar[0, -1, 0] > bar[0, -1, 2]
