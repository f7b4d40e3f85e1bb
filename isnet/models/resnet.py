"""LRP-ready ResNets (family ``"resnet"``): torchvision's ResNet with explicit activations.

Changes from torchvision's ResNet (the function is the same, key for key):

* no in-place ReLU, and every ReLU is its own module (``relu1``, ``relu2`` inside a block, and
  ``relu`` after the residual addition), so that every activation the LRP walk reads exists as a
  separate tensor;
* the residual addition is written out in :meth:`Block.forward_trace`, which also returns the
  two summands (the block's *main* branch and its *skip* path) that the LRP walk splits
  relevance between;
* a ``width`` argument (channels of the stem and the first stage; torchvision's 64) and any
  number of stages, so tiny test models are built from the same code.

Parameter keys and shapes are exactly torchvision's (``conv1``, ``bn1``, ``layer1.0.conv1``,
``layer1.0.downsample.0``, …, ``fc``), so torchvision state dicts load key for key.

Activation capture: :meth:`ResNet.forward_trace` returns, next to the logits, a :class:`Trace`
owned by the caller (no hooks, no module-level state).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from isnet.models.registry import Family, register_family, register_model

BLOCK_TYPES: tuple[str, ...] = ("basic", "bottleneck")
"""Residual block kinds: two 3×3 convolutions, or 1×1 → 3×3 → 1×1 with 4× expansion."""


@dataclass
class BlockTrace:
    """Tensors of one residual block.

    Shapes: inputs (B, C_in, H, W); convs[i] (the i-th conv's output, BatchNorm input) and
    relus[i] (B, C_i, h, w) — one ReLU fewer than convs (the last conv's BatchNorm feeds the
    sum); main, skip, summed, output (B, C_out, h, w); downsampled (B, C_out, h, w) or None for
    an identity skip.
    """

    inputs: Tensor
    convs: list[Tensor]
    relus: list[Tensor]
    main: Tensor
    downsampled: Tensor | None
    skip: Tensor
    summed: Tensor
    output: Tensor


class Block(nn.Module):
    """A residual block: ``relu(main(x) + skip(x))``. ``main`` is conv→BN(→ReLU) repeated;
    ``skip`` is the identity or a strided 1×1 conv + BN (``downsample``)."""

    expansion = 1
    relu1: nn.ReLU
    relu2: nn.ReLU
    relu: nn.ReLU
    downsample: nn.Sequential | None

    def pairs(self) -> list[tuple[nn.Conv2d, nn.BatchNorm2d]]:
        """The main branch's (conv, BatchNorm) pairs in forward order."""
        count = 3 if self.expansion == 4 else 2
        return [(getattr(self, f"conv{i}"), getattr(self, f"bn{i}")) for i in range(1, count + 1)]

    def relus(self) -> list[nn.ReLU]:
        """The ReLUs after every pair but the last."""
        return [self.relu1, self.relu2] if self.expansion == 4 else [self.relu1]

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_trace(x).output

    def forward_trace(self, x: Tensor) -> BlockTrace:
        """Run the block and keep what LRP reads."""
        convs, relus, h = [], [], x
        pairs = self.pairs()
        for (conv, norm), relu in zip(pairs[:-1], self.relus(), strict=True):
            convs.append(conv(h))
            h = relu(norm(convs[-1]))
            relus.append(h)
        conv, norm = pairs[-1]
        convs.append(conv(h))
        main = norm(convs[-1])
        downsampled = None
        if self.downsample is not None:
            downsampled = self.downsample[0](x)
            skip = self.downsample[1](downsampled)
        else:
            skip = x
        summed = main + skip
        return BlockTrace(inputs=x, convs=convs, relus=relus, main=main, downsampled=downsampled,
                          skip=skip, summed=summed, output=self.relu(summed))


def _downsample(in_channels: int, out_channels: int, stride: int) -> nn.Sequential | None:
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                         nn.BatchNorm2d(out_channels))


