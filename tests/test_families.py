"""What every model family must do the same way: the ISNet wrapper in every explain mode, two
training steps through the plain loop, and Lightning training like the plain loop (tiny models)."""

import pytest
import torch

import isnet
from isnet.training.config import TrainConfig
from isnet.training.lightning import fit_lightning
from isnet.training.loop import fit
from tests.conftest import SEED, randomize_batchnorm

FAMILIES = [("tiny_densenet", "selective"), ("tiny_resnet", "selective"),
            ("tiny_vgg", "stochastic")]


@pytest.mark.parametrize("name", [name for name, _ in FAMILIES])
def test_isnet_wrapper_in_every_explain_mode(name, generator, images):
    torch.manual_seed(SEED)
    model = randomize_batchnorm(isnet.create_model(name, num_classes=3).double(), generator)
    model.eval()
    for mode in isnet.EXPLAIN_MODES:
        target = torch.tensor([0, 1, 2, 0]) if mode == "target" else None
        logits, heatmaps = isnet.ISNet(model, explain=mode)(images, target)
        assert logits.shape == (4, 3)
        assert heatmaps.shape == ((4, 3, 3, 32, 32) if mode == "all" else (4, 1, 3, 32, 32))
        assert torch.isfinite(heatmaps).all()


@pytest.mark.parametrize(("name", "method"), FAMILIES)
def test_fit_runs_two_isnet_steps(name, method):
    generator = torch.Generator().manual_seed(SEED)
    images = torch.rand(8, 3, 32, 32, generator=generator, dtype=torch.float64)
    masks = torch.zeros(8, 1, 32, 32, dtype=torch.float64)
    masks[..., 8:24, 8:24] = 1
    data = isnet.ImageSet(images, masks, torch.arange(8) % 3, ["a", "b", "c"])
    config = TrainConfig(model=name, num_classes=3, method=method, epochs=1, batch_size=4,
                         input_size=32, seed=7)
    torch.manual_seed(SEED)
    model = isnet.create_model(name, num_classes=3).double()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = fit(model, data, None, config)
    assert result.status == "completed" and result.steps == 2
    assert any(not torch.equal(before[k], v) for k, v in result.model.state_dict().items())


@pytest.mark.parametrize("name", ["tiny_resnet", "tiny_vgg"])
def test_lightning_trains_like_the_plain_loop(name, tmp_path):
    """(DenseNet's version, with more settings, is in tests/test_lightning.py.)"""
    generator = torch.Generator().manual_seed(SEED)
    images = torch.rand(8, 3, 32, 32, generator=generator)
    masks = torch.zeros(8, 1, 32, 32)
    masks[..., 8:24, 8:24] = 1
    data = isnet.ImageSet(images, masks, torch.arange(8) % 3, ["a", "b", "c"])
    config = TrainConfig(model=name, num_classes=3, method="selective", epochs=1,
                         batch_size=4, input_size=32, seed=3)
    torch.manual_seed(SEED)
    plain = fit(isnet.create_model(name, num_classes=3), data, None, config).model.state_dict()
    torch.manual_seed(SEED)
    result, _ = fit_lightning(isnet.create_model(name, num_classes=3), data, None, config,
                              devices=1, accelerator="cpu", root_dir=str(tmp_path))
    assert result.status == "completed" and result.steps == 2
    for key, value in result.model.state_dict().items():
        torch.testing.assert_close(value, plain[key], rtol=1e-4, atol=1e-5, msg=key)
