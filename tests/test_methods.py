"""The comparison methods: each trains, explains itself, saves and loads; formulas vs oracles."""

from __future__ import annotations

import inspect
import math

import pytest
import torch
import torch.nn.functional as F
from captum.attr import InputXGradient, LayerAttribution, LayerGradCam
from torch import nn

import isnet
from isnet.data.image_set import ImageSet
from isnet.io.architecture import build_model, infer_architecture
from isnet.models.ham import log_sum_exp_pool
from isnet.models.sononet import GridAttentionGate
from isnet.training.config import TrainConfig
from isnet.training.loop import build_network, make_optimizer, train_step
from isnet.training.methods import COMPARISON_METHODS, as_explainer, create_network, get_method
from isnet.training.methods.gain import gain_terms, grad_cam, soft_mask
from isnet.training.methods.gradient_input import gradient_times_input
from isnet.training.methods.ham import mask_supervision, refine_cams
from isnet.training.methods.rrr import log_probability_gradient, rrr_penalty
from isnet.training.methods.vit import attention_rollout
from tests.conftest import biased_batch

SEED = 0xDEADBEEF


def method_config(method: str, **changes) -> TrainConfig:
    model = {"vit": "tiny_vit", "unet_multitask": "tiny_multitask_unet",
             "ag_sononet": "tiny_ag_sononet"}.get(method, "tiny_densenet")
    values = dict(model=model, num_classes=3, method=method, epochs=1, batch_size=6,
                  input_size=32, seed=7, learning_rate=1e-2)
    return TrainConfig(**{**values, **changes})


def method_network(method: str) -> nn.Module:
    torch.manual_seed(SEED)
    return create_network(method_config(method)).double()


def test_every_registered_method_is_a_training_method():
    lrp_methods = {"standard", "all", "selective", "stochastic"}
    assert set(COMPARISON_METHODS) == set(isnet.TRAINING_METHODS) - lrp_methods


@pytest.mark.parametrize("method", COMPARISON_METHODS)
def test_loss_decreases_in_a_few_steps(method):
    config = method_config(method)
    model = method_network(method)
    network, optimizer = build_network(model, config), make_optimizer(model, config)
    batch = biased_batch(6)
    losses = [train_step(network, batch, optimizer, config)["loss"] for _ in range(6)]
    assert all(math.isfinite(value) for value in losses)
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("method", COMPARISON_METHODS)
def test_native_map_shape_finite_and_share(method):
    model = method_network(method).eval()
    images, masks, labels = biased_batch(6)
    native = get_method(method).native_map(model, images)
    assert native.shape == (6, 1, 32, 32)
    assert torch.isfinite(native).all() and (native >= 0).all()
    values = isnet.measure(model, ImageSet(images, masks, labels, ["a", "b", "c"]),
                           explainer=as_explainer(get_method(method).native_map))
    assert 0.0 <= values["background_share"] <= 1.0 and values["count"] == 6


@pytest.mark.parametrize("method", COMPARISON_METHODS)
def test_checkpoint_round_trip(method, tmp_path):
    config = method_config(method)
    model = method_network(method).float().eval()
    path = isnet.save_checkpoint(tmp_path / f"{method}.safetensors", model,
                                 config=config.to_dict(), model_name=config.model)
    loaded, metadata = isnet.load_checkpoint(path)
    images = biased_batch(6)[0].float()
    assert type(loaded) is type(model) and metadata["config"]["method"] == method
    torch.testing.assert_close(loaded(images), model(images))


def test_measure_falls_back_to_native_map_without_lrp():
    for method in COMPARISON_METHODS:
        model = method_network(method).eval()
        if isnet.lrp.is_lrp_ready(model):
            continue
        images, masks, labels = biased_batch(6)
        values = isnet.measure(model, ImageSet(images, masks, labels, ["a", "b", "c"]))
        assert 0.0 <= values["background_share"] <= 1.0


# --- RRR ---------------------------------------------------------------------------------------

def test_rrr_penalty_equals_naive_autograd(tiny_model, images, masks):
    _, gradient = log_probability_gradient(tiny_model, images)
    penalty = rrr_penalty(gradient, masks)
    for b in range(len(images)):  # one sample at a time, straight from the definition
        x = images[b:b + 1].clone().requires_grad_(True)
        (naive,) = torch.autograd.grad(F.log_softmax(tiny_model(x), 1).sum(), x)
        expected = ((naive * (1 - masks[b:b + 1])) ** 2).sum()
        torch.testing.assert_close(penalty[b], expected)


def test_rrr_penalty_trains_the_weights(tiny_model, images, masks):
    _, gradient = log_probability_gradient(tiny_model, images)
    rrr_penalty(gradient, masks).sum().backward()
    assert tiny_model.features.conv0.weight.grad.abs().sum() > 0


