"""The VGG family's own checks: torchvision parity, zennit oracle, dropout, adaptive pooling.

What every family must do (LRP-0 = gradient×input, conservation, gradients, checkpoints, …) is
the family contract, run on tiny_vgg by tests/test_family_contract.py.
"""

from __future__ import annotations

import pytest
import torch
import torchvision
from zennit.torchvision import VGGCanonizer

import isnet
from isnet.io.checkpoints import load_checkpoint
from isnet.lrp.vgg import adaptive_avg_pool_transpose
from isnet.models import create_model
from isnet.models.vgg import VGG, architecture_from_state_dict, tiny_vgg
from tests.conftest import SEED, randomize_batchnorm
from tests.lrp_oracles import (
    correlation,
    gradient_times_input,
    relative_error,
    zennit_relevance,
    zero_biases,
)


def _random(model: torch.nn.Module, generator: torch.Generator) -> torch.nn.Module:
    """float64, eval, random BatchNorm statistics and random conv/linear biases."""
    model = randomize_batchnorm(model.double(), generator).eval()
    for module in model.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            module.bias.data.copy_((torch.rand(module.bias.shape, generator=generator,
                                               dtype=torch.float64) - 0.5) * 0.2)
    return model


def _torchvision_vgg(name: str, ours: VGG) -> torch.nn.Module:
    """torchvision's own VGG class holding ``ours``'s weights (float64, eval).

    Built on the meta device and filled by ``load_state_dict``: no time is spent initialising
    weights that are overwritten. The classifier is swapped for one of ``ours``'s width (same
    layout: Linear, ReLU, Dropout, Linear, ReLU, Dropout, Linear), so narrow test classifiers fit.
    """
    hidden, classes = ours.arch["hidden"], ours.num_classes
    with torch.device("meta"):
        theirs = getattr(torchvision.models, name)(weights=None, num_classes=classes,
                                                   init_weights=False)
        theirs.classifier = torch.nn.Sequential(
            torch.nn.Linear(512 * 7 * 7, hidden), torch.nn.ReLU(True), torch.nn.Dropout(),
            torch.nn.Linear(hidden, hidden), torch.nn.ReLU(True), torch.nn.Dropout(),
            torch.nn.Linear(hidden, classes))
    theirs = theirs.to_empty(device="cpu").double()
    theirs.load_state_dict(ours.state_dict())
    return theirs.eval()


@pytest.fixture
def tiny(generator) -> VGG:
    """tiny_vgg (with BatchNorm, 2×2 pooled size, 16 hidden units), float64, eval."""
    torch.manual_seed(SEED)
    return _random(tiny_vgg(num_classes=3), generator)


@pytest.fixture
def tiny_plain(generator) -> VGG:
    """A tiny VGG without BatchNorm whose 2×2 feature map is pooled up to 3×3 (overlapping)."""
    torch.manual_seed(SEED)
    return _random(VGG(config=(4, "M", 8, "M", 8, "M", 8, "M"), num_classes=3, hidden=8,
                       pool_size=3), generator)


@pytest.mark.parametrize("name", ["vgg11", "vgg16_bn"])
def test_keys_and_shapes_are_torchvisions(name):
    with torch.device("meta"):
        theirs = getattr(torchvision.models, name)(weights=None, init_weights=False)
        ours = create_model(name)
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == \
        [(k, v.shape) for k, v in theirs.state_dict().items()]
    assert architecture_from_state_dict(theirs.state_dict()) == ours.arch


@pytest.mark.parametrize("name", ["vgg11", "vgg16_bn"])
def test_torchvision_forward_with_our_weights_gives_equal_logits(name, generator):
    torch.manual_seed(0)
    ours = _random(create_model(name, num_classes=7, hidden=32), generator)
    theirs = _torchvision_vgg(name, ours)
    x = torch.rand(1, 3, 32, 32, generator=generator, dtype=torch.float64)
    torch.testing.assert_close(ours(x), theirs(x))
    torch.testing.assert_close(ours.forward_trace(x)[0], theirs(x))


