"""LRP-ready VGGs (family ``"vgg"``): torchvision's VGG with explicit activations.

Changes from torchvision's VGG (the function is the same, key for key):

* no in-place ReLU (torchvision's are in place), every ReLU its own module;
* :meth:`VGG.forward_trace` returns every tensor the LRP walk reads, including the max-pooling
  winners and the classifier's dropped activations (so a train-mode walk sees the same dropout
  mask as the forward pass);
* a configurable classifier width (``hidden``, torchvision's 4096) and pooled size
  (``pool_size``, torchvision's 7), so tiny test models are built from the same code.

Parameter keys and shapes are exactly torchvision's (``features.0.weight``, …,
``classifier.0/3/6``), so torchvision state dicts load key for key.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from isnet.models.registry import Family, register_family, register_model

POOL = "M"
"""Marks a 2×2 max pooling in a VGG configuration; integers are 3×3 conv widths."""


@dataclass
class ConvTrace:
    """One conv (+BN) + ReLU. Shapes: inputs (B, C_in, H, W); conv (its output, the BatchNorm's
    input), relu (B, C_out, H, W); ``index`` is the conv's position in ``features``."""

    index: int
    inputs: Tensor
    conv: Tensor
    relu: Tensor


@dataclass
class PoolTrace:
    """One max pooling: input size, winners (B, C, h, w) as flat indices into H·W."""

    input_size: tuple[int, int]
    indices: Tensor


@dataclass
class Trace:
    """Every activation the LRP walk reads (owned by the caller).

    Shapes: inputs (B, C, H, W); stages in forward order; features (B, C_f, h, w) = the last
    feature map; avgpooled (B, C_f, p, p); hidden_z[i] (B, hidden) = output of linear i;
    hidden_dropped[i] (B, hidden) = its ReLU after dropout (identity in eval); pooled = the last
    of them, the input of the final linear layer; logits (B, K).
    """

    inputs: Tensor
    stages: list[ConvTrace | PoolTrace] = field(default_factory=list)
    features: Tensor | None = None
    avgpooled: Tensor | None = None
    hidden_z: list[Tensor] = field(default_factory=list)
    hidden_dropped: list[Tensor] = field(default_factory=list)
    pooled: Tensor | None = None
    logits: Tensor | None = None


class VGG(nn.Module):
    """torchvision's VGG, LRP-ready (see the module docstring).

    Args:
        config: conv widths with ``"M"`` for max pooling (torchvision's ``cfgs``).
        batch_norm: a BatchNorm after every conv (the ``*_bn`` models).
        num_classes: number of logits K.
        in_channels: input image channels.
        hidden: width of the two hidden linear layers.
        pool_size: side of the adaptive average pooling before the classifier.
        dropout: dropout probability in the classifier.
    """

    def __init__(self, config: Sequence[int | str] = (64, 64, POOL, 128, 128, POOL, 256, 256, 256,
                                                      POOL, 512, 512, 512, POOL, 512, 512, 512,
                                                      POOL),
                 batch_norm: bool = False, num_classes: int = 1000, in_channels: int = 3,
                 hidden: int = 4096, pool_size: int = 7, dropout: float = 0.5) -> None:
        super().__init__()
        self.arch = dict(config=tuple(config), batch_norm=batch_norm, num_classes=num_classes,
                         in_channels=in_channels, hidden=hidden, pool_size=pool_size,
                         dropout=dropout)
        layers: list[nn.Module] = []
        channels = in_channels
        for item in config:
            if item == POOL:
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                continue
            layers.append(nn.Conv2d(channels, int(item), 3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(int(item)))
            layers.append(nn.ReLU())
            channels = int(item)
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(pool_size)
        self.classifier = nn.Sequential(
            nn.Linear(channels * pool_size * pool_size, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )
        self._init_weights()

    def _init_weights(self) -> None:
        if self.classifier[0].weight.is_meta:
            return  # built only to read .arch (isnet.io.architecture): nothing to initialise
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0, 0.01)
                nn.init.zeros_(module.bias)

    @property
    def num_classes(self) -> int:
        return self.classifier_layer.out_features

    @property
    def classifier_layer(self) -> nn.Linear:
        """The last linear layer (where every LRP walk starts)."""
        return cast(nn.Linear, self.classifier[-1])

    def forward(self, x: Tensor) -> Tensor:
        """Plain inference: (B, C, H, W) → logits (B, K)."""
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))

    def forward_trace(self, x: Tensor) -> tuple[Tensor, Trace]:
        """Same function as :meth:`forward`, also returning the activations LRP reads."""
        trace = Trace(inputs=x)
        modules, h, index = list(self.features), x, 0
        while index < len(modules):
            module = modules[index]
            if isinstance(module, nn.MaxPool2d):
                size = (int(h.shape[-2]), int(h.shape[-1]))
                h, indices = F.max_pool2d(h, module.kernel_size, module.stride, module.padding,
                                          module.dilation, module.ceil_mode, return_indices=True)
                trace.stages.append(PoolTrace(input_size=size, indices=indices))
                index += 1
                continue
            conv = module(h)
            step = 3 if isinstance(modules[index + 1], nn.BatchNorm2d) else 2
            relu = modules[index + step - 1](modules[index + 1](conv) if step == 3 else conv)
            trace.stages.append(ConvTrace(index=index, inputs=h, conv=conv, relu=relu))
            h, index = relu, index + step
        trace.features = h
        trace.avgpooled = self.avgpool(h)  # (B, C_f, p, p)
        h = torch.flatten(trace.avgpooled, 1)  # (B, C_f·p·p)
        classifier = list(self.classifier)
        for linear, relu, dropout in zip(classifier[0:-1:3], classifier[1::3], classifier[2::3],
                                         strict=True):
            trace.hidden_z.append(linear(h))  # (B, hidden)
            h = dropout(relu(trace.hidden_z[-1]))
            trace.hidden_dropped.append(h)
        trace.pooled = h
        trace.logits = classifier[-1](h)  # (B, K)
        return trace.logits, trace


