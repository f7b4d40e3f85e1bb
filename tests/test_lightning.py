"""Lightning scale-out: same training as the plain loop, and a real 2-process DDP run (gloo)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import isnet
from isnet.models.densenet import DenseNet, tiny_densenet
from isnet.training.config import TrainConfig
from isnet.training.lightning import ISNetLightningModule, fit_lightning
from isnet.training.loop import fit

ROOT = Path(__file__).resolve().parents[1]
SEED = 0xDEADBEEF


def _data(count: int = 16):
    generator = torch.Generator().manual_seed(SEED)
    images = torch.rand(count, 3, 32, 32, generator=generator)
    masks = torch.zeros(count, 1, 32, 32)
    masks[:, :, 8:24, 8:24] = 1
    labels = torch.arange(count) % 3
    return isnet.ImageSet(images, masks, labels, ["a", "b", "c"])


def _model() -> DenseNet:
    torch.manual_seed(SEED)
    return tiny_densenet(num_classes=3)


@pytest.mark.parametrize("schedule, balance, warmup, tint", [("constant", "joint", 0, 0.0),
                                                             ("cosine", "joint", 0, 0.5),
                                                             ("constant", "separate", 1, 0.0)])
def test_single_device_lightning_equals_plain_fit(tmp_path, schedule, balance, warmup, tint):
    config = TrainConfig(model="tiny_densenet", num_classes=3, method="selective", epochs=2,
                         batch_size=4, input_size=32, seed=3, schedule=schedule,
                         gradient_balance=balance, heat_warmup_epochs=warmup,
                         background_tint=tint)
    data = _data()
    # Lightning trains channels-first; so does the plain loop here (its float32 rounding
    # differs channels-last, and grows over the steps)
    plain = fit(_model(), data, None, config, memory_format=torch.contiguous_format)
    plain = plain.model.state_dict()
    result, trainer = fit_lightning(_model(), data, data, config, devices=1, strategy="auto",
                                    accelerator="cpu", root_dir=str(tmp_path))
    assert trainer.world_size == 1 and result.steps == 8 and result.status == "completed"
    assert [h["epoch"] for h in result.history] == [1, 2]
    assert 0 <= result.history[-1]["val_background_share"] <= 1
    for key, value in result.model.state_dict().items():
        torch.testing.assert_close(value, plain[key], rtol=1e-4, atol=1e-5, msg=key)


def test_module_keeps_the_config_and_one_copy_of_the_weights():
    config = TrainConfig(model="tiny_densenet", num_classes=3, method="all", input_size=32)
    module = ISNetLightningModule(config)
    assert module.hparams["config"] == config.to_dict()
    assert isinstance(module.model, DenseNet)
    assert set(module.state_dict()) == {f"network.backbone.{k}"
                                        for k in module.model.state_dict()}


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_completes(tmp_path):
    out = tmp_path / "ddp.safetensors"
    command = [sys.executable, "-m", "isnet.train", "--out", str(out), "--model",
               "tiny_densenet", "--method", "selective", "--size", "32", "--train-limit", "32",
               "--val-limit", "16", "--epochs", "1", "--batch-size", "8", "--no-evaluate",
               "--devices", "2", "--strategy", "ddp", "--accelerator", "cpu", "--threads", "1"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    model, metadata = isnet.load_checkpoint(out)
    assert metadata["provenance"]["trainer"] == "lightning"
    assert metadata["provenance"]["world_size"] == 2
    assert metadata["metrics"]["steps"] == 2  # 32 images / (8 per step × 2 processes)
    assert metadata["config"]["method"] == "selective"
    assert all(torch.isfinite(p).all() for p in model.parameters())