def test_lrp_zero_equals_gradient_times_input_with_overlapping_pooling(tiny_plain, images):
    """(tiny_vgg: the family contract, tests/family_contract.py.)"""
    model = tiny_plain
    classes = torch.tensor([0, 1, 2, 0])
    _, heatmaps = isnet.explain(model, images, classes, epsilon=1e-12, zb=False)
    torch.testing.assert_close(heatmaps[:, 0], gradient_times_input(model, images, classes),
                               rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("hidden", [64, pytest.param(4096, marks=pytest.mark.slow)])
def test_lrp_zero_equals_gradient_times_input_on_vgg16_bn(hidden, generator):
    """The full vgg16_bn (hidden=4096, slow) and the same features with a narrow classifier."""
    torch.manual_seed(1)
    model = _random(isnet.create_model("vgg16_bn", num_classes=5, hidden=hidden), generator)
    x = torch.rand(2, 3, 48, 48, generator=generator, dtype=torch.float64)
    classes = torch.tensor([3, 1])
    _, heatmaps = isnet.explain(model, x, classes, epsilon=1e-12, zb=False)
    assert correlation(heatmaps[:, 0], gradient_times_input(model, x, classes)) >= 0.99999


def test_train_mode_walk_uses_the_forward_passs_dropout_mask(tiny_plain, images):
    tiny_plain.train()  # dropout active (no BatchNorm, so the gradient is the plain one)
    classes = torch.tensor([0, 1, 2, 0])
    torch.manual_seed(3)
    _, heatmaps = isnet.explain(tiny_plain, images, classes, epsilon=1e-12, zb=False)
    torch.manual_seed(3)  # the same dropout masks
    reference = gradient_times_input(tiny_plain, images, classes)
    torch.testing.assert_close(heatmaps[:, 0], reference, rtol=1e-7, atol=1e-10)
    _, trace = tiny_plain.forward_trace(images)
    assert (trace.hidden_dropped[0] == 0).any()  # dropout did drop


@pytest.mark.parametrize("name", ["vgg11", pytest.param("vgg16_bn", marks=pytest.mark.slow)])
@pytest.mark.parametrize("zb", [False, True])
def test_matches_zennit_epsilon_composite_with_vgg_canonizer(name, zb, generator):
    """zennit on torchvision's own model with our weights: same heatmaps to 1e-4 relative.

    One convention differs: zennit's ZBox leaves the first layer's bias out of z^B (it clamps the
    bias with the weights, so ``b − b⁺ − b⁻ = 0``), ours keeps it. With z^B on, the first conv's
    bias (and its BatchNorm's shift) is set to zero; everything else keeps its random biases.
    The 32 px input gives a 1×1 feature map that the adaptive pooling copies to 7×7; the
    classifier is narrowed to 64 hidden units (same layout) to keep the test in seconds.
    """
    torch.manual_seed(2)
    ours = _random(create_model(name, num_classes=6, hidden=64), generator)
    if zb:
        ours.features[0].bias.data.zero_()
        if isinstance(ours.features[1], torch.nn.BatchNorm2d):
            ours.features[1].bias.data.zero_()
            ours.features[1].running_mean.zero_()
    theirs = _torchvision_vgg(name, ours)
    x = torch.rand(2, 3, 32, 32, generator=generator, dtype=torch.float64)
    classes = torch.tensor([4, 0])
    _, heatmaps = isnet.explain(ours, x, classes, epsilon=0.05, zb=zb)
    reference = zennit_relevance(theirs, VGGCanonizer(), x, classes, 0.05, zb)
    assert relative_error(heatmaps[:, 0], reference) < 1e-9  # issue: 1e-4


def test_zb_bias_convention_is_the_only_difference_from_zennit(generator):
    torch.manual_seed(2)
    ours = _random(create_model("vgg11", num_classes=6, hidden=64), generator)
    theirs = _torchvision_vgg("vgg11", ours)
    x = torch.rand(2, 3, 32, 32, generator=generator, dtype=torch.float64)
    classes = torch.tensor([4, 0])
    _, heatmaps = isnet.explain(ours, x, classes, epsilon=0.05, zb=True)
    reference = zennit_relevance(theirs, VGGCanonizer(), x, classes, 0.05, zb=True)
    assert relative_error(heatmaps[:, 0], reference) > 1e-3


def test_adaptive_pool_transpose_is_the_vector_jacobian_product():
    generator = torch.Generator().manual_seed(4)
    for size_in, size_out in [((2, 3), (7, 7)), ((14, 14), (7, 7)), ((5, 9), (3, 4))]:
        x = torch.rand(2, 3, *size_in, generator=generator, dtype=torch.float64,
                       requires_grad=True)
        ratio = torch.rand(2, 1, 3, *size_out, generator=generator, dtype=torch.float64)
        pooled = torch.nn.functional.adaptive_avg_pool2d(x, size_out)
        (expected,) = torch.autograd.grad(pooled, x, ratio[:, 0])
        torch.testing.assert_close(adaptive_avg_pool_transpose(ratio, size_in)[:, 0], expected)


def test_conservation_on_bias_free_network_with_overlapping_pooling(tiny_plain, images):
    model = zero_biases(tiny_plain)
    logits, heatmaps = isnet.explain(model, images, mode="all", epsilon=1e-12, zb=False)
    torch.testing.assert_close(heatmaps.sum((2, 3, 4)), logits, rtol=1e-8, atol=1e-10)


def test_torchvision_state_dict_file_loads_through_load_checkpoint(tmp_path):
    """A state dict saved from torchvision's VGG class (narrow features and classifier)."""
    torch.manual_seed(0)
    config = [16, "M", 32, 32, "M"]
    features = torchvision.models.vgg.make_layers(config, True)
    with torch.device("meta"):  # its 4096-wide classifier is replaced below
        theirs = torchvision.models.vgg.VGG(features, num_classes=4, init_weights=False)
    theirs.avgpool = torch.nn.AdaptiveAvgPool2d(2)
    theirs.classifier = torch.nn.Sequential(
        torch.nn.Linear(32 * 2 * 2, 16), torch.nn.ReLU(True), torch.nn.Dropout(),
        torch.nn.Linear(16, 16), torch.nn.ReLU(True), torch.nn.Dropout(), torch.nn.Linear(16, 4))
    torch.save(theirs.eval().state_dict(), tmp_path / "vgg.pth")
    model, metadata = load_checkpoint(tmp_path / "vgg.pth")
    assert metadata["family"] == "vgg" and isinstance(model, VGG)
    assert list(metadata["architecture"]["config"]) == config
    assert metadata["architecture"]["batch_norm"] is True
    assert (metadata["architecture"]["hidden"], metadata["architecture"]["pool_size"]) == (16, 2)
    x = torch.rand(1, 3, 32, 32)
    torch.testing.assert_close(model(x), theirs(x))

