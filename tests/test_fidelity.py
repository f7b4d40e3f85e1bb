"""Fidelity to the ISNet authors' LRP block: the z^B bias conventions and the reference-compatible
mode that reproduces the two bookkeeping errors of the published block.

Each convention and each quirk is checked against its own oracle: zennit's ZBox, a per-element
loop, a literal replay of the published index arithmetic, ``max_unpool2d`` itself, and a naive
dense-block walk that fuses the BatchNorms into the weights (as the authors' code does) instead of
passing messages (as the engine does).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from zennit.rules import ZBox

import isnet
from isnet.lrp.config import LRPConfig
from isnet.lrp.densenet import (
    _block_backward,
    _consumer_message,
    dense_consumers,
    stem_message,
    stem_relevance,
)
from isnet.lrp.rules import max_pool_transpose, stabilize, zbox_rule
from isnet.models.densenet import DenseNet
from tests.conftest import randomize_batchnorm

# a mode passed as target= is the old spelling: here it must not come back (isnet's own
# warning only, so third-party deprecations stay warnings)
pytestmark = pytest.mark.filterwarnings(r"error:explain\(target=:DeprecationWarning")

EPSILON = 0.01


# ---------------------------------------------------------------- z^B bias conventions


def _single_conv(generator):
    x = torch.rand(2, 2, 7, 6, generator=generator, dtype=torch.float64)
    weight = torch.randn(3, 2, 3, 3, generator=generator, dtype=torch.float64)
    bias = torch.tensor([0.3, -0.4, 0.05], dtype=torch.float64)
    out = F.conv2d(x, weight, bias, stride=2, padding=1)
    relevance = torch.randn(2, 1, *out.shape[1:], generator=generator, dtype=torch.float64)
    return x, weight, bias, relevance


def test_zb_bias_none_equals_zennit_zbox_on_a_single_conv(generator):
    x, weight, bias, relevance = _single_conv(generator)
    low = torch.tensor([-0.5, 0.0], dtype=torch.float64).reshape(1, 2, 1, 1)
    high = torch.tensor([1.0, 2.0], dtype=torch.float64).reshape(1, 2, 1, 1)
    conv = torch.nn.Conv2d(2, 3, 3, stride=2, padding=1).double()
    conv.weight.data.copy_(weight)
    conv.bias.data.copy_(bias)
    handles = ZBox(low=low, high=high, stabilizer=EPSILON).register(conv)
    try:
        inputs = x.clone().requires_grad_(True)
        (zennit,) = torch.autograd.grad(conv(inputs), inputs, relevance[:, 0])
    finally:
        handles.remove()
    ours = zbox_rule(x, weight, bias, relevance, low, high, 2, 1, EPSILON, bias_convention="none")
    torch.testing.assert_close(ours[:, 0], zennit)


def _naive_zbox(x, weight, bias_term, relevance, low, high, stride, padding, epsilon):
    """z^B by loops over every output and every weight, skipping padded positions."""
    batch, channels, height, width = x.shape
    out_channels, _, kh, kw = weight.shape
    out_h, out_w = relevance.shape[-2:]
    result = torch.zeros_like(x)
    for b in range(batch):
        for k in range(out_channels):
            for oy in range(out_h):
                for ox in range(out_w):
                    terms = {}
                    for c in range(channels):
                        for dy in range(kh):
                            for dx in range(kw):
                                y, xx = oy * stride - padding + dy, ox * stride - padding + dx
                                if not (0 <= y < height and 0 <= xx < width):
                                    continue
                                w = weight[k, c, dy, dx].item()
                                terms[c, y, xx] = (x[b, c, y, xx].item() * w - low[c] * max(w, 0)
                                                   - high[c] * min(w, 0))
                    z = sum(terms.values()) + bias_term[k]
                    z += epsilon if z >= 0 else -epsilon
                    for (c, y, xx), term in terms.items():
                        result[b, c, y, xx] += term * relevance[b, 0, k, oy, ox].item() / z
    return result


@pytest.mark.parametrize("convention", ["authors", "full"])
@pytest.mark.parametrize("bounds", [((0.0, 0.0), (1.0, 1.0)), ((-0.5, 0.0), (1.0, 2.0))])
def test_zb_bias_authors_and_full_match_a_per_element_loop(generator, convention, bounds):
    x, weight, bias, relevance = _single_conv(generator)
    low, high = bounds
    if convention == "full":
        bias_term = bias.tolist()
    else:  # a constant input 1 whose box is [min l, max h]; max(b, 0) for [0, 1]
        lo, hi = min(low), max(high)
        bias_term = [b - lo * max(b, 0) - hi * min(b, 0) for b in bias.tolist()]
    naive = _naive_zbox(x, weight, bias_term, relevance, low, high, 2, 1, EPSILON)
    low_view = torch.tensor(low, dtype=torch.float64).reshape(1, 2, 1, 1)
    high_view = torch.tensor(high, dtype=torch.float64).reshape(1, 2, 1, 1)
    ours = zbox_rule(x, weight, bias, relevance, low_view, high_view, 2, 1, EPSILON,
                     bias_convention=convention)
    torch.testing.assert_close(ours[:, 0], naive)


def test_zb_bias_authors_is_the_positive_part_for_unit_bounds():
    bias = torch.tensor([0.7, -0.2, 0.0], dtype=torch.float64)
    from isnet.lrp.rules import zbox_bias

    torch.testing.assert_close(zbox_bias(bias, 0.0, 1.0, "authors"), bias.clamp(min=0))
    assert zbox_bias(bias, 0.0, 1.0, "none") is None
    with pytest.raises(ValueError, match="convention"):
        zbox_bias(bias, 0.0, 1.0, "half")
    with pytest.raises(ValueError, match="zb_bias"):
        LRPConfig(zb_bias="half")


def _stem_shift(model, sign):
    """Make the fused conv0 + norm0 bias ``β − γμ/σ`` all ≥ 0 (sign +1), all ≤ 0 (−1) or mixed."""
    norm = model.features.norm0
    norm.running_mean.zero_()
    if sign:
        norm.bias.data.copy_(sign * (norm.bias.data.abs() + 0.05))
    return model


def test_default_zb_bias_is_authors_and_changes_only_the_input_layer(tiny_model, images):
    assert LRPConfig().zb_bias == "authors" and LRPConfig().reference_quirks is False
    logits, trace = tiny_model.forward_trace(images)
    maps = {}
    for convention in ("authors", "full", "none"):
        config = LRPConfig(zb_bias=convention)
        output_logits, heatmaps = isnet.explain(tiny_model, images, mode="all", lrp=config)
        torch.testing.assert_close(output_logits, logits)
        maps[convention] = heatmaps
    assert torch.equal(isnet.explain(tiny_model, images, mode="all")[1], maps["authors"])
    assert not torch.allclose(maps["authors"], maps["full"])
    assert not torch.allclose(maps["authors"], maps["none"])
    # everything above the input layer is the same: the message at the stem does not depend on it
    messages = torch.randn(4, 2, trace.pooled.shape[1], dtype=torch.float64)
    base = stem_message(tiny_model, trace, messages, LRPConfig(zb_bias="full"))
    torch.testing.assert_close(stem_message(tiny_model, trace, messages, LRPConfig()), base)
    # and without z^B the convention plays no role
    plain = isnet.explain(tiny_model, images, mode="all", zb=False,
                          lrp=LRPConfig(zb_bias="none"))[1]
    torch.testing.assert_close(isnet.explain(tiny_model, images, mode="all", zb=False)[1], plain)


@pytest.mark.parametrize(("sign", "same_as"), [(1, "full"), (-1, "none")])
def test_authors_bias_equals_full_for_positive_and_none_for_negative_biases(
        tiny_model, images, sign, same_as):
    model = _stem_shift(tiny_model, sign)
    ours = isnet.explain(model, images, mode="all", lrp=LRPConfig(zb_bias="authors"))[1]
    other = isnet.explain(model, images, mode="all", lrp=LRPConfig(zb_bias=same_as))[1]
    torch.testing.assert_close(ours, other)


# ---------------------------------------------------------------- quirk 1: consumer lookup


def published_lookup(layer: int, num_layers: int) -> list[tuple[int, int]]:
    """Replay of the published block's bookkeeping for dense layer ``layer`` (1-based), on names.

    The relevance list R holds, when ``layer`` runs: the end reader's relevance, then those of
    layers L, L−1, …, layer+1 (appended as the walk goes down). The lookup walks the block's
    layer names from the last, keeps a name when ``int(name[-1]) > layer``, and takes R at a
    negative index that starts at −(L − layer) and grows by one per *kept* name.
    """
    names = [f"denselayer{n}" for n in range(1, num_layers + 1)]
    relevance_list = ["end"] + [f"denselayer{n}" for n in range(num_layers, layer, -1)]
    position = -(num_layers - layer)
    assert relevance_list[position - 1] == "end"  # the end reader is looked up correctly
    pairs = []
    for name in reversed(names):
        if int(name[-1]) > layer:
            source = relevance_list[position]
            pairs.append((int(name.removeprefix("denselayer")),
                          int(source.removeprefix("denselayer"))))
            position += 1
    return pairs


def test_consumer_lookup_replays_the_published_index_arithmetic():
    for num_layers in range(1, 33):
        for layer in range(1, num_layers + 1):
            assert dense_consumers(layer, num_layers, True) == published_lookup(layer, num_layers)
            assert dense_consumers(layer, num_layers) == [
                (m, m) for m in range(num_layers, layer, -1)]
    # DenseNet-121's block 2 (12 layers), layer 3: readers 12, 11, 10 dropped; 9…4 kept and paired
    # with the relevances of layers 12…7; those of layers 6, 5, 4 are lost
    assert dense_consumers(3, 12, True) == [(9, 12), (8, 11), (7, 10), (6, 9), (5, 8), (4, 7)]
    assert dense_consumers(10, 12, True) == []
    # blocks of fewer than 10 layers are looked up correctly
    assert all(dense_consumers(i, 9, True) == dense_consumers(i, 9) for i in range(1, 10))


def _long_block_model(generator, block_config=(11, 2)):
    torch.manual_seed(3)
    model = DenseNet(growth_rate=2, block_config=block_config, num_init_features=4, bn_size=2,
                     num_classes=3).double()
    return randomize_batchnorm(model, generator).eval()


def _affine(norm, start=0, stop=None):
    scale = norm.weight / (norm.running_var + norm.eps).sqrt()
    shift = norm.bias - norm.running_mean * scale
    return scale[start:stop], shift[start:stop]


def _naive_block(block, layers, norm, end_relevance, quirks):
    """The block walked as the authors' code does: the BatchNorms of every reader of a layer's
    output are fused into its conv2 (weights stacked along the output axis), one ε step; then
    conv1 fused with norm2. Returns the summed message at the block input.

    Shapes: end_relevance (B, M, C_total, h, w) at the end reader's ReLU.
    """
    modules = list(block.values())
    num_layers, batch, maps = len(modules), end_relevance.shape[0], end_relevance.shape[1]
    start0 = layers[0].concat.shape[1]
    relevances = {"end": end_relevance}  # at each reader's first ReLU
    readers = {"end": norm, **{n + 1: m.norm1 for n, m in enumerate(modules)}}

    def fused_step(inputs, weight, bias, relevance, padding):
        z = stabilize(F.conv2d(inputs, weight, bias, padding=padding), EPSILON)
        ratio = (relevance / z.unsqueeze(1)).flatten(0, 1)
        back = F.conv_transpose2d(ratio, weight, padding=padding).unflatten(0, (batch, maps))
        return inputs.unsqueeze(1) * back

    for number in range(num_layers, 0, -1):
        layer, t = modules[number - 1], layers[number - 1]
        start = start0 + (number - 1) * t.new_features.shape[1]
        stop = start + t.new_features.shape[1]
        lookup = published_lookup if quirks else dense_consumers
        pairs = [("end", "end")] + list(lookup(number, num_layers))
        weights, biases, sources = [], [], []
        for reader, source in pairs:
            scale, shift = _affine(readers[reader], start, stop)
            weights.append(layer.conv2.weight * scale.view(-1, 1, 1, 1))
            biases.append(shift)
            sources.append(relevances[source][:, :, start:stop])
        relevance = fused_step(t.relu2, torch.cat(weights), torch.cat(biases),
                               torch.cat(sources, dim=2), 1)
        scale, shift = _affine(layer.norm2)
        relevance = fused_step(t.relu1, layer.conv1.weight * scale.view(-1, 1, 1, 1), shift,
                               relevance, 0)
        relevances[number] = relevance
    message = 0.0
    for reader in ["end", *range(1, num_layers + 1)]:  # the block input's readers: all correct
        scale, shift = _affine(readers[reader], 0, start0)
        z = stabilize(layers[0].concat * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1),
                      EPSILON)
        message = message + relevances[reader][:, :, :start0] * (scale.view(1, -1, 1, 1) / z
                                                                 ).unsqueeze(1)
    return message


@pytest.mark.parametrize("quirks", [False, True])
def test_dense_block_matches_a_naive_fused_walk_with_each_lookup(generator, quirks):
    model = _long_block_model(generator)
    images = torch.rand(2, 3, 32, 32, generator=generator, dtype=torch.float64)
    _, trace = model.forward_trace(images)
    block, layers = model.features.denseblock1, trace.blocks[0]
    norm, transition = model.features.transition1.norm, trace.transitions[0]
    transposed = torch.randn(2, 2, *transition.relu.shape[1:], generator=generator,
                             dtype=torch.float64)
    config = LRPConfig(epsilon=EPSILON, reference_quirks=quirks)
    end_message = _consumer_message(norm, transition.concat, transition.relu, transposed, config)
    ours = _block_backward(block, layers, end_message, config, None)
    naive = _naive_block(block, layers, norm, transition.relu.unsqueeze(1) * transposed, quirks)
    torch.testing.assert_close(ours, naive)


def test_quirky_lookup_acts_only_in_blocks_of_ten_or_more_layers(generator):
    model = _long_block_model(generator)
    images = torch.rand(2, 3, 32, 32, generator=generator, dtype=torch.float64)
    _, trace = model.forward_trace(images)
    corrected, quirky = LRPConfig(), LRPConfig(reference_quirks=True)
    f = model.features
    end = torch.randn(2, 1, *trace.final_relu.shape[1:], generator=generator, dtype=torch.float64)
    message = _consumer_message(f.norm5, trace.final_concat, trace.final_relu, end, corrected)
    short = [_block_backward(f.denseblock2, trace.blocks[1], message, c, None)
             for c in (corrected, quirky)]
    torch.testing.assert_close(short[0], short[1], rtol=0, atol=0)  # 2 layers: no quirk
    transposed = torch.randn(2, 1, *trace.transitions[0].relu.shape[1:], generator=generator,
                             dtype=torch.float64)
    message = _consumer_message(f.transition1.norm, trace.transitions[0].concat,
                                trace.transitions[0].relu, transposed, corrected)
    long = [_block_backward(f.denseblock1, trace.blocks[0], message, c, None)
            for c in (corrected, quirky)]
    assert not torch.allclose(long[0], long[1])  # 11 layers: relevance lost and re-paired


# ---------------------------------------------------------------- quirk 2: unpooling overwrites


def test_overwrite_unpooling_equals_max_unpool2d_and_a_last_writer_loop(generator):
    x = torch.rand(2, 3, 9, 8, generator=generator, dtype=torch.float64)
    _, indices = F.max_pool2d(x, 3, 2, 1, return_indices=True)  # (2, 3, 5, 4)
    ratio = torch.randn(2, 2, *indices.shape[1:], generator=generator, dtype=torch.float64)
    ours = max_pool_transpose(ratio, indices, (9, 8), overwrite=True)
    summed = max_pool_transpose(ratio, indices, (9, 8))
    shared = torch.zeros(2, 3, 72, dtype=torch.long).scatter_add(
        -1, indices.flatten(-2), torch.ones_like(indices.flatten(-2)))  # windows per winner
    assert (shared > 1).any()
    for m in range(2):
        unpooled = F.max_unpool2d(ratio[:, m], indices, 3, 2, 1, output_size=(9, 8))
        torch.testing.assert_close(ours[:, m], unpooled, rtol=0, atol=0)
        naive = torch.zeros(2, 3, 72, dtype=torch.float64)
        for b in range(2):
            for c in range(3):
                for p, target in enumerate(indices[b, c].flatten().tolist()):
                    naive[b, c, target] = ratio[b, m, c].flatten()[p]  # later windows overwrite
        torch.testing.assert_close(ours[:, m].flatten(-2), naive, rtol=0, atol=0)
        # the two differ exactly where windows share a winner
        differs = (ours[:, m] != summed[:, m]).flatten(-2)
        assert torch.equal(differs, shared > 1)


def test_overwrite_unpooling_trains_with_the_gradient_of_max_unpool2d(generator):
    x = torch.rand(1, 2, 9, 9, generator=generator, dtype=torch.float64)
    _, indices = F.max_pool2d(x, 3, 2, 1, return_indices=True)
    ratio = torch.randn(1, 1, *indices.shape[1:], generator=generator, dtype=torch.float64)
    weights = torch.randn(1, 1, 2, 9, 9, generator=generator, dtype=torch.float64)
    ours, theirs = ratio.clone().requires_grad_(True), ratio.clone().requires_grad_(True)
    (max_pool_transpose(ours, indices, (9, 9), overwrite=True) * weights).sum().backward()
    unpooled = F.max_unpool2d(theirs[:, 0], indices, 3, 2, 1, output_size=(9, 9))
    (unpooled * weights[:, 0]).sum().backward()
    torch.testing.assert_close(ours.grad, theirs.grad, rtol=0, atol=0)
    # every window gets its winner's gradient, overwritten or not (a gather)
    gathered = weights.flatten(-2).gather(-1, indices.flatten(-2).unsqueeze(1))
    torch.testing.assert_close(ours.grad.flatten(-2), gathered, rtol=0, atol=0)


def test_published_fusion_keeps_the_scale_gradient_in_the_shift(generator):
    from isnet.lrp.canonize import batchnorm_affine

    norm = randomize_batchnorm(torch.nn.BatchNorm2d(3).double(), generator).eval()
    inputs = torch.randn(2, 3, 4, 4, generator=generator, dtype=torch.float64)
    scale, shift = batchnorm_affine(norm, inputs)
    assert shift.grad_fn is None  # corrected default: the whole shift is detached
    scale_q, shift_q = batchnorm_affine(norm, inputs, detach_scale_in_shift=False)
    torch.testing.assert_close((scale_q, shift_q), (scale, shift))
    shift_q.sum().backward()
    sigma = (norm.running_var + norm.eps).sqrt()
    torch.testing.assert_close(norm.weight.grad, -norm.running_mean / sigma)
    assert norm.bias.grad is None


def test_published_fusion_uses_the_unbiased_batch_variance_in_train_mode(tiny_model, images,
                                                                        monkeypatch):
    from isnet.lrp import canonize, densenet

    tiny_model.features.pool0 = torch.nn.MaxPool2d(2, 2)  # the other quirks cannot act
    tiny_model.train()
    quirky = isnet.explain(tiny_model, images, mode="all",
                           lrp=LRPConfig(reference_quirks=True))[1]
    corrected = isnet.explain(tiny_model, images, mode="all")[1]
    assert not torch.allclose(quirky, corrected)

    def unbiased_statistics(inputs, detach=True, unbiased=False):
        var, mean = torch.var_mean(inputs, dim=(0, 2, 3), unbiased=True)
        return mean.detach(), var.detach()

    monkeypatch.setattr(canonize, "batch_statistics", unbiased_statistics)
    monkeypatch.setattr(densenet, "batch_statistics", unbiased_statistics)
    torch.testing.assert_close(isnet.explain(tiny_model, images, mode="all")[1], quirky)


def test_quirks_change_nothing_without_long_blocks_or_shared_winners(tiny_model, images):
    tiny_model.features.pool0 = torch.nn.MaxPool2d(2, 2)  # no overlapping windows
    for mode in ("all", "selective"):
        corrected = isnet.explain(tiny_model, images, mode=mode)
        quirky = isnet.explain(tiny_model, images, mode=mode, lrp=LRPConfig(reference_quirks=True))
        torch.testing.assert_close(quirky[0], corrected[0], rtol=0, atol=0)
        torch.testing.assert_close(quirky[1], corrected[1], rtol=0, atol=0)


def test_with_short_blocks_only_the_unpooling_differs(tiny_model, images):
    logits, trace = tiny_model.forward_trace(images)
    messages = torch.randn(4, 3, trace.pooled.shape[1], dtype=torch.float64)
    corrected, quirky = LRPConfig(), LRPConfig(reference_quirks=True)
    message = stem_message(tiny_model, trace, messages, corrected)
    torch.testing.assert_close(stem_message(tiny_model, trace, messages, quirky), message,
                               rtol=0, atol=0)
    heatmaps = stem_relevance(tiny_model, trace, message, quirky)
    assert not torch.allclose(heatmaps, stem_relevance(tiny_model, trace, message, corrected))
    # the authors' path: max_unpool2d per map, then z^B through conv0 + norm0 (bias: max(b, 0))
    f, size = tiny_model.features, tuple(trace.stem_relu.shape[-2:])
    unpooled = torch.stack([F.max_unpool2d(message[:, m], trace.stem_indices, 3, 2, 1,
                                           output_size=size) for m in range(3)], dim=1)
    scale, shift = _affine(f.norm0)
    expected = zbox_rule(trace.inputs, f.conv0.weight * scale.view(-1, 1, 1, 1),
                         shift.clamp(min=0), trace.stem_relu.unsqueeze(1) * unpooled,
                         torch.tensor(0.0), torch.tensor(1.0), 2, 3, EPSILON,
                         bias_convention="full")
    torch.testing.assert_close(heatmaps, expected)


def test_reference_quirks_keep_logits_and_are_differentiable(generator):
    model = _long_block_model(generator).train()
    images = torch.rand(2, 3, 32, 32, generator=generator, dtype=torch.float64)
    network = isnet.ISNet(model, lrp=LRPConfig(reference_quirks=True))
    logits, heatmaps = network(images)
    torch.testing.assert_close(logits, model(images))
    assert heatmaps.shape == (2, 3, 3, 32, 32) and torch.isfinite(heatmaps).all()
    heatmaps.abs().sum().backward()
    assert all(p.grad is not None for n, p in model.named_parameters()
               if n.endswith("weight") and "norm" not in n)


# ---------------------------------------------------------------- determinism


@pytest.fixture
def deterministic_algorithms():
    """torch.use_deterministic_algorithms(True) for one test, then the previous setting."""
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    yield
    torch.use_deterministic_algorithms(previous)


def _biased_batch(generator):
    images = torch.rand(4, 3, 32, 32, generator=generator, dtype=torch.float64)
    masks = torch.zeros(4, 1, 32, 32, dtype=torch.float64)
    masks[:, :, 8:24, 8:24] = 1
    return images, masks, torch.tensor([0, 1, 2, 0])


@pytest.mark.parametrize("method", ["all", "selective", "stochastic"])
def test_isnet_step_runs_under_deterministic_algorithms(generator, deterministic_algorithms,
                                                        method):
    from isnet.models.densenet import tiny_densenet
    from isnet.training.config import TrainConfig
    from isnet.training.loop import build_network, make_optimizer, train_step

    config = TrainConfig(model="tiny_densenet", num_classes=3, method=method, batch_size=4,
                         input_size=32, deterministic=True)
    batch = _biased_batch(generator)
    runs = []
    for _ in range(2):
        torch.manual_seed(5)
        model = tiny_densenet(num_classes=3).double()
        metrics = train_step(build_network(model, config), batch, make_optimizer(model, config),
                             config)
        assert metrics["finite"] and metrics["heatmap_loss"] > 0
        runs.append((metrics, [p.detach().clone() for p in model.parameters()]))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1], strict=True))


def test_reference_quirks_run_under_deterministic_algorithms(generator, deterministic_algorithms):
    model = _long_block_model(generator).train()
    images, masks, _ = _biased_batch(generator)
    _, heatmaps = isnet.ISNet(model, lrp=LRPConfig(reference_quirks=True))(images)
    (heatmaps * (1 - masks.unsqueeze(1))).abs().sum().backward()
    assert torch.isfinite(heatmaps).all()


def test_deterministic_flag_reaches_fit_through_the_command_line(generator):
    from isnet.data.image_set import ImageSet
    from isnet.models.densenet import tiny_densenet
    from isnet.train import build_parser, config_from_args
    from isnet.training.loop import fit

    config, _ = config_from_args(build_parser().parse_args(["--out", "x", "--deterministic"]))
    assert config.deterministic is True
    assert config_from_args(build_parser().parse_args(["--out", "x"]))[0].deterministic is False
    previous = torch.are_deterministic_algorithms_enabled()
    try:
        torch.use_deterministic_algorithms(False)
        images, masks, labels = _biased_batch(generator)
        run = config.__class__(model="tiny_densenet", num_classes=3, method="selective", epochs=1,
                               batch_size=4, input_size=32, deterministic=True)
        result = fit(tiny_densenet(num_classes=3).double(),
                     ImageSet(images, masks, labels, ["a", "b", "c"]), None, run)
        assert result.status == "completed" and torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(previous)
