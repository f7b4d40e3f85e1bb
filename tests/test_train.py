"""Training loop: determinism, the ISNet step's effect, progress, stopping and divergence."""

from __future__ import annotations

import copy

import pytest
import torch

import isnet
from isnet.models.densenet import DenseNet, tiny_densenet
from isnet.training.config import TrainConfig
from isnet.training.loop import (
    FitResult,
    build_network,
    fit,
    make_optimizer,
    train_step,
)
from tests.conftest import biased_batch

SEED = 0xDEADBEEF


def tiny(num_classes: int = 3) -> DenseNet:
    torch.manual_seed(SEED)
    return tiny_densenet(num_classes=num_classes).double()


def image_set(count: int = 12):
    images, masks, labels = biased_batch(count)
    from isnet.data.image_set import ImageSet

    return ImageSet(images, masks, labels, ["a", "b", "c"])


def tiny_config(**changes) -> TrainConfig:
    values = dict(model="tiny_densenet", num_classes=3, method="selective", epochs=1,
                  batch_size=4, input_size=32, seed=7)
    return TrainConfig(**{**values, **changes})


@pytest.mark.parametrize("variant", ["standard", "all", "selective", "stochastic"])
def test_two_steps_are_finite_and_deterministic(variant):
    config = tiny_config(method=variant)
    batch = biased_batch()
    states = []
    for _ in range(2):
        isnet.seed_everything(config.seed)
        model = tiny()
        network, optimizer = build_network(model, config), make_optimizer(model, config)
        for _ in range(2):
            metrics = train_step(network, batch, optimizer, config)
            assert metrics["finite"] and torch.isfinite(torch.tensor(metrics["loss"]))
        states.append(copy.deepcopy(model.state_dict()))
    initial = tiny().state_dict()
    assert any(not torch.equal(states[0][k], initial[k]) for k in initial)  # it did train
    for key in states[0]:
        assert torch.equal(states[0][key], states[1][key]), key


def test_fit_is_deterministic_by_seed():
    data = image_set()
    weights = [fit(tiny(), data, None, tiny_config(epochs=2)).model.state_dict() for _ in range(2)]
    other = fit(tiny(), data, None, tiny_config(epochs=2, seed=8)).model.state_dict()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert any(not torch.equal(weights[0][k], other[k]) for k in other)  # seed shuffles


def test_one_isnet_step_lowers_background_share():
    images, masks, labels = biased_batch()
    config = tiny_config(method="all", learning_rate=0.05, momentum=0.0, grad_clip_norm=1.0)
    model = tiny()
    network = build_network(model, config)
    network.train()

    def share() -> float:
        with torch.no_grad():
            _, heatmaps = network(images)
        return float(isnet.background_share(heatmaps, masks).mean())

    before = share()
    train_step(network, (images, masks, labels), make_optimizer(model, config), config)
    after = share()
    assert after < before - 0.01, (before, after)


def test_mask_margin_trains_as_if_the_masks_were_grown():
    images, masks, labels = biased_batch()
    grown = isnet.loss.grow_masks(masks, 2)
    assert grown.sum() > masks.sum()
    after = []
    for config, batch_masks in ((tiny_config(mask_margin=2), masks), (tiny_config(), grown),
                                (tiny_config(), masks)):
        model = tiny()
        network = build_network(model, config)
        metrics = train_step(network, (images, batch_masks, labels),
                             make_optimizer(model, config), config)
        after.append((metrics["heatmap_loss"], torch.cat([p.flatten() for p in
                                                          model.parameters()])))
    assert after[0][0] == pytest.approx(after[1][0], rel=1e-12)
    torch.testing.assert_close(after[0][1], after[1][1])
    assert after[0][0] != pytest.approx(after[2][0], rel=1e-6)  # the margin changed the loss


def test_standard_step_is_cross_entropy_only():
    images, masks, labels = biased_batch()
    model = tiny()
    config = tiny_config(method="standard")
    expected = float(torch.nn.functional.cross_entropy(model.train()(images), labels).detach())
    metrics = train_step(build_network(model, config), (images, masks, labels),
                         make_optimizer(model, config), config)
    assert metrics["loss"] == pytest.approx(expected)
    assert metrics["heatmap_loss"] == 0.0 and metrics["background_share"] is None


def test_progress_validation_and_history():
    data, calls = image_set(), []
    result = fit(tiny(), data, data, tiny_config(epochs=2),
                 on_progress=lambda step, total, metrics: calls.append((step, total, metrics)))
    assert isinstance(result, FitResult) and result.status == "completed"
    assert [c[0] for c in calls] == list(range(1, 7)) and {c[1] for c in calls} == {6}
    assert [c[2]["epoch"] for c in calls] == [1, 1, 1, 2, 2, 2]
    assert "val_accuracy" in calls[2][2] and "val_accuracy" not in calls[1][2]
    assert [h["epoch"] for h in result.history] == [1, 2]
    for record in result.history:
        assert 0.0 <= record["val_accuracy"] <= 1.0
        assert 0.0 <= record["val_background_share"] <= 1.0
    assert not result.model.training


