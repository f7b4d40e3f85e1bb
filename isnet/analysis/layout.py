"""The memory layout a model explains fastest in, and the model in that layout.

A convolution on the CPU runs on oneDNN, which works in a channels-last layout inside; tensors
in the default (channels-first) layout are reordered on the way in and out of every convolution.
Whether keeping the whole network channels-last pays depends on the family:

* DenseNet121 explaining 64 images at 64 px (the audit's batches), one thread: about 30 % less
  time channels-last (its many concatenations and BatchNorms on wide inputs gain most);
* ResNet18 at the same size: about 10 % *more* time; ResNet50 and VGG16 at 64 and 224 px:
  within the noise.

So each model family says what it prefers, as a class attribute ``cpu_inference_layout`` (absent:
channels-first), and :func:`preferred_layout` reads it. ``python -m benchmarks.audit --layouts
contiguous channels_last`` measures the difference in one run. The heatmaps agree to rounding
(relative 1e-6 in float32); only the order of the floating-point sums changes.

Training stays channels-first: the ISNet step's extra element-wise work mixes layouts in
autograd's backward and was measured slower channels-last.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

LAYOUTS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}
"""Layout names for command lines and records."""


def preferred_layout(model: nn.Module, device: torch.device | str = "cpu") -> torch.memory_format:
    """The layout ``model`` explains fastest in on ``device``: its family's
    ``cpu_inference_layout`` on the CPU, channels-first elsewhere (not measured there)."""
    if torch.device(device).type != "cpu":
        return torch.contiguous_format
    return getattr(model, "cpu_inference_layout", torch.contiguous_format)


def in_layout(model: nn.Module, layout: torch.memory_format) -> nn.Module:
    """``model`` with its 4-D weights in ``layout``: the model itself when they already are (or
    it has none), otherwise a copy (the caller's model is never changed)."""
    weights = [p for p in model.parameters() if p.dim() == 4]
    if all(w.is_contiguous(memory_format=layout) for w in weights):
        return model
    return copy.deepcopy(model).to(memory_format=layout)
