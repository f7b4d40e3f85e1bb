"""LRP through the DenseNet: invariants, an independent modified-gradient oracle, gradients."""

from __future__ import annotations

import pytest
import torch

import isnet
from isnet.lrp.config import LRPConfig
from isnet.lrp.registry import relevance_from_messages
from isnet.lrp.rules import stabilize
from isnet.lrp.targets import pooled_messages, stochastic_classes
from isnet.models.densenet import tiny_densenet
from tests.conftest import randomize_batchnorm

# a mode passed as target= is the old spelling: here it must not come back (isnet's own
# warning only, so third-party deprecations stay warnings)
pytestmark = pytest.mark.filterwarnings(r"error:explain\(target=:DeprecationWarning")


def _gradient_times_input(model, x, classes):
    x = x.clone().requires_grad_(True)
    logits = model(x)
    (grad,) = torch.autograd.grad(logits.gather(1, classes[:, None]).sum(), x)
    return grad * x


def _correlation(a, b):
    return torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1].item()


def test_lrp_zero_equals_gradient_times_input_on_tiny_model(tiny_model, images):
    classes = torch.tensor([0, 1, 2, 0])
    _, heatmaps = isnet.explain(tiny_model, images, classes, epsilon=1e-12, zb=False)
    torch.testing.assert_close(heatmaps[:, 0], _gradient_times_input(tiny_model, images, classes),
                               rtol=1e-7, atol=1e-10)


def test_lrp_zero_equals_gradient_times_input_on_densenet121(generator):
    torch.manual_seed(1)
    model = randomize_batchnorm(isnet.densenet121(num_classes=5).double(), generator).eval()
    x = torch.rand(2, 3, 64, 64, generator=generator, dtype=torch.float64)
    classes = torch.tensor([3, 1])
    _, heatmaps = isnet.explain(model, x, classes, epsilon=1e-12, zb=False)
    reference = _gradient_times_input(model, x, classes)
    assert _correlation(heatmaps[:, 0], reference) >= 0.99999


def _zero_biases(model):
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.bias.data.zero_()
            module.running_mean.zero_()
    model.classifier.bias.data.zero_()
    return model


def test_conservation_on_bias_free_network(tiny_model, images):
    model = _zero_biases(tiny_model)
    logits, heatmaps = isnet.explain(model, images, mode="all", epsilon=1e-12, zb=False)
    torch.testing.assert_close(heatmaps.sum((2, 3, 4)), logits, rtol=1e-8, atol=1e-12)


def test_epsilon_absorbs_relevance_on_bias_free_network(tiny_model, images):
    model = _zero_biases(tiny_model)
    logits, heatmaps = isnet.explain(model, images, mode="all", epsilon=0.1, zb=False)
    kept = heatmaps.sum((2, 3, 4)) / logits
    assert torch.all(kept < 1) and torch.all(kept > 0)


class _ModifiedGradient:
    """Independent ε-LRP oracle: gradient×input where each ReLU's backward is scaled by
    y/(y + ε), the global pool's output gradient by p/(p + ε) and the seed by y_c/stab(y_c).
    Hooks are owned by this object and removed on exit."""

    def __init__(self, model, epsilon):
        self.model, self.epsilon, self.handles = model, epsilon, []

    def __enter__(self):
        for module in self.model.modules():
            if isinstance(module, (torch.nn.ReLU, torch.nn.AdaptiveAvgPool2d)):
                self.handles.append(module.register_forward_hook(self._scale_gradient))
        return self

    def _scale_gradient(self, module, inputs, output):
        factor = output.detach() / stabilize(output.detach(), self.epsilon)
        output.register_hook(lambda grad: grad * factor)

    def __exit__(self, *exc):
        for handle in self.handles:
            handle.remove()

    def relevance(self, x, classes):
        x = x.clone().requires_grad_(True)
        logits = self.model(x)
        chosen = logits.gather(1, classes[:, None])
        seed = chosen.detach() / stabilize(chosen.detach(), self.epsilon)
        (grad,) = torch.autograd.grad(chosen, x, seed)
        return grad * x


