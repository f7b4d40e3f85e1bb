"""The conservation ledger: Σ R + what biases and ε absorbed = the explained score.

The oracle is a naive layer-by-layer LRP of the tiny VGG written here from the formulas (BatchNorm
folded by hand, transposes by autograd), which sums each layer's bias contribution
``Σ_k b_k R_k / stab(z_k)`` on its own; the walk's ledger must agree step by step.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import isnet
from isnet.lrp.conservation import CONSERVED_TOLERANCE, BiasLedger, Conservation
from tests.conftest import SEED, randomize_batchnorm

FAMILIES = ("tiny_densenet", "tiny_resnet", "tiny_vgg")


def _model(name: str, biases: bool) -> nn.Module:
    torch.manual_seed(SEED)
    model = isnet.create_model(name, num_classes=3).double()
    randomize_batchnorm(model, torch.Generator().manual_seed(SEED))
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)) and module.bias is not None:
                module.bias.uniform_(-0.3, 0.3) if biases else module.bias.zero_()
            if isinstance(module, nn.BatchNorm2d) and not biases:
                module.bias.zero_()
                module.running_mean.zero_()
    return model.eval()


def _images() -> torch.Tensor:
    return torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(SEED),
                      dtype=torch.float64)


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("zb", [True, False])
def test_bias_free_network_conserves_the_score(name: str, zb: bool) -> None:
    model = _model(name, biases=False)
    _, _, books = isnet.explain(model, _images(), epsilon=1e-9, zb=zb, return_conservation=True)
    for sample in books:
        entry = sample[0]
        assert abs(entry.relevance_sum - entry.score) <= 1e-5
        assert entry.conserved
        assert entry.absorbed_by_bias == 0.0 and entry.bias_share == 0.0


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("target", [None, 1, "selective", "all"])
@pytest.mark.parametrize("zb", [True, False])
def test_sum_plus_absorbed_equals_the_score(name: str, target, zb: bool) -> None:
    model = _model(name, biases=True)
    logits, heatmaps, books = isnet.explain(model, _images(), target=target, zb=zb,
                                            return_conservation=True)
    plain_logits, plain = isnet.explain(model, _images(), target=target, zb=zb)
    torch.testing.assert_close(heatmaps, plain)  # recording changes nothing
    torch.testing.assert_close(logits, plain_logits)
    for b, sample in enumerate(books):
        assert len(sample) == heatmaps.shape[1]
        for m, entry in enumerate(sample):
            assert abs(entry.relevance_sum - float(heatmaps[b, m].detach().sum())) < 1e-9
            total = entry.relevance_sum + entry.absorbed_by_bias + entry.absorbed_by_epsilon
            assert abs(total + entry.start_gap - entry.score) <= 1e-5
            assert abs(entry.unaccounted) <= 1e-5
            assert entry.absorbed_by_bias != 0.0
    if target == "selective":  # the score is the log-odds of the least likely class
        probability = torch.softmax(logits, 1).min(1).values
        odds = torch.log(probability / (1 - probability))
        assert [s[0].score for s in books] == pytest.approx(odds.tolist(), abs=1e-9)
        assert all(s[0].start_gap != 0 for s in books)
    elif target == 1:
        assert [s[0].score for s in books] == pytest.approx(logits[:, 1].tolist(), abs=1e-12)


def _naive_vgg_ledger(model: nn.Module, x: torch.Tensor, target: int, epsilon: float,
                      zb: bool) -> tuple[torch.Tensor, list[tuple[float, float]]]:
    """Naive LRP of the tiny VGG for sample 0: every layer as (kind, fused weight, bias),
    the ε-rule by its formula, transposes by autograd; returns the heatmap and each ε layer's
    (Σ b·R/stab(z), Σ ε·sign(z)·R/stab(z)), top down."""
    layers: list[tuple[str, nn.Module | None, torch.Tensor | None, torch.Tensor | None]] = []
    features = list(model.features)
    for index, module in enumerate(features):
        if isinstance(module, nn.Conv2d):
            norm = features[index + 1]
            scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
            weight = module.weight * scale.view(-1, 1, 1, 1)
            bias = module.bias * scale + norm.bias - norm.running_mean * scale
            layers.append(("conv", module, weight.detach(), bias.detach()))
        elif isinstance(module, nn.MaxPool2d):
            layers.append(("maxpool", module, None, None))
    layers.append(("avgpool", model.avgpool, None, None))
    for module in model.classifier:
        if isinstance(module, nn.Linear):
            layers.append(("linear", module, module.weight.detach(), module.bias.detach()))

    def apply(kind, module, weight, bias, a):
        if kind == "conv":
            return F.conv2d(a, weight, bias, module.stride, module.padding)
        if kind == "linear":
            return F.linear(a.flatten(1), weight, bias)
        return module(a)

    activations, a = [], x[:1]
    for number, (kind, module, weight, bias) in enumerate(layers):
        activations.append(a)
        z = apply(kind, module, weight, bias, a)
        a = z if number == len(layers) - 1 or kind in ("maxpool", "avgpool") else torch.relu(z)
    relevance = torch.zeros_like(a)
    relevance[0, target] = a[0, target]
    books = []
    for number in reversed(range(len(layers))):
        kind, module, weight, bias = layers[number]
        a = activations[number].clone().requires_grad_(True)
        if kind == "maxpool":
            out = module(a)
            value = out.detach()
            carried = torch.where(value != 0, relevance.view_as(value) / value, 0.0)
            (grad,) = torch.autograd.grad((out * carried).sum(), a)
            relevance = a.detach() * grad
            continue
        z = apply(kind, module, weight, None if bias is None else bias, a).detach()
        stab = z + epsilon * torch.where(z >= 0, 1.0, -1.0)
        ratio = relevance.view_as(z) / stab
        shape = (1, -1, *[1] * (z.dim() - 2))
        bias_part = 0.0 if bias is None else float((ratio * bias.view(shape)).sum())
        books.append((bias_part, float((ratio * (stab - z)).sum())))
        if number == 0 and zb:
            low, high = torch.zeros_like(a), torch.ones_like(a)
            positive, negative = weight.clamp(min=0), weight.clamp(max=0)
            beta = bias - bias.clamp(max=0)  # authors': b − l·b⁺ − h·b⁻ with l = 0, h = 1
            zbox = (apply(kind, module, weight, None, a) - apply(kind, module, positive, None, low)
                    - apply(kind, module, negative, None, high) + beta.view(1, -1, 1, 1)).detach()
            stab = zbox + epsilon * torch.where(zbox >= 0, 1.0, -1.0)
            ratio = relevance.view_as(zbox) / stab
            books[-1] = (float((ratio * beta.view(1, -1, 1, 1)).sum()),
                         float((ratio * (stab - zbox)).sum()))
            ones = torch.ones_like(a, requires_grad=True)
            (g_w,) = torch.autograd.grad((apply(kind, module, weight, None, a) * ratio).sum(), a)
            (g_p,) = torch.autograd.grad((apply(kind, module, positive, None, ones) * ratio).sum(),
                                         ones)
            (g_n,) = torch.autograd.grad((apply(kind, module, negative, None, ones) * ratio).sum(),
                                         ones)
            relevance = a.detach() * g_w - low * g_p - high * g_n
            continue
        (grad,) = torch.autograd.grad((apply(kind, module, weight, None, a) * ratio).sum(), a)
        relevance = a.detach() * grad
    return relevance, books


@pytest.mark.parametrize("zb", [True, False])
def test_ledger_matches_an_independent_sum_of_bias_contributions(zb: bool) -> None:
    model = _model("tiny_vgg", biases=True)
    x = _images()
    _, heatmaps, books = isnet.explain(model, x, target=2, zb=zb, return_conservation=True)
    naive_map, naive_books = _naive_vgg_ledger(model, x, target=2, epsilon=0.01, zb=zb)
    torch.testing.assert_close(heatmaps[0, 0], naive_map[0])
    entry = books[0][0]
    assert [bias for _, bias, _ in entry.steps] == pytest.approx(
        [bias for bias, _ in naive_books], rel=1e-6, abs=1e-10)
    assert [eps for _, _, eps in entry.steps] == pytest.approx(
        [eps for _, eps in naive_books], rel=1e-6, abs=1e-10)
    independent = sum(bias for bias, _ in naive_books) + sum(eps for _, eps in naive_books)
    assert abs(entry.relevance_sum + independent - entry.score) <= 1e-5
    assert entry.steps[0][0] == "classifier" and entry.steps[-1][0].startswith("input layer")


def test_readout_flags_a_map_that_does_not_conserve() -> None:
    held = Conservation(score=10.0, relevance_sum=9.8, absorbed_by_bias=0.1,
                        absorbed_by_epsilon=0.1)
    lost = Conservation(score=10.39, relevance_sum=-5.38, absorbed_by_bias=15.0,
                        absorbed_by_epsilon=0.77)
    assert held.conserved and not lost.conserved
    assert lost.ratio == pytest.approx(-5.38 / 10.39)
    assert lost.bias_share == pytest.approx(15.0 / 10.39)
    assert set(lost.as_dict()) >= {"score", "relevance_sum", "ratio", "bias_share", "conserved"}
    assert 0 < CONSERVED_TOLERANCE < 1
    with pytest.raises(ValueError, match="no score"):
        BiasLedger().summary(torch.zeros(1, 1, 3, 4, 4))
