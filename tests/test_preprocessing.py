"""Torchvision-faithful preprocessing (issue 29 item 4): models with ImageNet metadata see the
short side resized to 256 and the centre 224 cropped, exactly as ``weights.transforms()`` feeds
them; masks follow the crop; the explorer shows the crop and records the preprocessing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from scipy.ndimage import binary_erosion
from torchvision import tv_tensors
from torchvision.transforms import v2
from ui_fixtures import make_context

from explorer.entries import ModelEntry
from explorer.handlers import models as hm
from explorer.handlers.explain import ExplainRequest, LRPOverrides, explain, explain_cached
from explorer.handlers.export import models_of
from explorer.media.editor import EditorInput, editor_value
from explorer.media.tensors import mask_tensor, model_input, model_view, resize_mode
from isnet import background_share
from isnet.data.transforms import (
    Preprocessing,
    crop_box,
    crop_pixels,
    has_imagenet_metadata,
    preprocessing_of,
)
from isnet.io.imagenet import imagenet_preprocessing
from isnet.models.densenet import tiny_densenet

WEIGHTS = torchvision.models.ResNet18_Weights.IMAGENET1K_V1


def _photo(height: int = 300, width: int = 451, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A noisy (H, W, 3) uint8 picture with a bright off-centre rectangle, and its mask."""
    rng = np.random.default_rng(seed)
    image = (rng.random((height, width, 3)) * 255).astype(np.uint8)
    mask = np.zeros((height, width), bool)
    mask[60:240, 30:200] = True
    image[mask] = 250
    return image, mask


def _imagenet_entry(model_id: str = "inet") -> ModelEntry:
    torch.manual_seed(0)
    metadata = {**imagenet_preprocessing("resnet18").metadata(), "model_name": "tiny_densenet"}
    return ModelEntry(model_id, "Tiny ImageNet", tiny_densenet(num_classes=1000).eval(), metadata)


def test_a_451_by_300_image_equals_torchvision_weights_transforms():
    image, mask = _photo()
    entry = _imagenet_entry()
    assert resize_mode(entry.metadata) == "crop" and entry.input_size == 224
    ours = model_input(image, entry.input_size, entry.normalisation, "crop")[0]
    theirs = WEIGHTS.transforms()(torch.from_numpy(image).permute(2, 0, 1))
    assert ours.shape == theirs.shape == (3, 224, 224)
    assert torch.allclose(ours, theirs, atol=1e-6, rtol=0)
    # the mask: through the same resize and crop as torchvision's v2 moves a Mask with its image
    cropped = mask_tensor(mask, 224, "crop")[0, 0].bool()
    steps = v2.Compose([v2.Resize(256, antialias=True), v2.CenterCrop(224)])
    expected = steps(tv_tensors.Mask(torch.from_numpy(mask.astype(np.uint8))[None]))[0].bool()
    assert torch.equal(cropped, expected)
    # … and it still covers the bright rectangle of the cropped picture (edges aside)
    bright = torch.from_numpy(crop_pixels(image, None, 224)[0].min(axis=2) > 240)
    inner = torch.from_numpy(binary_erosion(cropped.numpy(), iterations=2))
    assert bool(bright[inner].all())
    assert 0.2 < float(cropped.float().mean()) < 0.8


@pytest.mark.parametrize("shape", [(300, 451), (451, 300), (224, 224), (1000, 257)])
def test_the_crop_box_is_where_the_crop_lies_in_the_original(shape):
    height, width = shape
    top, left, box_h, box_w = crop_box(height, width, 224)
    side = min(height, width) * 224 / 256
    assert abs(box_h - side) <= 1.5 and abs(box_w - side) <= 1.5
    assert abs(top + box_h / 2 - height / 2) <= 1.5 and abs(left + box_w / 2 - width / 2) <= 1.5


def test_which_models_crop():
    assert has_imagenet_metadata(_imagenet_entry().metadata)
    assert preprocessing_of({"class_names": ["a", "b"], "input_size": 64}).resize == "squeeze"
    recorded = {"input_size": 96, "data": {"transforms": Preprocessing(96, resize="crop")
                                           .describe()}}
    assert preprocessing_of(recorded).resize == "crop" and preprocessing_of(recorded).size == 96
    names_only = {**_imagenet_entry().metadata, "normalisation": {"mean": None, "std": None}}
    assert preprocessing_of(names_only).resize == "squeeze"  # overridden: not torchvision's


def test_a_loaded_imagenet_state_dict_crops_and_says_so(tmp_path):
    ctx = make_context(tmp_path)
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tmp_path / "r18.pth")
    entry = hm.load_model_file(ctx, "bo", str(tmp_path / "r18.pth"))
    assert resize_mode(entry.metadata) == "crop"
    card = hm.model_card(entry)
    assert "**Preprocessing:** short side resized to 256" in card and "centre 224×224" in card
    bundled = ctx.store.get(ctx.default_pair[0], None)
    assert resize_mode(bundled.metadata) == "squeeze"
    assert "whole picture resized" in hm.model_card(bundled)
    record = models_of([entry, bundled])
    assert record[0]["preprocessing"]["resize"] == "crop"
    assert record[0]["preprocessing"]["short_side"] == 256
    assert record[1]["preprocessing"]["resize"] == "squeeze"


def test_explain_shows_the_crop_and_measures_the_cropped_mask(tmp_path):
    ctx = make_context(tmp_path)
    entry = ctx.store.add(_imagenet_entry())
    other = ctx.default_pair[0]
    image, mask = _photo()
    pair = explain(ctx, None, ExplainRequest(EditorInput(editor_value(image, mask)), entry.model_id,
                                                other))
    left, right = pair.views
    assert left.overlay.shape[0] == pytest.approx(left.overlay.shape[1], abs=2)  # the crop
    assert right.overlay.shape[1] / right.overlay.shape[0] == pytest.approx(451 / 300, rel=0.02)
    seen = model_view(image, 224, "crop")
    assert seen.shape[:2] == crop_box(300, 451, 224)[2:]
    x = model_input(image, 224, entry.normalisation, "crop")
    heatmap = explain_cached(ctx, entry, x, None, LRPOverrides()).heatmap  # the cached map
    region = mask_tensor(mask, 224, "crop").double()
    cropped = float(background_share(heatmap[None, None], region)[0])
    assert left.share == pytest.approx(cropped, abs=1e-4)
    assert any("centre square" in notice for notice in pair.notices)
