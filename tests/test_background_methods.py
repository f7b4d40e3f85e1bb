"""Issue 33's mask-based background baselines: the swap, the random backgrounds, the
consistency term, training, checkpoints explained by the app, and the robustness columns."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import isnet
from isnet.data.bias.background_random import RANDOM_KINDS, randomise_backgrounds
from isnet.data.bias.background_swap import batch_generator, swap_backgrounds
from isnet.data.bias.config import BIAS_KINDS
from isnet.models.densenet import tiny_densenet
from isnet.training.config import TrainConfig
from isnet.training.experiment import ExperimentData, evaluation_set
from isnet.training.loop import build_network, make_optimizer, train_step
from isnet.training.methods import create_network
from isnet.training.methods.swap_consistency import symmetric_kl
from isnet.training.robustness import robustness
from tests.conftest import biased_batch

NEW_METHODS = ("background_swap", "background_random", "isnet_swap", "swap_consistency")


def coloured_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Four 8×8 images: background of image i is the constant (i + 1)/10, its object (a
    centred square whose size grows with i) is 0.9 + i/100; image 3's object fills the frame."""
    images = torch.empty(4, 3, 8, 8, dtype=torch.float64)
    masks = torch.zeros(4, 1, 8, 8, dtype=torch.float64)
    for i, (low, high) in enumerate(((3, 5), (2, 6), (1, 7), (0, 8))):
        images[i] = (i + 1) / 10
        masks[i, :, low:high, low:high] = 1
        images[i, :, low:high, low:high] = 0.9 + i / 100
    return images, masks


# --- the swap ------------------------------------------------------------------------------------

def test_swap_keeps_the_foreground_bit_for_bit():
    images, masks, _ = biased_batch(8)
    swapped = swap_backgrounds(images, masks, torch.Generator().manual_seed(1)).images
    inside = masks.bool().expand_as(images)
    assert torch.equal(swapped[inside], images[inside])
    assert not torch.equal(swapped[~inside], images[~inside])  # the backgrounds did change


def test_swap_takes_the_background_the_seeded_draw_names():
    images, masks = coloured_batch()
    result = swap_backgrounds(images, masks, torch.Generator().manual_seed(0))
    # the seeded draw (generator seed 0, read once): image 0 ← 1, 1 ← 2, 2 ← 1; image 3 has no
    # background, so it neither takes nor gives one
    assert result.donors.tolist() == [1, 2, 1, -1] and result.passed_through == 1
    for i, donor in enumerate(result.donors.tolist()[:3]):
        background = ~masks[i, 0].bool()
        donor_background = ~masks[donor, 0].bool()
        taken = result.images[i, :, background & donor_background]
        assert torch.all(taken == (donor + 1) / 10)  # the donor's own background pixels
        holes = result.images[i, :, background & ~donor_background]
        assert torch.allclose(holes, torch.full_like(holes, (donor + 1) / 10))  # its mean colour
    assert torch.equal(result.images[3], images[3])  # no background: passed through
    again = swap_backgrounds(images, masks, torch.Generator().manual_seed(0))
    assert torch.equal(again.images, result.images)  # seeded


def test_swap_fills_the_donor_object_with_its_mean_background_colour():
    images, masks = coloured_batch()
    images[1, :, 0, :] = 0.6  # image 1's background is no longer one colour
    result = swap_backgrounds(images, masks, torch.Generator().manual_seed(0))
    assert int(result.donors[0]) == 1  # image 0 ← image 1, whose object is the larger
    hole = ~masks[0, 0].bool() & masks[1, 0].bool()  # where image 1's object would show
    mean = images[1][:, ~masks[1, 0].bool()].mean(1)  # (3,) its mean background colour
    assert hole.sum() == 12 and not torch.allclose(mean, images[1, :, 0, 0])
    assert torch.allclose(result.images[0][:, hole], mean[:, None].expand(3, 12))
    shared = ~masks[0, 0].bool() & ~masks[1, 0].bool()
    assert torch.equal(result.images[0][:, shared], images[1][:, shared])


def test_an_image_without_donor_passes_through_and_is_counted():
    images, masks = coloured_batch()
    pair = swap_backgrounds(images[[0, 3]], masks[[0, 3]], torch.Generator().manual_seed(0))
    assert pair.donors.tolist() == [-1, -1] and pair.passed_through == 2
    assert torch.equal(pair.images, images[[0, 3]])


