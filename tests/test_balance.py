"""Gradient balance (joint / separate clipping) and the P warm-up, against naive re-derivations."""

from __future__ import annotations

import pytest
import torch

import isnet
from isnet.training.balance import balanced_backward, heat_weight_at
from isnet.training.config import TrainConfig
from isnet.training.loop import build_network, compute_loss, fit, make_optimizer, train_step
from tests.conftest import biased_batch
from tests.test_train import image_set, tiny, tiny_config


def naive_separate_gradients(config: TrainConfig, heat_weight: float) -> dict[str, torch.Tensor]:
    """clip((1 − P)∇CE, c) + clip(P∇L, c) from two independent forward passes and backwards."""
    images, masks, labels = biased_batch()
    parts = []
    for which in ("classification", "heatmap"):
        model = tiny()
        network = build_network(model, config)
        network.train()
        terms, _, _ = compute_loss(network, images, masks, labels, config, heat_weight)
        loss = ((1 - heat_weight) * terms.classification if which == "classification"
                else heat_weight * terms.heatmap)
        loss.backward()
        grads = {n: (p.grad.clone() if p.grad is not None else torch.zeros_like(p))
                 for n, p in model.named_parameters()}
        norm = torch.sqrt(sum((g ** 2).sum() for g in grads.values()))
        scale = min(1.0, config.grad_clip_norm / (float(norm) + 1e-6))
        parts.append({n: g * scale for n, g in grads.items()})
    return {n: parts[0][n] + parts[1][n] for n in parts[0]}


@pytest.mark.parametrize("clip", [0.5, 1e6])
def test_separate_balance_equals_two_independent_clipped_gradients(clip):
    config = tiny_config(method="selective", gradient_balance="separate", grad_clip_norm=clip)
    images, masks, labels = biased_batch()
    model = tiny()
    network = build_network(model, config)
    network.train()
    terms, _, _ = compute_loss(network, images, masks, labels, config, 0.7)
    norms = balanced_backward(terms, 0.7, list(network.parameters()), "separate", clip)
    expected = naive_separate_gradients(config, 0.7)
    for name, parameter in model.named_parameters():
        torch.testing.assert_close(parameter.grad, expected[name], rtol=1e-9, atol=1e-12)
    assert norms["heatmap_grad_norm"] > 0 and norms["classification_grad_norm"] > 0


def test_joint_balance_is_the_plain_clipped_sum():
    config = tiny_config(method="selective", grad_clip_norm=0.5)
    images, masks, labels = biased_batch()
    grads = []
    for use_balance in (True, False):
        model = tiny()
        network = build_network(model, config)
        network.train()
        terms, _, _ = compute_loss(network, images, masks, labels, config)
        if use_balance:
            balanced_backward(terms, 0.7, list(network.parameters()), "joint", 0.5)
        else:
            terms.total.backward()
            torch.nn.utils.clip_grad_norm_(list(network.parameters()), 0.5)
        grads.append([p.grad.clone() for p in model.parameters()])
    for a, b in zip(*grads, strict=True):
        assert torch.equal(a, b)


def test_separate_step_gives_classification_a_larger_share_than_joint():
    """With clipping at 1 the joint step is dominated by the heatmap gradient; separate is not."""
    batch = biased_batch()
    losses = {}
    for balance in ("joint", "separate"):
        config = tiny_config(method="selective", gradient_balance=balance, learning_rate=0.05,
                             momentum=0.0, grad_clip_norm=1.0)
        isnet.seed_everything(config.seed)
        model = tiny()
        network, optimizer = build_network(model, config), make_optimizer(model, config)
        metrics = train_step(network, batch, optimizer, config)
        assert metrics["finite"]
        with torch.no_grad():
            losses[balance] = float(torch.nn.functional.cross_entropy(model.train()(batch[0]),
                                                                      batch[2]))
    assert losses["separate"] < losses["joint"]


def test_heat_weight_warmup_is_linear_then_constant():
    assert heat_weight_at(0.7, 0, 0.0) == 0.7
    assert heat_weight_at(0.7, 2, 0.0) == 0.0
    assert heat_weight_at(0.7, 2, 0.5) == pytest.approx(0.175)
    assert heat_weight_at(0.7, 2, 2.0) == pytest.approx(0.7)
    assert heat_weight_at(0.7, 2, 5.0) == pytest.approx(0.7)


def test_fit_with_warmup_logs_rising_heat_weight():
    result = fit(tiny(), image_set(), None, tiny_config(epochs=2, heat_warmup_epochs=2,
                                                        gradient_balance="separate"))
    assert result.status == "completed"
    first, second = (epoch["heat_weight"] for epoch in result.history)
    assert 0 < first < second < 0.7


def test_separate_balance_is_refused_where_it_cannot_apply():
    with pytest.raises(ValueError, match="gradient_balance"):
        TrainConfig(method="standard", gradient_balance="separate")
    with pytest.raises(ValueError, match="gradient_balance"):
        TrainConfig(gradient_balance="sideways")
    with pytest.raises(ValueError, match="heat_warmup_epochs"):
        TrainConfig(heat_warmup_epochs=-1)
