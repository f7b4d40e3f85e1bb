"""LRP-ready DenseNets: the backbone of the ISNet paper (family ``"densenet"``).

The network is torchvision's DenseNet with the changes the ISNet paper makes so that every
activation the LRP block needs exists as a separate tensor:

* no in-place ReLU, and every ReLU is its own module;
* an extra ReLU (``relu2``) after each transition convolution, so that every linear map is
  followed by a ReLU before the next BatchNorm reads it;
* the final ReLU (``features.relu5``) and the global average pooling (``features.pool5``) are
  modules, not functional calls.

Parameter keys and shapes are exactly torchvision's, so torchvision state dicts load key for key
(the function differs because of ``relu2``).

Activation capture: :meth:`DenseNet.forward_trace` runs the same modules as :meth:`forward` and
returns, next to the logits, a :class:`Trace` holding every tensor the LRP walk reads. The trace is
owned by the caller and lives only as long as the caller keeps it: no hooks, no module-level state,
so two models in one process never interfere.
"""

from __future__ import annotations

import re
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from isnet.models.registry import Family, register_family, register_model


class DenseLayer(nn.Module):
    """One dense layer: BN → ReLU → 1×1 conv → BN → ReLU → 3×3 conv (growth-rate channels)."""

    def __init__(self, in_channels: int, growth_rate: int, bn_size: int) -> None:
        super().__init__()
        width = bn_size * growth_rate
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(in_channels, width, kernel_size=1, stride=1, bias=False)
        self.norm2 = nn.BatchNorm2d(width)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(width, growth_rate, kernel_size=3, stride=1, padding=1, bias=False)

    def forward(self, concat: Tensor) -> Tensor:
        return self.forward_trace(concat).new_features

    def forward_trace(self, concat: Tensor) -> LayerTrace:
        """Run the layer on its concatenated input and keep what LRP reads."""
        relu1 = self.relu1(self.norm1(concat))
        bottleneck = self.conv1(relu1)
        relu2 = self.relu2(self.norm2(bottleneck))
        return LayerTrace(concat=concat, relu1=relu1, bottleneck=bottleneck, relu2=relu2,
                          new_features=self.conv2(relu2))


class DenseBlock(nn.ModuleDict):
    """A dense block: each layer reads the concatenation of the block input and all earlier
    outputs."""

    def __init__(self, num_layers: int, in_channels: int, growth_rate: int, bn_size: int) -> None:
        super().__init__()
        for i in range(num_layers):
            layer = DenseLayer(in_channels + i * growth_rate, growth_rate, bn_size)
            self.add_module(f"denselayer{i + 1}", layer)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_trace(x)[0]

    def forward_trace(self, x: Tensor) -> tuple[Tensor, list[LayerTrace]]:
        """Returns the block output (the final concatenation) and one trace per layer."""
        features, layers = [x], []
        for layer in self.values():
            joined = torch.cat(features, 1)  # (B, C_in + i·growth, H, W)
            trace = cast(DenseLayer, layer).forward_trace(joined)
            layers.append(trace)
            features.append(trace.new_features)
        return torch.cat(features, 1), layers


