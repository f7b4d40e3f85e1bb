"""The how-to pages' examples run: the example family keeps the family contract, the example
training method trains (docs/how-to/, examples in docs/how-to/examples/)."""

import importlib
import sys
from pathlib import Path

import pytest
import torch

import isnet
import isnet.lrp.registry
import isnet.models.registry
import isnet.training.config
import isnet.training.methods.registry
from isnet.models.registry import family_spec
from isnet.training.config import TrainConfig
from isnet.training.loop import fit
from tests.conftest import SEED, biased_batch
from tests.family_contract import CONTRACT, subject

EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "how-to" / "examples"


@pytest.fixture
def examples(monkeypatch):
    """Imports an example module by name, with every registry restored afterwards (the
    example's family, models, walk and method do not leak into other tests)."""
    for module, names in ((isnet.models.registry, ("_BUILDERS", "_FAMILIES", "_FAMILY_SPECS")),
                          (isnet.lrp.registry, ("_WALKS", "_WITH_QUIRKS")),
                          (isnet.training.methods.registry, ("_METHODS", "_NATIVE_BY_CLASS"))):
        for name in names:
            monkeypatch.setattr(module, name, type(getattr(module, name))(getattr(module, name)))
    monkeypatch.syspath_prepend(str(EXAMPLES))
    loaded = []

    def load(name: str):
        loaded.append(name)
        return importlib.import_module(name)

    yield load
    for name in loaded:
        sys.modules.pop(name, None)


@pytest.mark.parametrize("check", CONTRACT, ids=lambda check: check.__name__.removeprefix("check_"))
def test_the_example_family_keeps_the_family_contract(examples, check, tmp_path):
    examples("plain_cnn")
    examples("plain_cnn_walk")
    check(subject(family_spec("plain_cnn")), tmp_path)


def test_the_example_training_method_trains_and_its_loss_falls(examples, monkeypatch):
    monkeypatch.setattr(isnet.training.config, "TRAINING_METHODS",
                        (*isnet.training.config.TRAINING_METHODS, "object_only"))
    method = examples("object_only")
    images, masks, labels = biased_batch(count=8)
    data = isnet.ImageSet(images.float(), masks.float(), labels, ["a", "b", "c"])
    config = TrainConfig(model="tiny_densenet", num_classes=3, method="object_only", epochs=4,
                         batch_size=4, input_size=32, learning_rate=0.05, seed=0)
    torch.manual_seed(SEED)
    result = fit(isnet.create_model("tiny_densenet", num_classes=3), data, None, config)

    assert result.status == "completed"
    assert result.steps == 8
    losses = [epoch["loss"] for epoch in result.history]
    assert losses[-1] < losses[0], losses
    maps = method.gradient_times_input_map(result.model.eval(), images.float()[:2])
    assert maps.shape == (2, 1, 32, 32)
    assert bool((maps >= 0).all())


def test_an_unregistered_method_is_refused_by_name():
    with pytest.raises(ValueError, match="object_only"):
        TrainConfig(model="tiny_densenet", num_classes=3, method="object_only")