def test_cosine_schedule_decays_the_learning_rate():
    rates = []
    fit(tiny(), image_set(), None, tiny_config(epochs=2, schedule="cosine", learning_rate=0.1),
        on_progress=lambda step, total, metrics: rates.append(metrics["learning_rate"]))
    assert rates[0] == pytest.approx(0.1) and len(rates) == 6
    assert all(a > b for a, b in zip(rates, rates[1:], strict=False)) and rates[-1] < 0.01


def test_should_stop_ends_between_steps():
    asked = []

    def should_stop() -> bool:
        asked.append(True)
        return len(asked) > 2

    result = fit(tiny(), image_set(), None, tiny_config(epochs=3), should_stop=should_stop)
    assert result.status == "stopped" and result.steps == 2 and result.history == []


def test_divergence_stops_restores_and_advises():
    model = tiny()
    initial = copy.deepcopy(model.state_dict())
    # learning rates above 10 are refused by TrainConfig; a low divergence_ratio makes 10 enough
    config = tiny_config(method="standard", learning_rate=10.0, momentum=0.0, divergence_ratio=2.0,
                         grad_clip_norm=None, epochs=4, divergence_patience=2)
    result = fit(model, image_set(), None, config)
    assert result.status == "diverged"
    assert "decay" in result.advice and "learning rate" in result.advice
    for key, value in initial.items():
        assert torch.equal(result.model.state_dict()[key], value), key


def test_config_round_trip_and_validation():
    config = tiny_config(foreground_range=(2.0, 30.0))
    assert TrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="method"):
        tiny_config(method="gradcam")
    with pytest.raises(ValueError, match="heat_weight"):
        tiny_config(heat_weight=1.5)
    with pytest.raises(ValueError, match="mask_margin"):
        tiny_config(mask_margin=-1)
    assert TrainConfig.from_dict(tiny_config(mask_margin=3).to_dict()).mask_margin == 3
    with pytest.raises(ValueError, match="unknown settings"):
        TrainConfig.from_dict({"lr": 0.1})
    with pytest.raises(ValueError, match="num_classes"):
        fit(tiny(num_classes=3), image_set(), None, tiny_config(num_classes=4))


def test_measure_and_evaluation_table():
    from isnet.evaluate import format_table
    from isnet.training.evaluate import measure

    values = measure(tiny().eval(), image_set(), batch_size=5)
    assert values["count"] == 12 and 0 <= values["accuracy"] <= 1
    assert 0 < values["background_share"] < 1
    table = format_table({"m": {"biased": values}})
    assert "| m | biased |" in table


def test_recalibrate_batchnorm_gives_exact_averages():
    from isnet.training.loop import recalibrate_batchnorm

    model = tiny().eval()
    images = biased_batch(8)[0]
    norm0 = model.features.norm0
    recalibrate_batchnorm(model, [(images[:4],), (images[4:],)])
    features = model.features.conv0(images)  # (8, F0, 16, 16)
    torch.testing.assert_close(norm0.running_mean, features.mean((0, 2, 3)))
    assert norm0.momentum == 0.1 and not model.training
    halves = [features[:4].var((0, 2, 3)), features[4:].var((0, 2, 3))]  # unbiased per batch
    torch.testing.assert_close(norm0.running_var, (halves[0] + halves[1]) / 2)


def test_mask_margin_background_tint_and_optimiser_reach_the_config_through_the_command_line():
    from isnet.train import build_parser, config_from_args

    args = ["--out", "x", "--mask-margin", "2", "--background-tint", "0.25", "--optimizer", "adamw"]
    config, _ = config_from_args(build_parser().parse_args(args))
    assert (config.mask_margin, config.background_tint, config.optimizer) == (2, 0.25, "adamw")
    default = config_from_args(build_parser().parse_args(["--out", "x"]))[0]
    assert (default.mask_margin, default.optimizer) == (0, "sgd")
    with pytest.raises(ValueError, match="mask_margin"):
        config_from_args(build_parser().parse_args(["--out", "x", "--mask-margin", "-1"]))