def test_batch_generator_is_seeded_by_the_run_seed_and_the_masks():
    _, masks, _ = biased_batch(4)
    draw = [torch.rand(3, generator=batch_generator(seed, m)) for seed, m in
            ((0, masks), (0, masks), (1, masks), (0, 1 - masks))]
    assert torch.equal(draw[0], draw[1])
    assert not torch.equal(draw[0], draw[2]) and not torch.equal(draw[0], draw[3])


def test_random_backgrounds_keep_the_object_and_use_every_kind():
    images, masks, _ = biased_batch(8)
    masks[7] = 1  # no background
    result = randomise_backgrounds(images, masks, torch.Generator().manual_seed(3))
    inside = masks.bool().expand_as(images)
    assert torch.equal(result.images[inside], images[inside])
    assert torch.equal(result.images[7], images[7]) and result.passed_through >= 1
    big = randomise_backgrounds(*biased_batch(32)[:2], torch.Generator().manual_seed(0))
    assert set(big.kinds.tolist()) == set(range(len(RANDOM_KINDS)))
    tint = int((big.kinds == RANDOM_KINDS.index("tint")).nonzero()[0])
    background = big.images[tint][:, 0, 0]  # a tint is one colour over the whole background
    assert torch.all(big.images[tint][:, :8, :8] == background[:, None, None])


# --- the consistency term ----------------------------------------------------------------------

def test_symmetric_kl_is_zero_for_identical_predictions():
    logits = torch.randn(5, 4, dtype=torch.float64)
    assert torch.allclose(symmetric_kl(logits, logits.clone()), torch.zeros(5, dtype=torch.float64))


def test_symmetric_kl_on_a_hand_computed_case():
    # p = softmax(0, ln 3) = (1/4, 3/4), q = (1/2, 1/2):
    # KL(p‖q) + KL(q‖p) = Σ (p − q)(ln p − ln q) = (−1/4)(−ln 2) + (1/4)(ln 3/2) = ln(3)/4
    logits = torch.tensor([[0.0, math.log(3.0)]], dtype=torch.float64)
    value = symmetric_kl(logits, torch.zeros(1, 2, dtype=torch.float64))
    assert value.item() == pytest.approx(math.log(3.0) / 4, abs=1e-12)


# --- training ----------------------------------------------------------------------------------

def new_method_config(method: str) -> TrainConfig:
    return TrainConfig(model="tiny_densenet", num_classes=3, method=method, epochs=1,
                       batch_size=6, input_size=32, seed=7, learning_rate=1e-2)


@pytest.mark.parametrize("method", NEW_METHODS)
def test_each_new_method_lowers_its_loss_in_float64(method):
    config = new_method_config(method)
    torch.manual_seed(11)
    model = create_network(config).double()
    network, optimizer = build_network(model, config), make_optimizer(model, config)
    batch = biased_batch(6)
    losses = [train_step(network, batch, optimizer, config)["loss"] for _ in range(6)]
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]


@pytest.mark.parametrize("method", NEW_METHODS)
def test_new_methods_are_training_methods_and_isnet_swap_takes_the_bundled_recipe(method):
    from isnet.training.recipes import bundled_recipe

    assert method in isnet.TRAINING_METHODS
    recipe = bundled_recipe(new_method_config(method))
    assert (recipe.optimizer == "adamw") == (method == "isnet_swap")


# --- robustness columns ------------------------------------------------------------------------

class BackgroundBlind(nn.Module):
    """Test double: finds each input's clean test image by its object pixels (which no planted
    kind changes), zeroes everything outside that image's mask, then classifies with a tiny
    DenseNet. It ignores the background by construction."""

    def __init__(self, clean: torch.Tensor, masks: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("clean", clean.double())
        self.register_buffer("masks", masks.double())
        torch.manual_seed(0)
        self.classifier = tiny_densenet(num_classes=10).double()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        objects = []
        for image in images:
            same = ((image * self.masks) == (self.clean * self.masks)).flatten(1).all(1)
            mask = self.masks[int(same.nonzero()[0])]
            objects.append(image * mask)
        return self.classifier(torch.stack(objects))


def test_a_model_that_ignores_the_background_drops_zero_points_everywhere():
    data = ExperimentData(size=32, train_limit=8, val_limit=1, test_limit=12, seed=3)
    clean = evaluation_set(data, "unbiased")
    model = BackgroundBlind(clean.images, clean.masks).eval()
    result = robustness(model, data, BIAS_KINDS)
    assert set(result) == set(BIAS_KINDS)
    assert all(values["drop_points"] == 0 for values in result.values())
