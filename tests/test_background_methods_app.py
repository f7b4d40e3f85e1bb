"""Issue 33: a checkpoint of each mask-based background method round-trips (save, load) and the
launched app explains it through ``gradio_client`` (a free port of 127.0.0.1)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from ui_fixtures import CLASSES, SIZE, launch_tiny_app, named, object_image

import isnet
from explorer.components import LOAD_CHECKPOINT_OUTPUTS
from isnet.training.config import TrainConfig
from isnet.training.loop import build_network, make_optimizer, train_step
from isnet.training.methods import create_network
from tests.conftest import biased_batch

pytestmark = pytest.mark.timeout(300)
NEW_METHODS = ("background_swap", "background_random", "isnet_swap", "swap_consistency")


def trained_checkpoint(method: str, folder: Path) -> tuple[Path, torch.nn.Module]:
    """A tiny DenseNet trained two steps by ``method`` on the biased batch, saved."""
    config = TrainConfig(model="tiny_densenet", num_classes=len(CLASSES), method=method,
                         epochs=1, batch_size=6, input_size=SIZE, seed=7)
    torch.manual_seed(5)
    model = create_network(config)
    network, optimizer = build_network(model, config), make_optimizer(model, config)
    images, masks, labels = biased_batch(6)
    for _ in range(2):
        train_step(network, (images.float(), masks.float(), labels), optimizer, config)
    path = isnet.save_checkpoint(folder / f"{method}.safetensors", model.eval(),
                                 model_name=config.model, class_names=list(CLASSES),
                                 input_size=SIZE, config=config.to_dict(), overwrite=True)
    return Path(path), model


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("background-methods")
    patch = pytest.MonkeyPatch()
    patch.setenv("GRADIO_TEMP_DIR", str(tmp / "gradio"))
    demo, url = launch_tiny_app(tmp, work_dir=tmp / "gradio" / "work")
    yield url, tmp
    demo.close()
    patch.undo()


def test_each_checkpoint_round_trips_and_is_explained_by_the_app(app):
    from gradio_client import Client, handle_file

    url, folder = app
    client = Client(url, verbose=False)
    image, mask = object_image(1, seed=1)
    Image.fromarray(image).save(folder / "photo.png")
    Image.fromarray((mask * 255).astype(np.uint8)).save(folder / "photo-mask.png")
    batch = biased_batch(6)[0].float()
    for method in NEW_METHODS:
        path, model = trained_checkpoint(method, folder)
        loaded, metadata = isnet.load_checkpoint(path)
        assert metadata["config"]["method"] == method
        torch.testing.assert_close(loaded.eval()(batch), model(batch))
        answer = named(LOAD_CHECKPOINT_OUTPUTS, client.predict(
            checkpoint_file=handle_file(str(path)), display_name=method,
            api_name="/load_checkpoint"))
        model_id = [i for label, i in answer["left_model"]["choices"] if label == method][0]
        result, files = client.predict(handle_file(str(folder / "photo.png")),
                                       mask=handle_file(str(folder / "photo-mask.png")),
                                       left=model_id, right="standard",
                                       api_name="/api/explain")
        left = result["models"]["left"]
        assert left["id"] == model_id and set(left["probabilities"]) == set(CLASSES)
        assert 0 <= left["background_share"] <= 1
        heatmap = np.load(files[0])
        assert heatmap.shape == (3, SIZE, SIZE) and np.isfinite(heatmap).all()


def test_the_bias_labs_test_set_run_measures_each_new_method(tmp_path):
    """The Bias lab's "Over the test set" on a model of each new method (Fashion-MNIST classes,
    32 px, as the arena trains them): one row per model, every unseen kind measured."""
    from ui_fixtures import make_context

    from explorer.catalog import entry_from_checkpoint
    from explorer.handlers.robustness import RobustnessRequest, measure
    from isnet.data.bias.config import BIAS_KINDS
    from isnet.data.fashion_mnist import FASHION_MNIST_CLASSES

    ctx = make_context(tmp_path)
    ids = []
    for method in NEW_METHODS:
        config = TrainConfig(model="tiny_densenet", num_classes=10, method=method, input_size=32)
        torch.manual_seed(1)
        path = isnet.save_checkpoint(tmp_path / f"{method}.safetensors",
                                     create_network(config).eval(), model_name=config.model,
                                     class_names=list(FASHION_MNIST_CLASSES), input_size=32,
                                     config=config.to_dict())
        entry = ctx.store.add(entry_from_checkpoint(path, ctx.store.new_id("arena"), method,
                                                    owner="ivy"))
        ids.append(entry.model_id)
    view = measure(ctx, "ivy", RobustnessRequest(tuple(ids), images=12))
    assert [row[0] for row in view.rows] == list(NEW_METHODS)
    assert all(len(row) == 2 + len(BIAS_KINDS) for row in view.rows)