def architecture_from_state_dict(state: Mapping[str, Tensor]) -> dict[str, Any]:
    """Constructor arguments of the :class:`VGG` whose weights ``state`` holds.

    Max poolings are placed where the feature indices skip one; a pooling after the last conv
    is assumed (every torchvision VGG ends with one; parameter-free layers leave no keys).

    Raises:
        KeyError: a VGG key is missing.
        ValueError: the feature indices fit no VGG layout.
    """
    pattern = re.compile(r"features\.(\d+)\.weight")
    weights = {int(m.group(1)): value for key, value in state.items()
               if (m := pattern.fullmatch(key))}
    convs = sorted(i for i, value in weights.items() if value.dim() == 4)
    if not convs:
        raise KeyError("features.0.weight")
    batch_norm = f"features.{convs[0] + 1}.running_mean" in state
    step = 3 if batch_norm else 2
    config: list[int | str] = []
    position = 0
    for index in convs:
        gap = index - position
        if gap < 0:
            raise ValueError(f"features.{index} overlaps the layer before it")
        config.extend([POOL] * gap)
        config.append(int(weights[index].shape[0]))
        position = index + step
    config.append(POOL)
    first = state["classifier.0.weight"]  # (hidden, C_f·p·p)
    pool_size = math.isqrt(int(first.shape[1]) // int(config[-2]))
    if pool_size * pool_size * int(config[-2]) != first.shape[1]:
        raise ValueError(f"classifier.0 reads {first.shape[1]} features, not C·p·p")
    return dict(config=tuple(config), batch_norm=batch_norm,
                num_classes=int(state["classifier.6.weight"].shape[0]),
                in_channels=int(weights[convs[0]].shape[1]), hidden=int(first.shape[0]),
                pool_size=pool_size, dropout=0.5)  # dropout leaves no key: torchvision's


register_family(Family(
    name="vgg", model_class=VGG,
    architecture_from_state_dict=architecture_from_state_dict,
    signature_keys=("features.0.weight", "features.0.bias", "classifier.0.weight",
                    "classifier.3.weight", "classifier.6.weight"),
))


_CONFIGS: dict[str, tuple[int | str, ...]] = {
    "11": (64, POOL, 128, POOL, 256, 256, POOL, 512, 512, POOL, 512, 512, POOL),
    "13": (64, 64, POOL, 128, 128, POOL, 256, 256, POOL, 512, 512, POOL, 512, 512, POOL),
    "16": (64, 64, POOL, 128, 128, POOL, 256, 256, 256, POOL, 512, 512, 512, POOL, 512, 512, 512,
           POOL),
    "19": (64, 64, POOL, 128, 128, POOL, 256, 256, 256, 256, POOL, 512, 512, 512, 512, POOL, 512,
           512, 512, 512, POOL),
}


def _factory(name: str, default_classes: int, **architecture: Any) -> Callable[..., VGG]:
    def build(num_classes: int = default_classes, **overrides: Any) -> VGG:
        return VGG(**{**architecture, "num_classes": num_classes, **overrides})

    build.__name__ = name
    build.__doc__ = f"torchvision's {name}, LRP-ready (see :class:`VGG`), randomly initialised."
    return register_model(name, "vgg", build)


vgg11 = _factory("vgg11", 1000, config=_CONFIGS["11"])
vgg11_bn = _factory("vgg11_bn", 1000, config=_CONFIGS["11"], batch_norm=True)
vgg13 = _factory("vgg13", 1000, config=_CONFIGS["13"])
vgg13_bn = _factory("vgg13_bn", 1000, config=_CONFIGS["13"], batch_norm=True)
vgg16 = _factory("vgg16", 1000, config=_CONFIGS["16"])
vgg16_bn = _factory("vgg16_bn", 1000, config=_CONFIGS["16"], batch_norm=True)
vgg19 = _factory("vgg19", 1000, config=_CONFIGS["19"])
vgg19_bn = _factory("vgg19_bn", 1000, config=_CONFIGS["19"], batch_norm=True)
tiny_vgg = _factory("tiny_vgg", 3, config=(4, POOL, 8, 8, POOL), batch_norm=True, hidden=16,
                    pool_size=2)