# --- GAIN --------------------------------------------------------------------------------------

class _OneChannel(nn.Module):
    """x → 1×1 conv of weight 1 → ReLU (``features.relu5``) → spatial mean m → logits (m, −m)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential()
        self.features.add_module("conv", nn.Conv2d(1, 1, 1, bias=False))
        self.features.add_module("relu5", nn.ReLU())
        self.classifier = nn.Linear(1, 2, bias=False)
        with torch.no_grad():
            self.features.conv.weight.fill_(1.0)
            self.classifier.weight.copy_(torch.tensor([[1.0], [-1.0]]))

    def forward(self, x):
        return self.classifier(self.features(x).mean((2, 3)))


def test_gain_soft_mask_and_terms_by_hand():
    sigmoid = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    cam = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    torch.testing.assert_close(soft_mask(cam), torch.tensor(
        [sigmoid(-5), 0.5, sigmoid(5)], dtype=torch.float64))
    model = _OneChannel().double()
    image = torch.tensor([[[[0.0, 2.0], [4.0, 0.0]]]], dtype=torch.float64)
    mask = torch.tensor([[[[0.0, 1.0], [1.0, 0.0]]]], dtype=torch.float64)
    terms = gain_terms(model, image, mask, torch.tensor([0]))
    # Grad-CAM: ∂y₀/∂a = 1/4 everywhere → weight 1/4 → cam = x/4 = [[0, .5], [1, 0]].
    torch.testing.assert_close(terms.cam, image / 4)
    # I* = x·(1 − T) = [[0, 1], [4·σ(−5), 0]]; logits (m, −m); softmax₀ = σ(2m).
    erased_mean = (1 + 4 * sigmoid(-5)) / 4
    assert terms.mining.item() == pytest.approx(sigmoid(2 * erased_mean), rel=1e-12)
    assert terms.supervision.item() == pytest.approx(0.5 ** 2 / 4, rel=1e-12)
    assert terms.classification.item() == pytest.approx(math.log(1 + math.exp(-3)), rel=1e-12)
    assert terms.total.item() == pytest.approx(
        math.log(1 + math.exp(-3)) + sigmoid(2 * erased_mean) + 10 * 0.0625, rel=1e-12)


def test_gain_grad_cam_equals_captum(tiny_model, images):
    classes = torch.tensor([0, 1, 2, 1])
    _, cam = grad_cam(tiny_model, images, classes, create_graph=False)
    reference = LayerGradCam(tiny_model, tiny_model.features.relu5).attribute(
        images, target=classes, relu_attributions=True)
    torch.testing.assert_close(cam, LayerAttribution.interpolate(reference, (32, 32), "bilinear"))


def test_gain_attention_terms_train_the_weights(tiny_model, images, masks):
    terms = gain_terms(tiny_model, images, masks, torch.tensor([0, 1, 2, 1]))
    (terms.supervision + terms.mining).backward()
    assert tiny_model.features.conv0.weight.grad.abs().sum() > 0


# --- ISNet Grad×Input ----------------------------------------------------------------------------

def test_gradient_times_input_equals_captum(tiny_model, images):
    _, maps = gradient_times_input(tiny_model, images, create_graph=False)
    assert maps.shape == (4, 3, 3, 32, 32)
    for k in range(3):
        expected = InputXGradient(tiny_model).attribute(images.clone().requires_grad_(True),
                                                        target=k)
        torch.testing.assert_close(maps[:, k], expected / len(images))  # batch-mean logit


# --- U-Nets --------------------------------------------------------------------------------------

def test_segment_then_classify_passes_the_predicted_mask_on():
    model = method_network("unet_segment").eval()
    images = biased_batch(6)[0]
    seen = []
    handle = model.classifier.register_forward_hook(lambda m, args, out: seen.append(args[0]))
    try:
        logits = model(images)  # the image alone: no mask at test time
    finally:
        handle.remove()
    keep = (torch.sigmoid(model.segmenter(images)) > 0.5).double()
    torch.testing.assert_close(seen[0], images * keep)
    torch.testing.assert_close(logits, model.classifier(images * keep))
    assert list(inspect.signature(model.forward).parameters) == ["x"]


def test_segmentation_loss_trains_the_unet():
    config = method_config("unet_segment")
    model = method_network("unet_segment")
    images, masks, labels = biased_batch(6)
    terms, _, maps = get_method("unet_segment").loss(model, images, masks, labels, config)
    terms.heatmap.backward()
    assert model.segmenter.last.weight.grad.abs().sum() > 0
    assert maps.shape == (6, 1, 1, 32, 32)


@pytest.mark.parametrize("method", ["unet_segment", "unet_multitask", "ag_sononet"])
def test_architecture_is_read_back_from_weights(method):
    model = method_network(method)
    family, architecture = infer_architecture(model.state_dict())
    assert family == {"unet_segment": "segment_classify", "unet_multitask": "multitask_unet",
                      "ag_sononet": "ag_sononet"}[method]
    rebuilt = build_model(family, architecture)
    assert rebuilt.arch == model.arch


# --- ViT -----------------------------------------------------------------------------------------

def test_attention_rollout_by_hand():
    generator = torch.Generator().manual_seed(SEED)
    first, second = (torch.rand(2, 3, 5, 5, generator=generator, dtype=torch.float64)
                     .softmax(-1) for _ in range(2))
    rollout = attention_rollout([first, second])
    identity = torch.eye(5, dtype=torch.float64)
    expected = (0.5 * (second.mean(1) + identity)) @ (0.5 * (first.mean(1) + identity))
    torch.testing.assert_close(rollout, expected)
    torch.testing.assert_close(rollout.sum(-1), torch.ones(2, 5, dtype=torch.float64))


def test_vit_attention_weights_are_the_ones_used():
    model = method_network("vit").eval()
    images = biased_batch(6)[0]
    logits, weights = model.forward_attention(images)
    assert len(weights) == 1 and weights[0].shape == (6, 2, 17, 17)
    torch.testing.assert_close(weights[0].sum(-1), torch.ones(6, 2, 17, dtype=torch.float64))
    torch.testing.assert_close(logits, model(images))
    with pytest.raises(ValueError, match="image_size"):
        model(torch.zeros(1, 3, 64, 64, dtype=torch.float64))


# --- AG-Sononet ----------------------------------------------------------------------------------

def test_grid_attention_gate_equals_its_formula():
    torch.manual_seed(SEED)
    gate = GridAttentionGate(in_channels=3, gating_channels=4, inter_channels=5).double()
    x = torch.rand(2, 3, 4, 4, dtype=torch.float64)
    g = torch.rand(2, 4, 4, 4, dtype=torch.float64)  # same grid: no upsampling involved
    attended, attention = gate(x, g)
    theta = torch.einsum("oc,bchw->bohw", gate.theta.weight[:, :, 0, 0], x)
    phi = torch.einsum("oc,bchw->bohw", gate.phi.weight[:, :, 0, 0], g)
    psi = torch.einsum("oc,bchw->bohw", gate.psi.weight[:, :, 0, 0], torch.relu(theta + phi))
    psi = psi + gate.psi.bias.view(1, 1, 1, 1)
    shifted = psi - psi.amin((2, 3), keepdim=True)
    expected = shifted / shifted.sum((2, 3), keepdim=True)
    torch.testing.assert_close(attention, expected)
    torch.testing.assert_close(attended, (expected * x).sum((2, 3)))
    torch.testing.assert_close(attention.sum((2, 3)), torch.ones(2, 1, dtype=torch.float64))


# --- HAM -----------------------------------------------------------------------------------------

def test_ham_pooling_refinement_and_supervision_by_hand():
    x = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]], dtype=torch.float64)
    expected = (math.log(sum(math.exp(6 * v) for v in (0, 1, 2, 3))) - math.log(4)) / 6
    assert log_sum_exp_pool(x).item() == pytest.approx(expected, rel=1e-12)
    refined = refine_cams(x, (2, 2))  # same size: only min–max and the sigmoid
    normalised = torch.tensor([[0.0, 1 / 3], [2 / 3, 1.0]], dtype=torch.float64)
    torch.testing.assert_close(refined[0, 0], torch.sigmoid(100 * (normalised - 0.4)))
    mask = torch.tensor([[[0.0, 0.0], [1.0, 1.0]]], dtype=torch.float64)
    value = mask_supervision(refined[:, 0], mask)
    hand = ((refined[0, 0] - mask[0]) ** 2).sum() / (refined.sum() + 2)
    torch.testing.assert_close(value, hand)


def test_ham_architecture_is_read_back_from_weights():
    model = method_network("ham")
    family, architecture = infer_architecture(model.state_dict())
    assert family == "ham" and build_model(family, architecture).arch == model.arch


@pytest.mark.slow  # importing Lightning takes tens of seconds on a busy CPU
def test_lightning_module_builds_each_methods_network():
    from isnet.training.lightning import ISNetLightningModule

    for method, kind in (("unet_segment", "SegmentThenClassify"), ("vit", "VisionTransformer"),
                         ("ham", "HAMNet")):
        module = ISNetLightningModule(method_config(method))
        assert type(module.model).__name__ == kind
