"""Issue 34, item 3: one request cannot take the server's memory.

* an editor value is bounded as a whole (layers, and pixels over all its files), before any of
  its files is decoded;
* a checkpoint's tensors are bounded before a network is built: parameters (also against the
  file's size, which stride-0 ``expand``-ed tensors in a ``torch.save`` file exceed by far),
  weight layers (depth) and channels (width).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from forged_inputs import forged_png
from PIL import Image
from ui_fixtures import launch_tiny_app, object_image

from isnet.io.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from isnet.io.limits import CheckpointLimits
from isnet.models.densenet import tiny_densenet


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bounds")
    patch = pytest.MonkeyPatch()
    patch.setenv("GRADIO_TEMP_DIR", str(tmp / "gradio"))  # this app's files in its own folder
    demo, url = launch_tiny_app(tmp)
    yield url, tmp
    demo.close()
    patch.undo()


def explain_with_layers(url: str, background: str, layers: list[str]):
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False)
    editor = {"background": handle_file(background),
              "layers": [handle_file(layer) for layer in layers], "composite": None}
    try:
        return client.predict(image_and_mask=editor, left_model="standard", right_model="isnet",
                              api_name="/explain")
    finally:
        client.close()


def stride_zero_file(path, classes: int = 400_000):
    """A small ``torch.save`` state dict of a tiny DenseNet whose classifier, expanded from one
    value, declares ``classes`` classes."""
    state = tiny_densenet(num_classes=3).state_dict()
    features = state["classifier.weight"].shape[1]
    state["classifier.weight"] = torch.zeros(1, 1).expand(classes, features)
    state["classifier.bias"] = torch.zeros(1).expand(classes)
    torch.save(state, path)
    return path


# --- editor values -----------------------------------------------------------------------------

def test_an_editor_value_with_too_many_layers_is_refused(app, tmp_path):
    url, _ = app
    image, mask = object_image(1)
    Image.fromarray(image).save(tmp_path / "image.png")
    layer = np.zeros((*mask.shape, 4), np.uint8)
    layer[mask] = (0, 255, 0, 255)
    Image.fromarray(layer).save(tmp_path / "layer.png")
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="sent 5 layers; at most 4"):
        explain_with_layers(url, str(tmp_path / "image.png"), [str(tmp_path / "layer.png")] * 5)
    assert explain_with_layers(url, str(tmp_path / "image.png"), [str(tmp_path / "layer.png")])


def test_an_editor_value_too_large_in_all_is_refused_before_decoding(app, tmp_path):
    from gradio_client.exceptions import AppError

    url, _ = app
    big = str(forged_png(tmp_path / "big.png", 6000, 6000))  # 36 MP each: under the file limit
    with pytest.raises(AppError, match="too large together"):
        explain_with_layers(url, big, [big] * 4)  # 180 MP in all


# --- checkpoints -------------------------------------------------------------------------------

def test_a_stride_zero_pth_declaring_a_huge_model_is_refused_before_building(
        tmp_path, no_building):
    path = stride_zero_file(tmp_path / "expanded.pth")
    assert path.stat().st_size < 300_000
    with pytest.raises(CheckpointError, match="more than a file of .* bytes can hold"):
        load_checkpoint(path)
    big = stride_zero_file(tmp_path / "big.pth", classes=300_000)
    with pytest.raises(CheckpointError, match="parameters; at most 1,000,000"):
        load_checkpoint(big, CheckpointLimits(max_parameters=1_000_000))
    assert CheckpointLimits().max_parameters == 200_000_000  # documented: a VGG19 fits
    assert no_building == []


def test_a_stride_zero_pth_is_refused_through_the_app(app, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    url, _ = app
    client = Client(url, verbose=False)
    with pytest.raises(AppError, match="can hold"):
        client.predict(checkpoint_file=handle_file(str(stride_zero_file(tmp_path / "x.pth"))),
                       display_name="", api_name="/load_checkpoint")
    client.close()


def test_a_checkpoint_declaring_a_too_deep_network_is_refused_before_building(
        tmp_path, no_building):
    torch.manual_seed(0)
    deep = tiny_densenet(block_config=(160,), growth_rate=2, bn_size=1, num_init_features=4)
    path = save_checkpoint(tmp_path / "deep.safetensors", deep, model_name="tiny_densenet",
                           class_names=["a", "b", "c"], input_size=32, half=True)
    assert path.stat().st_size < 1_000_000
    with pytest.raises(CheckpointError, match="322 weight layers; at most 300"):
        load_checkpoint(path)
    assert no_building == []


def test_a_too_wide_convolution_is_refused_and_usual_models_load(tmp_path):
    torch.manual_seed(0)
    wide = tiny_densenet(num_init_features=5000)
    path = save_checkpoint(tmp_path / "wide.safetensors", wide, model_name="tiny_densenet",
                           class_names=["a", "b", "c"], input_size=32)
    with pytest.raises(CheckpointError, match="5,004 channels; at most 4,096"):
        load_checkpoint(path)
    usual = save_checkpoint(tmp_path / "usual.safetensors", tiny_densenet(), input_size=32)
    assert load_checkpoint(usual).model.num_classes == 3


# --- small ones (item 7) -----------------------------------------------------------------------

def test_non_finite_normalisation_long_names_and_nan_whole_numbers_get_clear_messages(app):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    url, tmp = app
    torch.manual_seed(0)
    path = save_checkpoint(tmp / "plain.safetensors", tiny_densenet(), input_size=32,
                           overwrite=True)
    client = Client(url, verbose=False)
    for mean, std in (("nan", "1"), ("0.5", "inf")):
        with pytest.raises(AppError, match="must be finite numbers"):
            client.predict(checkpoint_file=handle_file(str(path)), display_name="n",
                           norm_mean=mean, norm_std=std, api_name="/load_checkpoint")
    with pytest.raises(AppError, match="at most 120 characters"):
        client.predict(checkpoint_file=handle_file(str(path)), display_name="x" * 100_000,
                       api_name="/load_checkpoint")
    client.close()
    image, _ = object_image(1)
    Image.fromarray(image).save(tmp / "nan.png")
    answer = raw_explain_with_nan_top_k(url, tmp / "nan.png")
    assert "whole-number setting was given NaN" in answer, answer


def raw_explain_with_nan_top_k(url: str, picture) -> str:
    """``/explain`` through raw HTTP with NaN as the number of top predictions (JSON clients
    such as gradio_client cannot send NaN; a raw request can); the answer's text."""
    import json

    import httpx

    base = url.rstrip("/") + "/gradio_api"
    with open(picture, "rb") as stream:
        uploaded = httpx.post(f"{base}/upload", files={"files": stream}).json()[0]
    background = {"path": uploaded, "meta": {"_type": "gradio.FileData"}}
    editor = json.dumps({"background": background, "layers": [], "composite": None})
    info = httpx.get(f"{base}/info").json()["named_endpoints"]["/explain"]["parameters"]
    values = [p.get("parameter_default") for p in info]
    names = [p["parameter_name"] for p in info]
    values[names.index("left_model")], values[names.index("right_model")] = "standard", "isnet"
    texts = [json.dumps(v) for v in values]
    texts[names.index("image_and_mask")] = editor
    texts[names.index("top_predictions")] = "NaN"
    body = '{"data": [' + ", ".join(texts) + "]}"
    event = httpx.post(f"{base}/call/explain", content=body,
                       headers={"content-type": "application/json"}).json()["event_id"]
    return httpx.get(f"{base}/call/explain/{event}", timeout=60).text
