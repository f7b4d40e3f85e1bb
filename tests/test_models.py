"""The LRP-ready DenseNet: torchvision-compatible keys, rewrites, BN fusion, weight formats."""

from __future__ import annotations

import pickle

import pytest
import torch
import torchvision

import isnet
from isnet.io.architecture import load_weights, model_for_state_dict
from isnet.lrp.canonize import batchnorm_affine, batchnorm_output
from isnet.models.densenet import tiny_densenet
from tests.conftest import randomize_batchnorm


def test_parameter_keys_and_shapes_equal_torchvision():
    ours = isnet.densenet121(num_classes=7).state_dict()
    theirs = torchvision.models.densenet121(num_classes=7).state_dict()
    assert list(ours) == list(theirs)
    assert all(ours[k].shape == theirs[k].shape for k in ours)
    assert sum(p.numel() for p in tiny_densenet().parameters()) < 3000


@pytest.mark.parametrize("name", ["densenet161", "densenet169", "densenet201"])
def test_other_depths_match_torchvision_keys(name):
    ours = isnet.create_model(name, num_classes=4).state_dict()
    theirs = getattr(torchvision.models, name)(num_classes=4).state_dict()
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}


def test_every_relu_is_its_own_non_inplace_module():
    model = isnet.densenet121(num_classes=3)
    relus = [m for m in model.modules() if isinstance(m, torch.nn.ReLU)]
    assert len(relus) == len({id(m) for m in relus}) == 2 * 58 + 3 * 2 + 2
    assert not any(m.inplace for m in relus)


def test_only_the_extra_transition_relu_differs_from_torchvision(generator):
    ours = randomize_batchnorm(isnet.densenet121(num_classes=4).double(), generator).eval()
    theirs = torchvision.models.densenet121(num_classes=4).double().eval()
    theirs.load_state_dict(ours.state_dict())
    x = torch.rand(2, 3, 64, 64, generator=generator, dtype=torch.float64)
    assert not torch.allclose(ours(x), theirs(x))
    for name in ("transition1", "transition2", "transition3"):
        getattr(ours.features, name).relu2 = torch.nn.Identity()
    torch.testing.assert_close(ours(x), theirs(x))


@pytest.mark.parametrize("training", [False, True])
def test_trace_forward_equals_plain_forward(tiny_model, images, training):
    tiny_model.train(training)
    torch.testing.assert_close(tiny_model.forward_trace(images)[0], tiny_model(images))


@pytest.mark.parametrize("training", [False, True])
def test_batchnorm_fusion_reproduces_the_module(generator, training):
    norm = torch.nn.BatchNorm2d(5).double()
    randomize_batchnorm(norm, generator).train(training)
    x = torch.randn(4, 5, 6, 6, generator=generator, dtype=torch.float64)
    scale, shift = batchnorm_affine(norm, x)
    torch.testing.assert_close(batchnorm_output(x, scale, shift), norm(x))


def test_batchnorm_fusion_detaches_shift_and_keeps_scale_differentiable(generator):
    norm = randomize_batchnorm(torch.nn.BatchNorm2d(3).double(), generator).eval()
    x = torch.randn(2, 3, 4, 4, generator=generator, dtype=torch.float64)
    scale, shift = batchnorm_affine(norm, x, detach_bias=True)
    assert scale.requires_grad and not shift.requires_grad
    assert batchnorm_affine(norm, x, detach_bias=False)[1].requires_grad


def _authors_layout(state, prefix="DenseNet.", classifier_index=True):
    """An IsDense-style dict built by renaming keys, with LRPBlock aliases of the same tensors."""
    out = {}
    for key, value in state.items():
        if classifier_index and key.startswith("classifier."):
            key = key.replace("classifier.", "classifier.1.")
        out[prefix + key] = value
    out["LRPBlock.LRPInitialLayers.conv.layer.weight"] = state["features.conv0.weight"]
    out["LRPBlock.LRPFinalLayers.Dense.layer.weight"] = state["classifier.weight"]
    return out


def test_torchvision_state_dict_loads():
    source = torchvision.models.densenet121(num_classes=5).state_dict()
    state = isnet.load_reference_state_dict(source)
    model = load_weights(model_for_state_dict(state), state)
    assert model.num_classes == 5
    torch.testing.assert_close(model.features.conv0.weight, source["features.conv0.weight"])


@pytest.mark.parametrize("prefix", ["DenseNet.", "classifierDNN."])
def test_authors_lightning_checkpoint_loads(tmp_path, generator, prefix):
    original = randomize_batchnorm(isnet.densenet121(num_classes=3), generator).eval()
    checkpoint = {"state_dict": _authors_layout(original.state_dict(), prefix),
                  "hyper_parameters": {"classes": 3, "e": 0.1, "P": 0.7}}
    path = tmp_path / "isnet.ckpt"
    torch.save(checkpoint, path)
    state = isnet.load_reference_state_dict(path)
    model = load_weights(model_for_state_dict(state), state).eval()
    x = torch.rand(1, 3, 64, 64, generator=generator)
    torch.testing.assert_close(model(x), original(x))


def test_wrong_weights_name_the_missing_and_unexpected_keys(generator):
    state = isnet.load_reference_state_dict(tiny_densenet(num_classes=3).state_dict())
    state["features.extra.weight"] = torch.zeros(1)
    del state["features.norm5.bias"]
    with pytest.raises(ValueError, match=r"missing keys: features\.norm5\.bias.*unexpected keys: "
                                         r"features\.extra\.weight"):
        load_weights(tiny_densenet(num_classes=3), state)
    with pytest.raises(ValueError, match="no DenseNet weights"):
        isnet.load_reference_state_dict({"encoder.weight": torch.zeros(2)})


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_malicious_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    with open(path, "wb") as handle:
        pickle.dump({"state_dict": _Exploit(str(marker))}, handle)
    with pytest.raises(ValueError, match="refused for safety"):
        isnet.load_reference_state_dict(path)
    assert not marker.exists()
