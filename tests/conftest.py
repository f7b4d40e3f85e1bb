"""Shared fixtures: seeds, tiny DenseNets in float64 with non-trivial BatchNorm statistics."""

from __future__ import annotations

import os

import pytest
import torch

from isnet.io import checkpoints
from isnet.models.densenet import DenseNet, tiny_densenet

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# Tests run tiny models: one intra-op thread is faster, and immune to OpenMP spin-waiting when
# other processes share the two cores (measured: 200× slower tiny forwards with 2 threads there).
torch.set_num_threads(1)

SEED = 0xDEADBEEF


def randomize_batchnorm(model: torch.nn.Module, generator: torch.Generator) -> torch.nn.Module:
    """Give every BatchNorm random running statistics, scales and shifts (so fusion is tested)."""
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            shape = module.running_mean.shape
            dtype = module.running_mean.dtype
            module.running_mean.copy_(torch.rand(shape, generator=generator, dtype=dtype) - 0.5)
            module.running_var.copy_(
                torch.rand(shape, generator=generator, dtype=dtype) * 1.5 + 0.5)
            module.weight.data.copy_(torch.rand(shape, generator=generator, dtype=dtype) + 0.5)
            module.bias.data.copy_(
                (torch.rand(shape, generator=generator, dtype=dtype) - 0.5) * 0.6)
    return model


@pytest.fixture
def generator() -> torch.Generator:
    return torch.Generator().manual_seed(SEED)


@pytest.fixture
def tiny_model(generator: torch.Generator) -> DenseNet:
    """tiny_densenet with 3 classes, float64, eval mode, random BatchNorm statistics."""
    torch.manual_seed(SEED)
    model = tiny_densenet(num_classes=3).double()
    return randomize_batchnorm(model, generator).eval()


@pytest.fixture
def images(generator: torch.Generator) -> torch.Tensor:
    """Four 32×32 RGB images in [0, 1], float64."""
    return torch.rand(4, 3, 32, 32, generator=generator, dtype=torch.float64)


@pytest.fixture
def masks() -> torch.Tensor:
    """Four 32×32 masks with a central square foreground."""
    mask = torch.zeros(4, 1, 32, 32, dtype=torch.float64)
    mask[:, :, 8:24, 8:24] = 1
    return mask


def biased_batch(count: int = 8, size: int = 32
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """float64 images: a textured central object (foreground) and a bright class-coded patch in
    the top-left background corner, so the label is readable from the background alone."""
    generator = torch.Generator().manual_seed(SEED)
    labels = torch.arange(count) % 3
    images = 0.1 * torch.rand(count, 3, size, size, generator=generator, dtype=torch.float64)
    masks = torch.zeros(count, 1, size, size, dtype=torch.float64)
    masks[:, :, 8:24, 8:24] = 1
    images[:, :, 8:24, 8:24] += 0.5 * torch.rand(count, 3, 16, 16, generator=generator,
                                                 dtype=torch.float64)
    for i, label in enumerate(labels):
        images[i, label, 1:7, 1:7] = 1.0  # the shortcut: channel = class
    return images, masks, labels


@pytest.fixture
def no_building(monkeypatch) -> list:
    """Records (and refuses) any attempt to build a model while a checkpoint loads."""
    calls: list = []

    def refuse(*args, **kwargs):
        calls.append(args)
        raise AssertionError("a model was built")

    monkeypatch.setattr(checkpoints, "build_model", refuse)
    return calls
