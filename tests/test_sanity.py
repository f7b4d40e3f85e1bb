"""Sanity checks: the untrained flag and the cascading model-randomisation test."""

import pytest
import torch
import torchvision

import isnet
from isnet.analysis.sanity import (
    model_randomisation,
    randomisation_stages,
    spearman,
    ssim,
    untrained_signs,
)
from isnet.sanity import main
from tests.conftest import SEED, randomize_batchnorm


def test_fresh_torchvision_resnet18_is_flagged_untrained():
    model = isnet.create_model("resnet18", num_classes=1000)
    model.load_state_dict(torchvision.models.resnet18().state_dict())
    assert any("initial statistics" in sign for sign in untrained_signs(model))


@pytest.mark.parametrize("name", ["standard_densenet121", "isnet_resnet18"])
def test_bundled_models_are_not_flagged(name):
    loaded = isnet.load_checkpoint(f"assets/checkpoints/{name}.safetensors")
    assert untrained_signs(loaded.model) == []


def _trained_tiny():
    torch.manual_seed(SEED)
    model = isnet.create_model("tiny_resnet", num_classes=3).double()
    return randomize_batchnorm(model, torch.Generator().manual_seed(SEED)).eval()


def test_a_map_is_identical_to_itself():
    heat = torch.rand(16, 16, generator=torch.Generator().manual_seed(SEED), dtype=torch.float64)
    assert spearman(heat, heat) == pytest.approx(1.0)
    assert ssim(heat, heat) == pytest.approx(1.0)


def test_cascade_runs_top_down():
    model = _trained_tiny()
    stages = randomisation_stages(model, stages=3)
    order = [name for name, m in model.named_modules()
             if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear, torch.nn.BatchNorm2d))]
    flat = [name for stage in stages for name in stage]
    assert flat == list(reversed(order))
    assert stages[0][0] == "fc" and stages[-1][-1] == "conv1"


def test_similarity_falls_as_layers_are_randomised():
    model = _trained_tiny()
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(SEED),
                   dtype=torch.float64)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    results = model_randomisation(model, x, stages=4)
    assert [r.stage for r in results] == [0, 1, 2, 3, 4]
    assert results[0].spearman == pytest.approx(1.0) and results[0].ssim == pytest.approx(1.0)
    assert results[-1].spearman < 0.9 and results[-1].ssim < results[0].ssim
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # untouched


def test_command_prints_similarity_and_the_flag(tmp_path, capsys):
    model = isnet.create_model("tiny_resnet", num_classes=3)
    path = tmp_path / "fresh.safetensors"
    isnet.save_checkpoint(path, model, model_name="tiny_resnet", class_names=["a", "b", "c"],
                          input_size=32)
    image = tmp_path / "image.png"
    from PIL import Image

    Image.new("RGB", (40, 30), (120, 30, 200)).save(image)
    assert main([str(path), str(image), "--stages", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("untrained: all") and "spearman" in out and out.count("\n") >= 5


def test_card_and_predictions_say_untrained(tmp_path):
    from types import SimpleNamespace

    from explorer.handlers.models import untrained_line

    fresh = isnet.create_model("tiny_resnet", num_classes=3)
    assert "Untrained?" in untrained_line(SimpleNamespace(model=fresh))[-1]
    assert untrained_line(SimpleNamespace(model=_trained_tiny())) == []
