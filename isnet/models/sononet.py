"""AG-Sononet: Sononet with grid attention gates (Schlemper, Oktay et al., 2019), family
``"ag_sononet"``.

The backbone is Sononet: five stacks of (3×3 conv → BN → ReLU) with ``n_convs`` convolutions
each and 2×2 max pooling between them; widths ``(64, 128, 256, 512, 512) / feature_scale``.
Two grid attention gates re-weight the features of stacks 3 and 4, using the deepest features
(stack 5) as the gating signal:

* ``f = ReLU(θ(x) + up(φ(g)))`` with 1×1 convolutions θ (on the features x) and φ (on the gate g,
  bilinearly upsampled to x's grid), both without bias, to ``inter`` channels;
* ``ψ(f)``: a 1×1 convolution with bias to one channel, normalised over the grid by subtracting
  its minimum and dividing by its sum (the upstream "concatenation_mean_flow" mode), so each
  attention map is non-negative and sums to 1;
* the gate's output is the attention-weighted sum of x over the grid, ``Σ_s α_s x_s`` (B, C).

The classifier reads the concatenation of both gates' outputs and the global average of stack 5
(the ISNet authors' "concat" aggregation). Attention maps are returned by
:meth:`AGSononet.forward_attention`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from isnet.models.registry import Family, register_family, register_model

_BASE_WIDTHS = (64, 128, 256, 512, 512)


def _conv_stack(in_channels: int, out_channels: int, count: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for index in range(count):
        layers += [nn.Conv2d(in_channels if index == 0 else out_channels, out_channels, 3,
                             padding=1), nn.BatchNorm2d(out_channels), nn.ReLU()]
    return nn.Sequential(*layers)


class GridAttentionGate(nn.Module):
    """One grid attention gate (see the module docstring).

    Shapes: x (B, C, h, w), gate (B, G, h', w') → attended (B, C), attention (B, 1, h, w).
    """

    def __init__(self, in_channels: int, gating_channels: int, inter_channels: int) -> None:
        super().__init__()
        self.theta = nn.Conv2d(in_channels, inter_channels, 1, bias=False)
        self.phi = nn.Conv2d(gating_channels, inter_channels, 1, bias=False)
        self.psi = nn.Conv2d(inter_channels, 1, 1)

    def forward(self, x: Tensor, gate: Tensor) -> tuple[Tensor, Tensor]:
        gating = F.interpolate(self.phi(gate), size=x.shape[-2:], mode="bilinear",
                               align_corners=False)
        scores = self.psi(F.relu(self.theta(x) + gating)).flatten(1)  # (B, h·w)
        shifted = scores - scores.min(1, keepdim=True).values
        attention = shifted / shifted.sum(1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)
        attention = attention.view(len(x), 1, *x.shape[-2:])  # (B, 1, h, w), sums to 1
        return (attention * x).sum((2, 3)), attention


class AGSononet(nn.Module):
    """Attention-gated Sononet classifier (see the module docstring).

    Args:
        num_classes: number of logits K.
        in_channels: image channels.
        feature_scale: divides the base widths (64, 128, 256, 512, 512).
        n_convs: convolutions in each of the five stacks.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3, feature_scale: int = 4,
                 n_convs: Sequence[int] = (3, 3, 3, 2, 2)) -> None:
        super().__init__()
        if len(n_convs) != 5:
            raise ValueError(f"AGSononet needs 5 stack depths, got {tuple(n_convs)}")
        widths = [max(1, w // feature_scale) for w in _BASE_WIDTHS]
        self.arch = dict(num_classes=num_classes, in_channels=in_channels,
                         feature_scale=feature_scale, n_convs=tuple(n_convs))
        previous = in_channels
        for index, (width, count) in enumerate(zip(widths, n_convs, strict=True), start=1):
            self.add_module(f"conv{index}", _conv_stack(previous, width, count))
            previous = width
        self.gate1 = GridAttentionGate(widths[2], widths[4], widths[3])
        self.gate2 = GridAttentionGate(widths[3], widths[4], widths[3])
        self.classifier = nn.Linear(widths[2] + widths[3] + widths[4], num_classes)

    @property
    def num_classes(self) -> int:
        return self.classifier.out_features

    def forward_attention(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Logits and the two gates' attention maps.

        Shapes: x (B, C, H, W) → logits (B, K), [(B, 1, H/4, W/4), (B, 1, H/8, W/8)].
        """
        stack = [self.get_submodule(f"conv{i}") for i in range(1, 6)]  # five conv stacks
        stack3 = stack[2](F.max_pool2d(stack[1](F.max_pool2d(stack[0](x), 2)), 2))
        stack4 = stack[3](F.max_pool2d(stack3, 2))
        stack5 = stack[4](F.max_pool2d(stack4, 2))
        attended1, attention1 = self.gate1(stack3, stack5)
        attended2, attention2 = self.gate2(stack4, stack5)
        pooled = stack5.mean((2, 3))  # (B, C5)
        logits = self.classifier(torch.cat([attended1, attended2, pooled], 1))
        return logits, [attention1, attention2]

    def forward(self, x: Tensor) -> Tensor:
        """Logits (B, K) for images (B, C, H, W); H and W divisible by 16."""
        return self.forward_attention(x)[0]


def architecture_from_state_dict(state: Mapping[str, Tensor]) -> dict[str, Any]:
    """Constructor arguments from AG-Sononet weights."""
    first = state["conv1.0.weight"]  # (64 / feature_scale, C, 3, 3)
    counts = tuple(sum(1 for key, value in state.items()
                       if re.fullmatch(rf"conv{i}\.\d+\.weight", key) and value.dim() == 4)
                   for i in range(1, 6))
    return dict(num_classes=int(state["classifier.weight"].shape[0]),
                in_channels=int(first.shape[1]), feature_scale=64 // int(first.shape[0]),
                n_convs=counts)


register_family(Family(
    name="ag_sononet", model_class=AGSononet,
    architecture_from_state_dict=architecture_from_state_dict,
    signature_keys=("conv1.0.weight", "gate1.psi.weight", "gate2.psi.weight",
                    "classifier.weight")))

_SIZES = {"ag_sononet": dict(feature_scale=4, n_convs=(3, 3, 3, 2, 2)),
          "tiny_ag_sononet": dict(feature_scale=16, n_convs=(1, 1, 1, 1, 1))}


def _factory(name: str) -> None:
    def build(num_classes: int = 10, **overrides: Any) -> AGSononet:
        return AGSononet(**{**_SIZES[name], "num_classes": num_classes, **overrides})

    build.__name__ = name
    build.__doc__ = f"AG-Sononet {_SIZES[name]}, randomly initialised."
    register_model(name, "ag_sononet", build)


_factory("ag_sononet")
_factory("tiny_ag_sononet")
