"""Specification of bias injection (isnet.data.bias, isnet.data.bias.marks) and splits
(isnet.data.bias.splits).

What must hold: the foreground never changes (every kind, every placement, masks covering
almost everything); the mark shows the chosen class at the chosen rate; confounding marks never
show the label; the same seed gives the same bytes; "no room" is an error or an explicit skip.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from isnet.data.bias import marks as bias_marks
from isnet.data.bias.config import BIAS_KINDS, CORNERS, BiasConfig, BiasPlacementError
from isnet.data.bias.inject import confounding_class, draw_marks, inject_bias
from isnet.data.bias.splits import make_split

SIZE = 48
MARK_KINDS = ("shape", "decoy", "text")


def _batch(count: int, seed: int = 7, dtype: torch.dtype = torch.float32):
    """Random images with a random-sized central blob as foreground, and random labels."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(count, 3, SIZE, SIZE, generator=generator, dtype=dtype)
    rows, cols = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
    radius = 8 + torch.rand(count, generator=generator) * 8  # (N,)
    distance = ((rows - SIZE / 2) ** 2 + (cols - SIZE / 2) ** 2).sqrt()  # (H, W)
    masks = (distance[None] < radius[:, None, None]).to(dtype)[:, None]  # (N, 1, H, W)
    labels = torch.randint(0, 10, (count,), generator=generator)
    return images, masks, labels


def _almost_full_mask(free_rows: int) -> torch.Tensor:
    """Foreground everywhere except the bottom ``free_rows`` rows: (1, H, W)."""
    mask = torch.ones(1, SIZE, SIZE)
    mask[:, SIZE - free_rows :] = 0
    return mask


@pytest.mark.parametrize("kind", BIAS_KINDS)
@pytest.mark.parametrize("position", ["corner", "random"])
def test_foreground_is_bit_identical_and_background_changes(kind, position):
    images, masks, labels = _batch(24)
    config = BiasConfig(kind=kind, position=position, opacity=0.8, on_no_room="skip")
    out, skipped = draw_marks(images, masks, labels.numpy(), 10, config, seed=3)
    foreground = masks.expand_as(images) > 0
    assert torch.equal(out[foreground], images[foreground])
    assert not skipped.any()
    changed = (out != images).any(1)  # (N, H, W)
    assert changed.flatten(1).any(1).all(), "every image should carry a visible mark"
    assert out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("kind", BIAS_KINDS)