def test_the_heatmap_loss_shape_reaches_the_config_through_the_command_line():
    from isnet.train import build_parser, config_from_args

    default = config_from_args(build_parser().parse_args(["--out", "x"]))[0]
    assert (default.zb, default.foreground_range, default.foreground_form, default.saturation) \
        == (True, (1.0, 25.0), "l2", 1.0)  # the paper's loss
    args = ["--out", "x", "--input-rule", "epsilon", "--foreground-range", "1", "250",
            "--foreground-form", "hybrid", "--saturation", "2"]
    config = config_from_args(build_parser().parse_args(args))[0]
    assert (config.zb, config.foreground_range, config.foreground_form, config.saturation) \
        == (False, (1.0, 250.0), "hybrid", 2.0)
    assert TrainConfig.from_dict(config.to_dict()) == config  # what the checkpoint stores
    with pytest.raises(ValueError, match="foreground_range"):
        config_from_args(build_parser().parse_args(["--out", "x", "--foreground-range", "5",
                                                    "2"]))


def test_adamw_takes_the_adamw_step_with_momentum_as_beta1():
    """Two AdamW steps against the update written out (β₁ = momentum, β₂ = 0.999, decoupled
    weight decay), with a β₁ other than AdamW's default so that the wiring shows."""
    config = tiny_config(optimizer="adamw", learning_rate=1e-3, momentum=0.8, weight_decay=0.1)
    model = tiny()
    optimizer = make_optimizer(model, config)
    parameter = next(model.parameters())
    start = parameter.detach().clone()
    gradients = [torch.randn_like(start), torch.randn_like(start)]
    for gradient in gradients:
        for p in model.parameters():
            p.grad = torch.zeros_like(p)
        parameter.grad = gradient.clone()
        optimizer.step()
    beta1, beta2, lr, decay = 0.8, 0.999, 1e-3, 0.1
    expected, first, second = start.clone(), torch.zeros_like(start), torch.zeros_like(start)
    for step, gradient in enumerate(gradients, 1):
        expected = expected * (1 - lr * decay)
        first = beta1 * first + (1 - beta1) * gradient
        second = beta2 * second + (1 - beta2) * gradient**2
        corrected = (first / (1 - beta1**step)) / ((second / (1 - beta2**step)).sqrt() + 1e-8)
        expected = expected - lr * corrected
    torch.testing.assert_close(parameter.detach(), expected, rtol=1e-12, atol=1e-12)


def test_sgd_stays_the_default_and_an_unknown_optimiser_is_refused():
    assert isinstance(make_optimizer(tiny(), tiny_config()), torch.optim.SGD)
    with pytest.raises(ValueError, match="optimizer must be one of sgd, adamw, got 'adam'"):
        tiny_config(optimizer="adam")


def test_an_adamw_isnet_trains_and_its_checkpoint_keeps_the_optimiser(tmp_path):
    config = tiny_config(optimizer="adamw", learning_rate=1e-3, epochs=2)
    result = fit(tiny(), image_set(), None, config)
    assert result.status == "completed" and result.steps == 6
    path = tmp_path / "adamw.safetensors"
    isnet.save_checkpoint(path, result.model, model_name="tiny_densenet",
                          class_names=["a", "b", "c"], input_size=32, config=config.to_dict())
    _, metadata = isnet.load_checkpoint(path)
    assert TrainConfig.from_dict(metadata["config"]).optimizer == "adamw"
    assert TrainConfig.from_dict({k: v for k, v in config.to_dict().items()
                                  if k != "optimizer"}).optimizer == "sgd"  # older checkpoints


@pytest.mark.parametrize("balance", ["joint", "separate"])
@pytest.mark.parametrize(("optimizer", "bad"), [("sgd", float("nan")), ("adamw", float("inf"))])
def test_a_step_on_non_finite_gradients_leaves_the_weights_alone(optimizer, bad, balance):
    """A finite loss with a NaN or infinite gradient skips the update and says so. ``fit``
    would hide a step taken anyway (it restores the last good weights), so the step is tested
    alone; then a finite step trains as usual."""
    config = tiny_config(method="selective", gradient_balance=balance, optimizer=optimizer,
                         learning_rate=0.01, momentum=0.9)
    model = tiny()
    network, optimizer_ = build_network(model, config), make_optimizer(model, config)
    before = copy.deepcopy(dict(model.named_parameters()))
    hook = model.classifier.weight.register_hook(lambda grad: torch.full_like(grad, bad))
    metrics = train_step(network, biased_batch(), optimizer_, config)
    hook.remove()
    assert metrics["finite"] is False and torch.isfinite(torch.tensor(metrics["loss"]))
    assert not torch.isfinite(torch.tensor(metrics["grad_norm"]))
    for name, parameter in model.named_parameters():
        assert torch.equal(parameter, before[name]), name
        assert parameter.grad is None, name
    assert not optimizer_.state  # no momentum or moments from the bad gradient
    metrics = train_step(network, biased_batch(), optimizer_, config)
    assert metrics["finite"] is True
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert not torch.equal(model.classifier.weight, before["classifier.weight"])