class BasicBlock(Block):
    """3×3 conv → BN → ReLU → 3×3 conv → BN, plus the skip, then ReLU (ResNet-18/34)."""

    expansion = 1

    def __init__(self, in_channels: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = _downsample(in_channels, planes, stride)
        self.relu = nn.ReLU()


class Bottleneck(Block):
    """1×1 → 3×3 (strided) → 1×1 (4× channels), each with BN, plus the skip, then ReLU
    (ResNet-50/101/152, torchvision's "v1.5": the stride sits on the 3×3 conv)."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out_channels = planes * self.expansion
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU()
        self.conv3 = nn.Conv2d(planes, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.downsample = _downsample(in_channels, out_channels, stride)
        self.relu = nn.ReLU()


@dataclass
class Trace:
    """Every activation the LRP walk reads, in forward order (owned by the caller).

    Shapes: inputs (B, C, H, W); stem_conv, stem_relu (B, W0, H/2, W/2); stem_pooled,
    stem_indices (B, W0, H/4, W/4); blocks: one :class:`BlockTrace` per block, forward order;
    pooled (B, F) = input of ``fc``; logits (B, K).
    """

    inputs: Tensor
    stem_conv: Tensor
    stem_relu: Tensor
    stem_pooled: Tensor
    stem_indices: Tensor
    blocks: list[BlockTrace] = field(default_factory=list)
    pooled: Tensor | None = None
    logits: Tensor | None = None


class ResNet(nn.Module):
    """torchvision's ResNet, LRP-ready (see the module docstring).

    Args:
        block: ``"basic"`` (ResNet-18/34) or ``"bottleneck"`` (ResNet-50/101/152).
        layers: number of blocks in each stage (``layer1``, ``layer2``, …).
        width: channels of the stem; stage i has ``width·2^i`` planes (torchvision: 64).
        num_classes: number of logits K.
        in_channels: input image channels.
    """

    def __init__(self, block: str = "bottleneck", layers: tuple[int, ...] = (3, 4, 6, 3),
                 width: int = 64, num_classes: int = 1000, in_channels: int = 3) -> None:
        super().__init__()
        if block not in BLOCK_TYPES:
            raise ValueError(f"block must be one of {BLOCK_TYPES}, got {block!r}")
        self.arch = dict(block=block, layers=tuple(layers), width=width,
                         num_classes=num_classes, in_channels=in_channels)
        kind = Bottleneck if block == "bottleneck" else BasicBlock
        self.conv1 = nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        channels = width
        for stage, count in enumerate(layers):
            planes = width * 2**stage
            blocks = []
            for index in range(count):
                stride = 2 if stage > 0 and index == 0 else 1
                blocks.append(kind(channels, planes, stride))
                channels = planes * kind.expansion
            self.add_module(f"layer{stage + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        if self.fc.weight.is_meta:
            return  # built only to read .arch (isnet.io.architecture): nothing to initialise
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    @property
    def num_classes(self) -> int:
        return self.fc.out_features

    @property
    def classifier_layer(self) -> nn.Linear:
        """The last linear layer (where every LRP walk starts)."""
        return self.fc

    def stages(self) -> list[nn.Sequential]:
        """``layer1``, ``layer2``, … in forward order."""
        return [module for name, module in self.named_children()
                if name.startswith("layer") and isinstance(module, nn.Sequential)]

    def forward(self, x: Tensor) -> Tensor:
        """Plain inference: (B, C, H, W) → logits (B, K)."""
        h = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for stage in self.stages():
            h = stage(h)
        return self.fc(torch.flatten(self.avgpool(h), 1))

    def forward_trace(self, x: Tensor) -> tuple[Tensor, Trace]:
        """Same function as :meth:`forward`, also returning the activations LRP reads.

        The stem's max pooling runs through ``F.max_pool2d(..., return_indices=True)`` with the
        ``maxpool`` module's own settings, so the winner of each window is known.
        """
        stem_conv = self.conv1(x)
        stem_relu = self.relu(self.bn1(stem_conv))
        pool = self.maxpool
        stem_pooled, indices = F.max_pool2d(stem_relu, pool.kernel_size, pool.stride,
                                            pool.padding, pool.dilation, pool.ceil_mode,
                                            return_indices=True)
        trace = Trace(inputs=x, stem_conv=stem_conv, stem_relu=stem_relu,
                      stem_pooled=stem_pooled, stem_indices=indices)
        h = stem_pooled
        for stage in self.stages():
            for block in stage:
                block_trace = cast(Block, block).forward_trace(h)
                trace.blocks.append(block_trace)
                h = block_trace.output
        trace.pooled = torch.flatten(self.avgpool(h), 1)  # (B, F)
        trace.logits = self.fc(trace.pooled)  # (B, K)
        return trace.logits, trace


def architecture_from_state_dict(state: Mapping[str, Tensor]) -> dict[str, Any]:
    """Constructor arguments of the :class:`ResNet` whose weights ``state`` holds.

    Raises:
        KeyError: a ResNet key is missing.
        ValueError: the stage widths are not ``width·2^i`` (e.g. wide ResNets, ResNeXt).
    """
    stem = state["conv1.weight"]  # (W0, C, 7, 7)
    block = "bottleneck" if "layer1.0.conv3.weight" in state else "basic"
    pattern = re.compile(r"layer(\d+)\.(\d+)\.conv1\.weight")
    counts = Counter(int(m.group(1)) for key in state if (m := pattern.match(key)))
    width = int(stem.shape[0])
    for stage in sorted(counts):
        planes = int(state[f"layer{stage}.0.conv1.weight"].shape[0])
        if planes != width * 2 ** (stage - 1):
            raise ValueError(f"layer{stage} has {planes} planes, expected {width * 2**(stage - 1)}"
                             " (wide ResNets and ResNeXt are not supported)")
    return dict(block=block, layers=tuple(counts[s] for s in sorted(counts)), width=width,
                num_classes=int(state["fc.weight"].shape[0]), in_channels=int(stem.shape[1]))


register_family(Family(
    name="resnet", model_class=ResNet,
    architecture_from_state_dict=architecture_from_state_dict,
    signature_keys=("conv1.weight", "bn1.weight", "layer1.0.conv1.weight",
                    "layer1.0.bn1.weight", "fc.weight"),
))


_ARCHITECTURES: dict[str, dict] = {
    "resnet18": dict(block="basic", layers=(2, 2, 2, 2)),
    "resnet34": dict(block="basic", layers=(3, 4, 6, 3)),
    "resnet50": dict(block="bottleneck", layers=(3, 4, 6, 3)),
    "resnet101": dict(block="bottleneck", layers=(3, 4, 23, 3)),
    "resnet152": dict(block="bottleneck", layers=(3, 8, 36, 3)),
    "tiny_resnet": dict(block="bottleneck", layers=(2, 1), width=4),
}


def _factory(name: str, default_classes: int) -> Callable[..., ResNet]:
    def build(num_classes: int = default_classes, **overrides: Any) -> ResNet:
        return ResNet(**{**_ARCHITECTURES[name], "num_classes": num_classes, **overrides})

    build.__name__ = name
    build.__doc__ = f"torchvision's {name}, LRP-ready (see :class:`ResNet`), randomly initialised."
    return register_model(name, "resnet", build)


resnet18 = _factory("resnet18", 1000)
resnet34 = _factory("resnet34", 1000)
resnet50 = _factory("resnet50", 1000)
resnet101 = _factory("resnet101", 1000)
resnet152 = _factory("resnet152", 1000)
tiny_resnet = _factory("tiny_resnet", 3)
