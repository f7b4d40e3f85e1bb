"""Memory layout: the LRP walks give the same heatmaps and gradients channels-last as
channels-first, for every family, and the audit explains in the family's preferred layout
without touching the caller's model."""

import copy

import pytest
import torch

import isnet
from isnet.analysis.audit import audit_images
from isnet.lrp.rules import avg_pool_transpose, conv_transpose
from isnet.models.layout import channels_last, in_layout, preferred_layout
from tests.conftest import SEED, randomize_batchnorm

LAST = torch.channels_last


def _tiny(name: str, generator: torch.Generator) -> torch.nn.Module:
    torch.manual_seed(SEED)
    return randomize_batchnorm(isnet.create_model(name, num_classes=3).double(), generator)


@pytest.mark.parametrize("name", ["tiny_densenet", "tiny_resnet", "tiny_vgg"])
@pytest.mark.parametrize("train", [False, True])
def test_heatmaps_and_heatmap_loss_gradients_agree_across_layouts(name, train, generator):
    model = _tiny(name, generator).train(train)
    images = torch.rand(4, 3, 32, 32, generator=generator, dtype=torch.float64)
    masks = torch.zeros(4, 1, 32, 32, dtype=torch.float64)
    masks[..., 8:24, 8:24] = 1
    results = []
    for layout in (torch.contiguous_format, LAST):
        net = copy.deepcopy(model).to(memory_format=layout)
        torch.manual_seed(SEED)  # the same dropout draws (VGG's classifier, train mode)
        logits, heatmaps = isnet.ISNet(net, explain="selective")(
            images.contiguous(memory_format=layout), torch.tensor([0, 1, 2, 0]))
        isnet.heatmap_loss(heatmaps, masks).backward()
        grads = [None if p.grad is None else p.grad.clone() for p in net.parameters()]
        results.append((logits.detach(), heatmaps.detach(), grads))
    (logits_a, maps_a, grads_a), (logits_b, maps_b, grads_b) = results
    torch.testing.assert_close(logits_b, logits_a)
    torch.testing.assert_close(maps_b, maps_a)
    assert maps_a.abs().sum() > 0
    assert [g is None for g in grads_a] == [g is None for g in grads_b]
    assert sum(g is not None for g in grads_a) > len(grads_a) // 2
    for grad_a, grad_b in zip(grads_a, grads_b, strict=True):
        if grad_a is not None:
            torch.testing.assert_close(grad_b, grad_a)


@pytest.mark.parametrize("stride", [1, 2])
def test_pointwise_transpose_keeps_channels_last_and_matches_the_naive_sum(stride, generator):
    ratio = torch.rand(2, 1, 5, 4, 4, generator=generator, dtype=torch.float64)  # (B, M, K, h, w)
    weight = torch.randn(5, 3, 1, 1, generator=generator, dtype=torch.float64)
    size = (4 * stride, 4 * stride) if stride == 1 else (8, 8)
    last = ratio.flatten(0, 1).contiguous(memory_format=LAST).unflatten(0, (2, 1))
    out = conv_transpose(last, weight, size, stride)
    naive = torch.zeros(2, 1, 3, *size, dtype=torch.float64)
    naive[..., ::stride, ::stride] = torch.einsum("bmkhw,kc->bmchw", ratio, weight[:, :, 0, 0])
    torch.testing.assert_close(out, naive)
    assert channels_last(out.flatten(0, 1))


def test_average_pooling_transpose_spreads_evenly_in_either_layout(generator):
    ratio = torch.rand(1, 2, 3, 2, 2, generator=generator, dtype=torch.float64)
    expected = ratio.repeat_interleave(2, -2).repeat_interleave(2, -1) / 4
    expected = torch.nn.functional.pad(expected, (0, 1, 0, 1))  # a 5×5 input pooled to 2×2
    torch.testing.assert_close(avg_pool_transpose(ratio, (5, 5), 2), expected)
    last = ratio.flatten(0, 1).contiguous(memory_format=LAST).unflatten(0, (1, 2))
    out = avg_pool_transpose(last, (4, 4), 2)
    torch.testing.assert_close(out, expected[..., :4, :4])
    assert channels_last(out.flatten(0, 1))


def test_families_prefer_the_layout_measured_fastest_on_the_cpu_only(generator):
    densenet, resnet = _tiny("tiny_densenet", generator), _tiny("tiny_resnet", generator)
    assert preferred_layout(densenet) == LAST
    assert preferred_layout(resnet) == torch.contiguous_format
    assert preferred_layout(densenet, "cuda") == torch.contiguous_format  # not measured there


def test_in_layout_copies_only_when_needed_and_leaves_the_model_alone(generator):
    model = _tiny("tiny_densenet", generator)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    converted = in_layout(model, LAST)
    assert converted is not model
    assert converted.features.conv0.weight.is_contiguous(memory_format=LAST)
    assert model.features.conv0.weight.is_contiguous()  # the caller's model is unchanged
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert in_layout(converted, LAST) is converted
    assert in_layout(model, torch.contiguous_format) is model


def test_audit_gives_the_same_results_in_either_layout(tiny_model, generator):
    images = torch.rand(6, 3, 32, 32, generator=generator, dtype=torch.float64)
    masks = (torch.rand(6, 1, 32, 32, generator=generator) > 0.5).double()
    first, last = (audit_images(tiny_model, images, masks, batch_size=4, memory_format=layout)
                   for layout in (torch.contiguous_format, LAST))
    assert torch.equal(first.predictions, last.predictions)
    torch.testing.assert_close(last.relevance, first.relevance)
    torch.testing.assert_close(last.background_share, first.background_share)
    assert tiny_model.features.conv0.weight.is_contiguous()  # audited on a copy


def test_fit_trains_a_densenet_channels_last_like_channels_first_and_hands_it_back(generator):
    from isnet.training.config import TrainConfig
    from isnet.training.loop import fit

    images = torch.rand(8, 3, 32, 32, generator=generator, dtype=torch.float64)
    masks = torch.zeros(8, 1, 32, 32, dtype=torch.float64)
    masks[..., 8:24, 8:24] = 1
    data = isnet.ImageSet(images, masks, torch.arange(8) % 3, ["a", "b", "c"])
    config = TrainConfig(model="tiny_densenet", num_classes=3, method="selective", epochs=1,
                         batch_size=4, input_size=32, seed=3)
    states, seen = {}, []
    for name, layout in (("first", torch.contiguous_format), ("auto", None)):
        torch.manual_seed(SEED)
        model = isnet.create_model("tiny_densenet", num_classes=3).double()
        hook = model.features.conv0.register_forward_pre_hook(
            lambda module, args, name=name: seen.append((name, channels_last(args[0]))))
        result = fit(model, data, None, config, memory_format=layout)
        hook.remove()
        assert result.model.features.conv0.weight.is_contiguous()  # handed back channels-first
        states[name] = result.model.state_dict()
    assert {flag for name, flag in seen if name == "auto"} == {True}  # the DenseNet's layout
    assert {flag for name, flag in seen if name == "first"} == {False}
    for key, value in states["first"].items():  # 2 steps: rounding only, in float64
        torch.testing.assert_close(states["auto"][key], value, rtol=1e-9, atol=1e-12)


def test_layout_of_reads_the_weights(generator):
    from isnet.models.layout import layout_of

    model = _tiny("tiny_densenet", generator)
    assert layout_of(model) == torch.contiguous_format
    assert layout_of(model.to(memory_format=LAST)) == LAST  # 1×1 kernels are both layouts
    assert layout_of(torch.nn.Linear(2, 2)) == torch.contiguous_format