@pytest.mark.parametrize("free_rows", [0, 1, 4])
def test_masks_covering_almost_everything_never_get_marked(kind, free_rows):
    image = torch.rand(3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    mask = _almost_full_mask(free_rows)
    result = inject_bias(image, mask, 3, 10, BiasConfig(kind=kind, on_no_room="skip"), seed=0)
    assert torch.equal(result.image[:, : SIZE - free_rows], image[:, : SIZE - free_rows])
    region_kind = kind in ("tint", "texture")
    # a 7 px mark + 1 px margin cannot fit into 0-4 free rows; a tint/texture can use any row
    assert result.skipped == (free_rows == 0 or not region_kind)
    assert result.mark_class == (-1 if result.skipped else 3)
    if result.skipped:
        assert torch.equal(result.image, image)
        with pytest.raises(BiasPlacementError, match="no room"):
            inject_bias(image, mask, 3, 10, kind=kind)
    elif kind == "tint":
        assert not torch.equal(result.image[:, SIZE - free_rows :], image[:, SIZE - free_rows :])


def test_placement_error_is_a_value_error_and_says_how_to_fix():
    image, mask = torch.rand(3, SIZE, SIZE), torch.ones(1, SIZE, SIZE)
    with pytest.raises(ValueError, match="on_no_room='skip'"):
        inject_bias(image, mask, 0, 2, kind="decoy")


@pytest.mark.parametrize("corner", CORNERS)
def test_corner_mark_sits_in_its_corner_when_the_corner_is_free(corner):
    image, mask = torch.zeros(3, SIZE, SIZE), torch.zeros(1, SIZE, SIZE)
    mask[:, 16:32, 16:32] = 1
    out = inject_bias(image, mask, 0, 10, kind="decoy", corner=corner, size=6, margin=2).image
    rows, cols = torch.nonzero(out.sum(0)).T
    expected_rows = (2, 7) if corner.startswith("top") else (SIZE - 8, SIZE - 3)
    expected_cols = (2, 7) if corner.endswith("left") else (SIZE - 8, SIZE - 3)
    assert (int(rows.min()), int(rows.max())) == expected_rows
    assert (int(cols.min()), int(cols.max())) == expected_cols


def test_corner_mark_moves_to_the_nearest_free_place_and_keeps_its_margin():
    image, mask = torch.zeros(3, SIZE, SIZE), torch.zeros(1, SIZE, SIZE)
    mask[:, :20, :20] = 1  # the top-left corner is object
    out = inject_bias(image, mask, 0, 10, kind="decoy", size=6, margin=2).image
    rows, cols = torch.nonzero(out.sum(0)).T
    # nearest fitting place to (0, 0): just right of the object, or just below it
    assert (int(rows.min()), int(cols.min())) in {(2, 22), (22, 2)}


def test_decoy_grey_level_encodes_the_class_it_was_asked_to_show():
    images, masks, labels = _batch(40)
    split = make_split(images * 0, masks, labels, 10, "biased",
                              BiasConfig(kind="decoy", strength=0.5), seed=5)
    for index in range(40):
        drawn = split.images[index].amax(dim=(1, 2))  # brightest pixel per channel: the patch
        gray = bias_marks.decoy_gray(int(split.mark_classes[index]), 10)
        assert torch.allclose(drawn, torch.full((3,), gray)), index


def test_each_class_has_its_own_mark():
    for kind in ("shape", "text"):
        stamps = [np.asarray(_stamp_of(kind, c)) for c in range(8)]
        colors = {bias_marks.class_color(c) for c in range(8)}
        assert len(colors) == 8
        for first in range(8):
            for second in range(first + 1, 8):
                same_shape = stamps[first].shape == stamps[second].shape
                same = same_shape and np.allclose(stamps[first], stamps[second])
                assert not same, (kind, first, second)


def _stamp_of(kind: str, mark_class: int) -> np.ndarray:
    """The alpha map drawn for one class (via the public drawing functions)."""
    if kind == "shape":
        return bias_marks.shape_stamp(bias_marks.SHAPE_NAMES[mark_class], 16)
    return bias_marks.text_stamp(bias_marks.default_text(mark_class), 16)


def test_default_texts_are_letters_then_pairs():
    assert [bias_marks.default_text(c) for c in (0, 1, 25, 26, 27)] == ["A", "B", "Z", "AA", "AB"]


@pytest.mark.parametrize("strength", [1.0, 0.7, 0.0])
def test_marks_agree_with_labels_at_the_chosen_rate(strength):
    images, masks, labels = _batch(400)
    split = make_split(images, masks, labels, 10, "biased",
                              BiasConfig(kind="decoy", strength=strength), seed=11)
    rate = float((split.mark_classes == labels).float().mean())
    tolerance = 4 * (strength * (1 - strength) / 400) ** 0.5  # four binomial standard deviations
    assert abs(rate - strength) <= tolerance + 1e-9
    disagreeing = split.mark_classes[split.mark_classes != labels]
    if strength < 1:  # the wrong marks spread over the other classes
        assert len(set(disagreeing.tolist())) >= 8


@pytest.mark.parametrize("num_classes", [2, 3, 10, 12])
def test_confounding_class_is_a_fixed_permutation_without_fixed_points(num_classes):
    labels = torch.arange(num_classes)
    confounded = confounding_class(labels, num_classes)
    assert sorted(confounded.tolist()) == labels.tolist()
    assert (confounded != labels).all()
    assert [confounding_class(c, num_classes) for c in range(num_classes)] == confounded.tolist()


def test_confounding_split_never_shows_the_label_and_unbiased_changes_nothing():
    images, masks, labels = _batch(300)
    confounding = make_split(images, masks, labels, 10, "confounding",
                                    BiasConfig(kind="shape", size=6, on_no_room="skip"))
    shown = confounding.mark_classes[~confounding.skipped]
    assert len(shown) == 300 and (shown != labels).all()
    assert torch.equal(shown, confounding_class(labels, 10))
    unbiased = make_split(images, masks, labels, 10, "unbiased")
    assert torch.equal(unbiased.images, images)
    assert (unbiased.mark_classes == -1).all()


def test_same_seed_same_bytes_other_seed_other_bytes():
    images, masks, labels = _batch(64)
    config = BiasConfig(kind="text", position="random", strength=0.5)
    first = make_split(images, masks, labels, 10, "biased", config, seed=4).images
    again = make_split(images.clone(), masks.clone(), labels.clone(), 10, "biased", config,
                       seed=4).images
    other = make_split(images, masks, labels, 10, "biased", config, seed=5).images
    assert first.numpy().tobytes() == again.numpy().tobytes()
    assert not torch.equal(first, other)
    single = [inject_bias(images[0], masks[0], 1, 10, kind="shape", position="random", seed=9).image
              for _ in range(2)]
    assert single[0].numpy().tobytes() == single[1].numpy().tobytes()


def test_inject_bias_matches_apply_bias_and_keeps_dtype():
    images, masks, _ = _batch(1, dtype=torch.float64)
    out = inject_bias(images[0], masks[0], 2, 4, kind="texture", seed=1, opacity=0.5).image
    result = inject_bias(images[0], masks[0], 2, 4, BiasConfig(kind="texture", opacity=0.5), seed=1)
    assert out.dtype == torch.float64 and torch.equal(out, result.image)
    assert result.agrees and result.mark_class == 2
    forced = inject_bias(images[0], masks[0], 2, 4, BiasConfig(), mark_class=3)
    assert forced.mark_class == 3 and not forced.agrees


def test_opacity_zero_changes_nothing_and_grey_images_work():
    images, masks, labels = _batch(4)
    out, _ = draw_marks(images, masks, labels.numpy(), 10, BiasConfig(opacity=0.0))
    assert torch.equal(out, images)
    grey, _ = draw_marks(images[:, :1], masks, labels.numpy(), 10, BiasConfig(kind="tint"))
    assert grey.shape == (4, 1, SIZE, SIZE) and not torch.equal(grey, images[:, :1])


@pytest.mark.parametrize(("options", "message"), [
    ({"kind": "sticker"}, "kind must be one of"),
    ({"strength": 1.5}, r"strength must lie in \[0, 1\]"),
    ({"corner": "middle"}, "corner must be one of"),
    ({"size": -1}, "size must be"),
    ({"color": (2.0, 0.0, 0.0)}, "color must be three numbers"),
    ({"texts": ("A", "")}, "texts must be non-empty"),
    ({"wobble": 1}, "unknown BiasConfig option"),
])
def test_bad_options_name_the_field(options, message):
    image, mask = torch.rand(3, SIZE, SIZE), torch.zeros(1, SIZE, SIZE)
    with pytest.raises(ValueError, match=message):
        inject_bias(image, mask, 0, 10, **options)


def test_bad_tensors_are_refused_with_their_shape():
    image = torch.rand(3, SIZE, SIZE)
    with pytest.raises(ValueError, match="masks must be a tensor of shape"):
        inject_bias(image, torch.zeros(3, SIZE, SIZE), 0, 10)
    with pytest.raises(ValueError, match="only 0"):
        inject_bias(image, torch.full((1, SIZE, SIZE), 0.5), 0, 10)
    with pytest.raises(ValueError, match="label must lie"):
        inject_bias(image, torch.zeros(1, SIZE, SIZE), 10, 10)
    with pytest.raises(ValueError, match="texts has 2 entries"):
        inject_bias(image, torch.zeros(1, SIZE, SIZE), 5, 10, kind="text", texts=("L", "R"))


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(),
                    reason="dataset-fashion-mnist not installed")
def test_bias_grid_command_writes_a_picture_and_refuses_to_overwrite(tmp_path):
    import matplotlib.image

    from scripts.bias_grid import main

    out = tmp_path / "grid.png"
    assert main(["--out", str(out)]) == 0
    picture = matplotlib.image.imread(out)
    assert picture.shape[0] > 300 and picture.shape[1] > 3 * picture.shape[0] / 2
    assert main(["--out", str(out)]) == 1  # exists, no --force