@pytest.mark.parametrize("epsilon", [0.01, 0.5])
def test_epsilon_rule_matches_modified_gradient_oracle(tiny_model, images, epsilon):
    classes = torch.tensor([2, 0, 1, 1])
    _, heatmaps = isnet.explain(tiny_model, images, classes, epsilon=epsilon, zb=False)
    with _ModifiedGradient(tiny_model, epsilon) as oracle:
        expected = oracle.relevance(images, classes)
    torch.testing.assert_close(heatmaps[:, 0], expected)
    # hooks are gone: plain gradients are plain again
    assert not any(m._forward_hooks for m in tiny_model.modules())


def test_zb_rule_changes_only_the_first_layer(tiny_model, images):
    _, epsilon_maps = isnet.explain(tiny_model, images, 0, zb=False)
    _, zb_maps = isnet.explain(tiny_model, images, 0, zb=True)
    assert zb_maps.shape == epsilon_maps.shape == (4, 1, 3, 32, 32)
    assert not torch.allclose(zb_maps, epsilon_maps)
    # with bounds far outside the data both rules see the same relevance entering conv0
    assert torch.isfinite(zb_maps).all()


def test_all_mode_gives_one_map_per_class_equal_to_single_class_maps(tiny_model, images):
    _, all_maps = isnet.explain(tiny_model, images, mode="all")
    for k in range(3):
        _, single = isnet.explain(tiny_model, images, k)
        torch.testing.assert_close(all_maps[:, k], single[:, 0])


def test_selective_map_conserves_the_softmax_log_odds_decomposition(tiny_model, images):
    model = _zero_biases(tiny_model)
    logits, heatmaps = isnet.explain(model, images, mode="selective", epsilon=1e-12, zb=False)
    lowest = logits.argmin(1)
    expected = []
    for b, c in enumerate(lowest.tolist()):
        diffs = logits[b, c] - torch.cat([logits[b, :c], logits[b, c + 1:]])
        expected.append((diffs * torch.softmax(-diffs, 0)).sum())
    torch.testing.assert_close(heatmaps.sum((1, 2, 3, 4)), torch.stack(expected))


def test_stochastic_choice_is_top_half_the_time_and_seeded():
    logits = torch.randn(4000, 5, generator=torch.Generator().manual_seed(3))
    first = stochastic_classes(logits, torch.Generator().manual_seed(7))
    again = stochastic_classes(logits, torch.Generator().manual_seed(7))
    assert torch.equal(first, again)
    top_share = (first == logits.argmax(1)).double().mean().item()
    assert 0.46 < top_share < 0.54
    others = first[first != logits.argmax(1)]
    counts = torch.bincount(others, minlength=5).double()
    assert counts.min() > 0.15 * counts.sum()  # the other classes are all drawn


def test_isnet_forward_modes_and_deploy(tiny_model, images):
    net = isnet.ISNet(tiny_model, explain="all")
    logits, heatmaps = net(images)
    assert heatmaps.shape == (4, 3, 3, 32, 32)
    for mode in ("predicted", "selective", "stochastic"):
        _, one = isnet.ISNet(tiny_model, explain=mode)(images)
        assert one.shape == (4, 1, 3, 32, 32)
    _, target_maps = isnet.ISNet(tiny_model, explain="target")(images, torch.tensor([0, 1, 2, 0]))
    assert target_maps.shape == (4, 1, 3, 32, 32)
    net.heat = False
    torch.testing.assert_close(net(images), tiny_model(images))
    assert net.deploy() is tiny_model
    with pytest.raises(ValueError, match="explain mode"):
        isnet.ISNet(tiny_model, explain="everything")
    with pytest.raises(ValueError, match="needs target"):
        isnet.ISNet(tiny_model, explain="target")(images)


def test_two_models_in_one_process_do_not_interfere(tiny_model, images, generator):
    other = randomize_batchnorm(tiny_densenet(num_classes=3).double(), generator).eval()
    _, alone = isnet.explain(tiny_model, images, 1)
    logits_a, trace_a = tiny_model.forward_trace(images)
    _, trace_b = other.forward_trace(images * 0.5)  # a second model traced in between
    config = LRPConfig()
    messages = pooled_messages(tiny_model, trace_a, "target", config, 1)
    interleaved = relevance_from_messages(tiny_model, trace_a, messages, config)
    torch.testing.assert_close(interleaved, alone)