class Transition(nn.Module):
    """Transition: BN → ReLU → 1×1 conv → ReLU (the paper's extra ReLU) → 2×2 average pooling."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(in_channels)
        self.relu = nn.ReLU()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=1, bias=False)
        self.relu2 = nn.ReLU()
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_trace(x).pooled

    def forward_trace(self, x: Tensor) -> TransitionTrace:
        relu = self.relu(self.norm(x))
        conv = self.conv(relu)
        relu2 = self.relu2(conv)
        return TransitionTrace(concat=x, relu=relu, conv=conv, relu2=relu2, pooled=self.pool(relu2))


@dataclass
class LayerTrace:
    """Tensors of one dense layer. Shapes: concat (B, C_in, H, W); relu1 (B, C_in, H, W);
    bottleneck, relu2 (B, bn_size·growth, H, W); new_features (B, growth, H, W)."""

    concat: Tensor
    relu1: Tensor
    bottleneck: Tensor
    relu2: Tensor
    new_features: Tensor


@dataclass
class TransitionTrace:
    """Tensors of one transition: its input concatenation, relu, conv (pre-relu2), relu2, pooled."""

    concat: Tensor
    relu: Tensor
    conv: Tensor
    relu2: Tensor
    pooled: Tensor


@dataclass
class Trace:
    """Every activation the LRP walk reads, in forward order. Owned by the caller of
    :meth:`DenseNet.forward_trace`; nothing is stored on the model.

    Shapes: inputs (B, C, H, W); stem_conv, stem_relu (B, F0, H/2, W/2);
    stem_pooled (B, F0, H/4, W/4);
    final_concat / final_relu (B, F, h, w); pooled (B, F); logits (B, K).
    """

    inputs: Tensor
    stem_conv: Tensor
    stem_relu: Tensor
    stem_pooled: Tensor
    stem_indices: Tensor
    blocks: list[list[LayerTrace]] = field(default_factory=list)
    transitions: list[TransitionTrace] = field(default_factory=list)
    final_concat: Tensor | None = None
    final_relu: Tensor | None = None
    pooled: Tensor | None = None
    logits: Tensor | None = None


class DenseNet(nn.Module):
    """DenseNet-BC as modified by the ISNet paper (see the module docstring).

    Args:
        growth_rate: channels added by each dense layer (k in the DenseNet paper).
        block_config: number of layers in each dense block.
        num_init_features: channels of the first convolution.
        bn_size: bottleneck width factor (1×1 conv outputs ``bn_size * growth_rate`` channels).
        num_classes: number of logits K.
        in_channels: input image channels.
    """

    cpu_memory_format = torch.channels_last
    """Explaining and training on the CPU run ~20–30 % faster channels-last (see
    :mod:`isnet.models.layout`)."""

    def __init__(
        self,
        growth_rate: int = 32,
        block_config: tuple[int, ...] = (6, 12, 24, 16),
        num_init_features: int = 64,
        bn_size: int = 4,
        num_classes: int = 1000,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        self.arch = dict(growth_rate=growth_rate, block_config=tuple(block_config),
                         num_init_features=num_init_features, bn_size=bn_size,
                         num_classes=num_classes, in_channels=in_channels)
        stem = [
            ("conv0", nn.Conv2d(in_channels, num_init_features, 7, stride=2, padding=3,
                                bias=False)),
            ("norm0", nn.BatchNorm2d(num_init_features)),
            ("relu0", nn.ReLU()),
            ("pool0", nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),
        ]
        self.features = nn.Sequential(OrderedDict(stem))
        channels = num_init_features
        for i, num_layers in enumerate(block_config):
            self.features.add_module(f"denseblock{i + 1}",
                                     DenseBlock(num_layers, channels, growth_rate, bn_size))
            channels += num_layers * growth_rate
            if i != len(block_config) - 1:
                self.features.add_module(f"transition{i + 1}", Transition(channels, channels // 2))
                channels //= 2
        self.features.add_module("norm5", nn.BatchNorm2d(channels))
        self.features.add_module("relu5", nn.ReLU())
        self.features.add_module("pool5", nn.AdaptiveAvgPool2d(1))
        self.classifier = nn.Linear(channels, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        if self.classifier.weight.is_meta:
            return  # built only to read .arch (isnet.io.architecture): nothing to initialise
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)

    @property
    def num_classes(self) -> int:
        return self.classifier.out_features

    @property
    def classifier_layer(self) -> nn.Linear:
        """The last linear layer (where every LRP walk starts)."""
        return self.classifier

    def forward(self, x: Tensor) -> Tensor:
        """Plain inference: (B, C, H, W) → logits (B, K). No activations are kept."""
        return self.classifier(torch.flatten(self.features(x), 1))

    def forward_trace(self, x: Tensor) -> tuple[Tensor, Trace]:
        """Same function as :meth:`forward`, also returning the activations LRP reads.

        The max pooling of the stem runs through ``F.max_pool2d(..., return_indices=True)`` with
        the ``pool0`` module's own settings, so the winners of each window are known.
        """
        f = self.features
        stem_conv = f.get_submodule("conv0")(x)
        stem_relu = f.get_submodule("relu0")(f.get_submodule("norm0")(stem_conv))
        pool = cast(nn.MaxPool2d, f.get_submodule("pool0"))
        stem_pooled, indices = F.max_pool2d(stem_relu, pool.kernel_size, pool.stride, pool.padding,
                                            pool.dilation, pool.ceil_mode, return_indices=True)
        trace = Trace(inputs=x, stem_conv=stem_conv, stem_relu=stem_relu, stem_pooled=stem_pooled,
                      stem_indices=indices)
        h = stem_pooled
        for name, module in f.named_children():
            if name.startswith("denseblock"):
                h, layers = cast(DenseBlock, module).forward_trace(h)
                trace.blocks.append(layers)
            elif name.startswith("transition"):
                transition = cast(Transition, module).forward_trace(h)
                trace.transitions.append(transition)
                h = transition.pooled
        trace.final_concat = h
        trace.final_relu = f.get_submodule("relu5")(f.get_submodule("norm5")(h))
        trace.pooled = torch.flatten(f.get_submodule("pool5")(trace.final_relu), 1)  # (B, F)
        trace.logits = self.classifier(trace.pooled)  # (B, K)
        return trace.logits, trace


def architecture_from_state_dict(state: Mapping[str, Tensor]) -> dict[str, Any]:
    """Constructor arguments of the :class:`DenseNet` whose weights ``state`` holds.

    Raises:
        KeyError: a DenseNet key is missing (not a DenseNet state dict).
    """
    conv0 = state["features.conv0.weight"]  # (F0, C, 7, 7)
    classifier = state["classifier.weight"]  # (K, F)
    conv2 = state["features.denseblock1.denselayer1.conv2.weight"]  # (k, bn·k, 3, 3)
    pattern = re.compile(r"features\.denseblock(\d+)\.denselayer\d+\.conv1\.weight")
    layers = Counter(int(m.group(1)) for key in state if (m := pattern.match(key)))
    growth = int(conv2.shape[0])
    return dict(growth_rate=growth, block_config=tuple(layers[b] for b in sorted(layers)),
                num_init_features=int(conv0.shape[0]), bn_size=int(conv2.shape[1]) // growth,
                num_classes=int(classifier.shape[0]), in_channels=int(conv0.shape[1]))


register_family(Family(
    name="densenet", model_class=DenseNet,
    architecture_from_state_dict=architecture_from_state_dict,
    signature_keys=("features.conv0.weight", "features.norm0.weight",
                    "features.denseblock1.denselayer1.conv1.weight",
                    "features.denseblock1.denselayer1.conv2.weight", "features.norm5.weight",
                    "classifier.weight"),
))


_ARCHITECTURES: dict[str, dict] = {
    "densenet121": dict(growth_rate=32, block_config=(6, 12, 24, 16), num_init_features=64),
    "densenet161": dict(growth_rate=48, block_config=(6, 12, 36, 24), num_init_features=96),
    "densenet169": dict(growth_rate=32, block_config=(6, 12, 32, 32), num_init_features=64),
    "densenet201": dict(growth_rate=32, block_config=(6, 12, 48, 32), num_init_features=64),
    "tiny_densenet": dict(growth_rate=4, block_config=(1, 1), num_init_features=8, bn_size=2),
}


def _factory(name: str, default_classes: int) -> Callable[..., DenseNet]:
    def build(num_classes: int = default_classes, **overrides: Any) -> DenseNet:
        return DenseNet(**{**_ARCHITECTURES[name], "num_classes": num_classes, **overrides})

    build.__name__ = name
    build.__doc__ = f"The ISNet paper's {name} (see :class:`DenseNet`), randomly initialised."
    return register_model(name, "densenet", build)


densenet121 = _factory("densenet121", 1000)
densenet161 = _factory("densenet161", 1000)
densenet169 = _factory("densenet169", 1000)
densenet201 = _factory("densenet201", 1000)
tiny_densenet = _factory("tiny_densenet", 3)
