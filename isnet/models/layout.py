"""The memory layout a model runs fastest in on the CPU, and the model in that layout.

A convolution on the CPU runs on oneDNN, which works in a channels-last layout inside; tensors
in the default (channels-first) layout are reordered on the way in and out of every convolution.
Whether keeping the whole network channels-last pays depends on the family:

* DenseNet121 explaining 64 images at 64 px (the audit's batches), one thread: about 30 % less
  time channels-last (its many concatenations and BatchNorms on wide inputs gain most);
* ResNet18 at the same size: about 10 % *more* time; ResNet50 and VGG16 at 64 and 224 px:
  within the noise.

Training gains as much: a DenseNet121 training step at 64 px, batch 32 (the bundled recipe), two
threads, took ~20 % less time channels-last, plain or ISNet (``python -m benchmarks.lrp_speed
--models densenet121 --sizes 64 --batches 32 --layout channels_last``, against the same without
``--layout``), once the LRP rules kept one layout all through autograd's backward.

So each model family says what it prefers, as a class attribute ``cpu_memory_format`` (absent:
channels-first), and :func:`preferred_layout` reads it. The audit explains in it and
:func:`isnet.training.loop.fit` trains in it. ``python -m benchmarks.audit --layouts contiguous
channels_last`` measures the audit in both. Heatmaps and gradients agree across layouts to
rounding (tested); only the order of the floating-point sums changes.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

LAYOUTS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}
"""Layout names for command lines and records."""


def channels_last(tensor: torch.Tensor) -> bool:
    """Whether a 4-D tensor is laid out channels-last (and not also channels-first, as tensors
    with one channel or one pixel are)."""
    return (tensor.dim() == 4 and not tensor.is_contiguous()
            and tensor.is_contiguous(memory_format=torch.channels_last))


def preferred_layout(model: nn.Module, device: torch.device | str = "cpu") -> torch.memory_format:
    """The layout ``model`` runs fastest in on ``device``: its family's ``cpu_memory_format``
    on the CPU, channels-first elsewhere (not measured there)."""
    if torch.device(device).type != "cpu":
        return torch.contiguous_format
    return getattr(model, "cpu_memory_format", torch.contiguous_format)


def layout_of(model: nn.Module) -> torch.memory_format:
    """The layout ``model``'s 4-D weights are in: channels-last when all of them are and one at
    least is not also channels-first (a 1×1 kernel is both), channels-first otherwise."""
    weights = [p for p in model.parameters() if p.dim() == 4]
    last = (all(w.is_contiguous(memory_format=torch.channels_last) for w in weights)
            and any(not w.is_contiguous() for w in weights))
    return torch.channels_last if last else torch.contiguous_format


def in_layout(model: nn.Module, layout: torch.memory_format) -> nn.Module:
    """``model`` with its 4-D weights in ``layout``: the model itself when they already are (or
    it has none), otherwise a copy (the caller's model is never changed)."""
    weights = [p for p in model.parameters() if p.dim() == 4]
    if all(w.is_contiguous(memory_format=layout) for w in weights):
        return model
    return copy.deepcopy(model).to(memory_format=layout)
