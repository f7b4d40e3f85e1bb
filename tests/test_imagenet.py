"""ImageNet preprocessing for 1000-class torchvision state dicts (random weights, no downloads)."""

from __future__ import annotations

import pytest
import torch
import torchvision

import isnet
from isnet.io.checkpoints import load_checkpoint
from isnet.io.imagenet import imagenet_preprocessing

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # torchvision's ImageNet constants


@pytest.mark.parametrize("name", ["resnet50", "vgg16_bn", "densenet121", "tiny_resnet", None])
def test_preprocessing_comes_from_torchvision_without_download(name):
    facts = imagenet_preprocessing(name)
    assert len(facts.class_names) == 1000 and len(set(facts.class_names)) == 1000
    assert facts.class_names[0] == "tench" and facts.class_names[281] == "tabby"
    assert (facts.input_size, facts.resize_size) == (224, 256)
    assert facts.mean == pytest.approx(MEAN) and facts.std == pytest.approx(STD)
    for low, high, mean, std in zip(facts.low, facts.high, MEAN, STD, strict=True):
        assert low == pytest.approx(-mean / std) and high == pytest.approx((1 - mean) / std)
        assert low * std + mean == pytest.approx(0.0) and high * std + mean == pytest.approx(1.0)


def _check_imagenet_metadata(metadata):
    assert metadata["class_names"][:2] == ["tench", "goldfish"]
    assert len(metadata["class_names"]) == 1000
    assert metadata["input_size"] == 224
    assert metadata["normalisation"]["mean"] == pytest.approx(list(MEAN))
    assert metadata["normalisation"]["std"] == pytest.approx(list(STD))
    low, high = metadata["bounds"]
    assert low == pytest.approx([-m / s for m, s in zip(MEAN, STD, strict=True)])
    assert high == pytest.approx([(1 - m) / s for m, s in zip(MEAN, STD, strict=True)])


def test_thousand_class_resnet_state_dict_gets_imagenet_metadata(tmp_path):
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tmp_path / "r18.pth")
    model, metadata = load_checkpoint(tmp_path / "r18.pth")
    assert metadata["model_name"] == "resnet18" and metadata["family"] == "resnet"
    _check_imagenet_metadata(metadata)
    # the per-channel bounds drive z^B directly
    low, high = metadata["bounds"]
    x = torch.rand(1, 3, 64, 64)
    normalised = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    _, heatmaps = isnet.explain(model, normalised, bounds=(low, high))
    assert heatmaps.shape == (1, 1, 3, 64, 64) and torch.isfinite(heatmaps).all()


def test_thousand_class_vgg_state_dict_gets_imagenet_metadata(tmp_path):
    features = torchvision.models.vgg.make_layers([8, "M", 16, "M"], batch_norm=False)
    with torch.device("meta"):  # torchvision's 4096-wide classifier is replaced below
        theirs = torchvision.models.vgg.VGG(features, init_weights=False)
    theirs.avgpool = torch.nn.AdaptiveAvgPool2d(1)
    theirs.classifier = torch.nn.Sequential(
        torch.nn.Linear(16, 8), torch.nn.ReLU(), torch.nn.Dropout(),
        torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Dropout(), torch.nn.Linear(8, 1000))
    torch.save(theirs.state_dict(), tmp_path / "vgg.pth")
    _, metadata = load_checkpoint(tmp_path / "vgg.pth")
    assert metadata["family"] == "vgg" and metadata["model_name"] is None
    _check_imagenet_metadata(metadata)


def test_other_class_counts_keep_the_plain_defaults(tmp_path):
    torch.save(isnet.create_model("tiny_resnet", num_classes=10).state_dict(), tmp_path / "t.pth")
    _, metadata = load_checkpoint(tmp_path / "t.pth")
    assert metadata["class_names"] == [str(i) for i in range(10)]
    assert metadata["input_size"] is None and metadata["bounds"] == [0.0, 1.0]
    assert metadata["normalisation"] == {"mean": None, "std": None}
