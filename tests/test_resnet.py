"""The ResNet family's own checks: torchvision parity, zennit oracle, the residual split.

What every family must do (LRP-0 = gradient×input, conservation, gradients, checkpoints, …) is
the family contract, run on tiny_resnet by tests/test_family_contract.py.
"""

from __future__ import annotations

import pytest
import torch
import torchvision
from zennit.torchvision import ResNetCanonizer

import isnet
from isnet.io.checkpoints import load_checkpoint
from isnet.models import create_model
from isnet.models.resnet import ResNet, architecture_from_state_dict, tiny_resnet
from tests.conftest import SEED, randomize_batchnorm
from tests.lrp_oracles import (
    correlation,
    gradient_times_input,
    relative_error,
    zennit_relevance,
    zero_biases,
)


def _random(model: torch.nn.Module, generator: torch.Generator) -> torch.nn.Module:
    return randomize_batchnorm(model.double(), generator).eval()


@pytest.fixture
def tiny(generator) -> ResNet:
    """tiny_resnet (bottlenecks: a downsampling and an identity skip), float64, eval."""
    torch.manual_seed(SEED)
    return _random(tiny_resnet(num_classes=3), generator)


@pytest.fixture
def tiny_basic(generator) -> ResNet:
    """Two basic blocks: an identity skip, then a strided downsampling skip."""
    torch.manual_seed(SEED)
    return _random(ResNet(block="basic", layers=(1, 1), width=4, num_classes=3), generator)


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_torchvision_state_dicts_load_key_for_key_with_equal_logits(name, generator):
    torch.manual_seed(0)
    theirs = _random(getattr(torchvision.models, name)(weights=None, num_classes=7), generator)
    ours = create_model(name, num_classes=7).double().eval()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict(theirs.state_dict())
    x = torch.rand(2, 3, 48, 48, generator=generator, dtype=torch.float64)
    torch.testing.assert_close(ours(x), theirs(x))
    torch.testing.assert_close(ours.forward_trace(x)[0], theirs(x))
    assert architecture_from_state_dict(theirs.state_dict()) == ours.arch


def test_lrp_zero_equals_gradient_times_input_with_basic_blocks(tiny_basic, images):
    """(tiny_resnet's bottlenecks: the family contract, tests/family_contract.py.)"""
    model = tiny_basic
    classes = torch.tensor([0, 1, 2, 0])
    _, heatmaps = isnet.explain(model, images, classes, epsilon=1e-12, zb=False)
    torch.testing.assert_close(heatmaps[:, 0], gradient_times_input(model, images, classes),
                               rtol=1e-7, atol=1e-10)


def test_lrp_zero_equals_gradient_times_input_on_resnet50(generator):
    torch.manual_seed(1)
    model = _random(isnet.create_model("resnet50", num_classes=5), generator)
    x = torch.rand(2, 3, 64, 64, generator=generator, dtype=torch.float64)
    classes = torch.tensor([3, 1])
    _, heatmaps = isnet.explain(model, x, classes, epsilon=1e-12, zb=False)
    assert correlation(heatmaps[:, 0], gradient_times_input(model, x, classes)) >= 0.99999


@pytest.mark.parametrize("name", ["resnet18", pytest.param("resnet50", marks=pytest.mark.slow)])
@pytest.mark.parametrize("zb", [False, True])
def test_matches_zennit_epsilon_composite_with_resnet_canonizer(name, zb, generator):
    """zennit on torchvision's own model with our weights: same heatmaps to 1e-4 relative.

    One convention differs: zennit's ZBox leaves the first layer's bias out of z^B (it clamps the
    bias with the weights, so ``b − b⁺ − b⁻ = 0``), ours keeps it (z^B is the layer's true output
    minus the bound terms). With z^B on, the first layer's fused bias (bn1's shift) is therefore
    set to zero; everything else keeps its random biases and statistics.
    """
    torch.manual_seed(2)
    ours = _random(create_model(name, num_classes=6), generator)
    if zb:
        ours.bn1.bias.data.zero_()
        ours.bn1.running_mean.zero_()
    theirs = getattr(torchvision.models, name)(weights=None, num_classes=6).double()
    theirs.load_state_dict(ours.state_dict())
    x = torch.rand(2, 3, 32, 32, generator=generator, dtype=torch.float64)
    classes = torch.tensor([4, 0])
    _, heatmaps = isnet.explain(ours, x, classes, epsilon=0.05, zb=zb)
    reference = zennit_relevance(theirs, ResNetCanonizer(), x, classes, 0.05, zb)
    assert relative_error(heatmaps[:, 0], reference) < 1e-9  # issue: 1e-4