@pytest.mark.slow
def test_gradcheck_through_the_lrp_block(generator):
    torch.manual_seed(5)
    model = randomize_batchnorm(tiny_densenet(num_classes=3).double(), generator).eval()
    x = torch.rand(2, 3, 16, 16, generator=generator, dtype=torch.float64, requires_grad=True)
    mask = torch.zeros(2, 1, 16, 16, dtype=torch.float64)
    mask[:, :, 4:12, 4:12] = 1
    weight = model.features.denseblock1.denselayer1.conv2.weight

    net = isnet.ISNet(model, explain="all")

    def heat_of(inputs, conv_weight):
        replaced = {"backbone.features.denseblock1.denselayer1.conv2.weight": conv_weight}
        _, maps = torch.func.functional_call(net, replaced, (inputs,))
        return isnet.heatmap_loss(maps, mask)

    conv_weight = weight.detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(heat_of, (x, conv_weight), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("mode", ["all", "target"])
@pytest.mark.parametrize("training", [False, True])
def test_heatmap_loss_alone_reaches_every_parameter(tiny_model, images, masks, mode, training):
    tiny_model.train(training)
    net = isnet.ISNet(tiny_model, explain=mode)
    _, heatmaps = net(images, torch.tensor([0, 1, 2, 0]) if mode == "target" else None)
    isnet.heatmap_loss(heatmaps, masks).backward()
    for name, parameter in tiny_model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_detach_bias_option_controls_whether_shifts_enter_the_rules(tiny_model, images, masks):
    grads = {}
    for detach in (True, False):
        tiny_model.zero_grad()
        _, maps = isnet.ISNet(tiny_model, detach_bias=detach)(images)
        isnet.heatmap_loss(maps, masks).backward()
        grads[detach] = tiny_model.features.norm5.bias.grad.clone()
    assert not torch.allclose(grads[True], grads[False])


def test_old_name_e_is_a_deprecated_alias_of_epsilon(tiny_model, images):
    with pytest.warns(DeprecationWarning, match="epsilon"):
        _, old = isnet.explain(tiny_model, images, 0, e=0.3)
    _, new = isnet.explain(tiny_model, images, 0, epsilon=0.3)
    torch.testing.assert_close(old, new)
    with pytest.warns(DeprecationWarning):
        net = isnet.ISNet(tiny_model, e=0.3)
    assert net.config.epsilon == 0.3
    with pytest.raises(ValueError, match="not both"), pytest.warns(DeprecationWarning):
        isnet.ISNet(tiny_model, epsilon=0.1, e=0.3)


def test_one_lrp_config_travels_together_and_shortcuts_override_it(tiny_model, images):
    config = isnet.LRPConfig(epsilon=0.2, zb=False)
    net = isnet.ISNet(tiny_model, explain="selective", lrp=config)
    assert net.config == config
    assert isnet.ISNet(tiny_model, lrp=config, zb=True).config.zb is True
    _, from_config = isnet.explain(tiny_model, images, 1, lrp=config)
    _, from_keywords = isnet.explain(tiny_model, images, 1, epsilon=0.2, zb=False)
    torch.testing.assert_close(from_config, from_keywords)


def test_lrp_settings_as_trained_come_from_the_checkpoint_config():
    assert isnet.LRPConfig.as_trained(None) == isnet.LRPConfig()  # the paper's: ε 0.01, z^B
    assert isnet.LRPConfig.as_trained({"epsilon": 0.1, "zb": False, "lr": 3}) == \
        isnet.LRPConfig(epsilon=0.1, zb=False)
    assert isnet.LRPConfig.as_trained({"zb": False}, low=-1.0).low == -1.0
    with pytest.raises(ValueError, match="epsilon must be >= 0"):
        isnet.LRPConfig.as_trained({"epsilon": -1})


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_explaining_without_a_graph_gives_the_same_heatmaps(tiny_model, images, training):
    """Without autograd the DenseNet walk takes the cheaper ReLU form of the ε message
    (isnet.lrp.rules.relu_epsilon_message); the heatmaps must not change."""
    tiny_model.train(training)
    _, with_graph = isnet.explain(tiny_model, images)
    with torch.inference_mode():
        _, without = isnet.explain(tiny_model, images)
    torch.testing.assert_close(without, with_graph.detach())