def test_zb_bias_convention_is_the_only_difference_from_zennit(generator):
    """With bn1's shift non-zero the two z^B conventions give different maps."""
    torch.manual_seed(2)
    ours = _random(create_model("resnet18", num_classes=6), generator)
    theirs = torchvision.models.resnet18(weights=None, num_classes=6).double()
    theirs.load_state_dict(ours.state_dict())
    x = torch.rand(2, 3, 32, 32, generator=generator, dtype=torch.float64)
    classes = torch.tensor([4, 0])
    _, heatmaps = isnet.explain(ours, x, classes, epsilon=0.05, zb=True)
    reference = zennit_relevance(theirs, ResNetCanonizer(), x, classes, 0.05, zb=True)
    assert relative_error(heatmaps[:, 0], reference) > 1e-3


def test_conservation_on_bias_free_network_with_basic_blocks(tiny_basic, images):
    model = zero_biases(tiny_basic)
    logits, heatmaps = isnet.explain(model, images, mode="all", epsilon=1e-12, zb=False)
    torch.testing.assert_close(heatmaps.sum((2, 3, 4)), logits, rtol=1e-8, atol=1e-12)


def test_residual_split_absorbs_relevance_with_large_epsilon(tiny, images):
    model = zero_biases(tiny)
    logits, heatmaps = isnet.explain(model, images, mode="all", epsilon=0.1, zb=False)
    kept = heatmaps.sum((2, 3, 4)) / logits
    assert torch.all(kept < 1) and torch.all(kept > 0)


def test_gradcheck_through_a_residual_block(generator):
    torch.manual_seed(5)
    model = _random(tiny_resnet(num_classes=3), generator)
    x = torch.rand(2, 3, 16, 16, generator=generator, dtype=torch.float64)
    mask = torch.zeros(2, 1, 16, 16, dtype=torch.float64)
    mask[:, :, 4:12, 4:12] = 1
    net = isnet.ISNet(model, explain="target")
    key = "backbone.layer1.1.conv1.weight"  # inside the identity-skip block

    def heat_of(conv_weight):
        _, maps = torch.func.functional_call(net, {key: conv_weight}, (x, torch.tensor([0, 2])))
        return isnet.heatmap_loss(maps, mask)

    weight = model.layer1[1].conv1.weight.detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(heat_of, (weight,), eps=1e-6, atol=1e-5)


def test_torchvision_state_dict_file_loads_through_load_checkpoint(tmp_path):
    torch.manual_seed(0)
    theirs = torchvision.models.resnet.ResNet(torchvision.models.resnet.BasicBlock, [1, 1, 1, 1],
                                              num_classes=4).eval()
    torch.save(theirs.state_dict(), tmp_path / "resnet.pth")
    model, metadata = load_checkpoint(tmp_path / "resnet.pth")
    assert metadata["family"] == "resnet" and isinstance(model, ResNet)
    assert metadata["architecture"]["layers"] == (1, 1, 1, 1)
    assert metadata["architecture"]["block"] == "basic"
    x = torch.rand(1, 3, 32, 32)
    torch.testing.assert_close(model(x), theirs(x))


def test_a_resnet_layout_we_do_not_build_says_why():
    from isnet.io.architecture import infer_architecture

    with torch.device("meta"):
        state = torchvision.models.wide_resnet50_2(weights=None).state_dict()
    with pytest.raises(ValueError, match=r"look like a resnet.*wide ResNets"):
        infer_architecture(state)


def test_train_mode_fusion_uses_the_batch_statistics_of_the_forward_pass(tiny, images):
    """In train mode each fused BatchNorm must be the affine map the forward pass applied."""
    from isnet.lrp.fused import conv_affine

    tiny.train()
    _, trace = tiny.forward_trace(images)
    block, block_trace = tiny.layer1[0], trace.blocks[0]
    for detach in (True, False):
        scale, shift = conv_affine(block.conv3, block.bn3, block_trace.convs[-1], detach)
        fused = block_trace.convs[-1] * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1)
        torch.testing.assert_close(fused, block_trace.main)


def test_reference_quirks_are_refused_for_families_without_a_published_block():
    from isnet.models.resnet import tiny_resnet

    model = tiny_resnet(num_classes=3).double().eval()
    images = torch.rand(2, 3, 32, 32, dtype=torch.float64)
    with pytest.raises(ValueError, match="reference_quirks"):
        isnet.explain(model, images, lrp=isnet.LRPConfig(reference_quirks=True))
