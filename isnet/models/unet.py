"""U-Nets for the arena's segmentation baselines (families ``"segment_classify"`` and
``"multitask_unet"``).

* :class:`UNet` — Ronneberger et al. (2015), with padded 3×3 convolutions and BatchNorm so the
  output has the input's size: ``depth`` levels, ``width·2^i`` channels at level i, max pooling
  down, transposed convolutions up, skip concatenations; one output channel (foreground logit).
* :class:`SegmentThenClassify` — the ISNet paper's "segment, then classify" baseline: a U-Net
  predicts the foreground, the pixels it calls background are set to 0 and the classifier (any
  registered family) sees only the rest. At test time only the image is needed.
* :class:`MultiTaskUNet` — one encoder, a segmentation decoder, and a classification head on the
  deepest features (global average pooling → 2-layer MLP; the ISNet authors' head pools to 7×7
  before three 4096-wide layers, sized for 224 px chest X-rays).

Input sides must be divisible by ``2^(depth − 1)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import torch
from torch import Tensor, nn

from isnet.models.protocols import as_classifier
from isnet.models.registry import (
    Family,
    create_model,
    families,
    family_of,
    family_spec,
    register_family,
    register_model,
)


def _conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """(3×3 conv → BN → ReLU) twice, same size."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels), nn.ReLU(),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels), nn.ReLU())


class UNet(nn.Module):
    """A padded U-Net with one foreground-logit output (see the module docstring).

    Args:
        in_channels: image channels.
        width: channels of the first level (doubled at each level down).
        depth: number of levels (``depth − 1`` poolings).
    """

    def __init__(self, in_channels: int = 3, width: int = 16, depth: int = 3) -> None:
        super().__init__()
        if depth < 2:
            raise ValueError(f"UNet depth must be at least 2, got {depth}")
        channels = [width * 2 ** i for i in range(depth)]
        self.down = nn.ModuleList()
        previous = in_channels
        for level in channels:
            self.down.append(_conv_block(previous, level))
            previous = level
        self.upsample = nn.ModuleList()
        self.up = nn.ModuleList()
        for level in reversed(channels[:-1]):
            self.upsample.append(nn.ConvTranspose2d(previous, level, 2, stride=2))
            self.up.append(_conv_block(2 * level, level))
            previous = level
        self.last = nn.Conv2d(previous, 1, 1)
        self.depth = depth

    def encode(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Deepest features and the skip tensors. Shapes: (B, C, H, W) → (B, w·2^(d−1), h, w)."""
        side = 2 ** (self.depth - 1)
        if x.shape[-1] % side or x.shape[-2] % side:
            raise ValueError(f"UNet of depth {self.depth} needs image sides divisible by {side}, "
                             f"got {tuple(x.shape[-2:])}")
        skips = []
        for index, block in enumerate(self.down):
            x = block(x)
            if index < len(self.down) - 1:
                skips.append(x)
                x = nn.functional.max_pool2d(x, 2)
        return x, skips

    def decode(self, x: Tensor, skips: list[Tensor]) -> Tensor:
        """Foreground logits (B, 1, H, W) from the deepest features and the skips."""
        for upsample, block, skip in zip(self.upsample, self.up, reversed(skips), strict=True):
            x = block(torch.cat([upsample(x), skip], 1))
        return self.last(x)

    def forward(self, x: Tensor) -> Tensor:
        """Foreground logits. Shapes: (B, C, H, W) → (B, 1, H, W)."""
        return self.decode(*self.encode(x))


class SegmentThenClassify(nn.Module):
    """A U-Net removes the predicted background, a classifier reads what is left.

    Args:
        classifier_family: registered family of the classifier (e.g. ``"densenet"``).
        classifier_arch: the classifier's constructor arguments (its ``arch``).
        unet_width, unet_depth: size of the U-Net (:class:`UNet`).
    """

    def __init__(self, classifier_family: str, classifier_arch: Mapping[str, Any],
                 unet_width: int = 16, unet_depth: int = 3) -> None:
        super().__init__()
        arguments = {k: tuple(v) if isinstance(v, list) else v for k, v in
                     classifier_arch.items()}
        self.classifier = family_spec(classifier_family).model_class(**arguments)
        in_channels = int(classifier_arch.get("in_channels", 3))
        self.segmenter = UNet(in_channels, unet_width, unet_depth)
        self.arch = dict(classifier_family=classifier_family,
                         classifier_arch=dict(as_classifier(self.classifier).arch),
                         unet_width=unet_width,
                         unet_depth=unet_depth)

    @classmethod
    def around(cls, classifier: str, num_classes: int, in_channels: int = 3,
               unet_width: int = 16, unet_depth: int = 3) -> SegmentThenClassify:
        """A pipeline around a fresh registered classifier (e.g. ``"densenet121"``)."""
        model = create_model(classifier, num_classes=num_classes, in_channels=in_channels)
        return cls(family_of(classifier), as_classifier(model).arch, unet_width, unet_depth)

    @property
    def num_classes(self) -> int:
        return as_classifier(self.classifier).num_classes

    def forward_parts(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Logits and the U-Net's foreground logits.

        The classifier sees ``x ⊙ [σ(s) > 0.5]`` (the predicted mask, no gradient through it).

        Shapes: x (B, C, H, W) → logits (B, K), segmentation logits (B, 1, H, W).
        """
        segmentation = self.segmenter(x)
        keep = (segmentation.detach() > 0).to(x.dtype)  # σ(s) > 0.5
        return self.classifier(x * keep), segmentation

    def forward(self, x: Tensor) -> Tensor:
        """Logits (B, K) from the image alone."""
        return self.forward_parts(x)[0]


class MultiTaskUNet(nn.Module):
    """A U-Net with a classification head on its deepest features.

    Args:
        num_classes: number of logits K.
        in_channels: image channels.
        width, depth: size of the U-Net.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3, width: int = 16,
                 depth: int = 3) -> None:
        super().__init__()
        self.unet = UNet(in_channels, width, depth)
        deepest = width * 2 ** (depth - 1)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(deepest, 2 * deepest), nn.ReLU(),
                                  nn.Linear(2 * deepest, num_classes))
        self.arch = dict(num_classes=num_classes, in_channels=in_channels, width=width,
                         depth=depth)

    @property
    def num_classes(self) -> int:
        return cast(nn.Linear, self.head[-1]).out_features

    def forward_parts(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Logits (B, K) and foreground logits (B, 1, H, W) from one encoder pass."""
        deepest, skips = self.unet.encode(x)
        return self.head(deepest), self.unet.decode(deepest, skips)

    def forward(self, x: Tensor) -> Tensor:
        """Logits (B, K)."""
        deepest, _ = self.unet.encode(x)
        return self.head(deepest)


def _unet_arch(state: Mapping[str, Tensor], prefix: str) -> dict[str, Any]:
    first = state[f"{prefix}down.0.0.weight"]  # (width, C, 3, 3)
    levels = {key[len(prefix):].split(".")[1] for key in state if key.startswith(f"{prefix}down.")}
    depth = len(levels)
    return dict(in_channels=int(first.shape[1]), width=int(first.shape[0]), depth=depth)


def _segment_classify_arch(state: Mapping[str, Tensor]) -> dict[str, Any]:
    unet = _unet_arch(state, "segmenter.")
    inner = {k[len("classifier."):]: v for k, v in state.items() if k.startswith("classifier.")}
    for family in families():
        if family.name != "segment_classify" and all(k in inner for k in family.signature_keys):
            return dict(classifier_family=family.name,
                        classifier_arch=family.architecture_from_state_dict(inner),
                        unet_width=unet["width"], unet_depth=unet["depth"])
    raise ValueError("the classifier weights of this pipeline match no registered family")


def _multitask_arch(state: Mapping[str, Tensor]) -> dict[str, Any]:
    unet = _unet_arch(state, "unet.")
    return dict(num_classes=int(state["head.4.weight"].shape[0]), **unet)


register_family(Family(
    name="segment_classify", model_class=SegmentThenClassify,
    architecture_from_state_dict=_segment_classify_arch,
    signature_keys=("segmenter.down.0.0.weight", "segmenter.last.weight")))
register_family(Family(
    name="multitask_unet", model_class=MultiTaskUNet,
    architecture_from_state_dict=_multitask_arch,
    signature_keys=("unet.down.0.0.weight", "unet.last.weight", "head.4.weight")))


def _multitask_factory(name: str, width: int, depth: int) -> None:
    def build(num_classes: int = 10, **overrides: Any) -> MultiTaskUNet:
        return MultiTaskUNet(**{"num_classes": num_classes, "width": width, "depth": depth,
                                **overrides})

    build.__name__ = name
    build.__doc__ = f"Multi-task U-Net (width {width}, depth {depth}), randomly initialised."
    register_model(name, "multitask_unet", build)


_multitask_factory("multitask_unet", 32, 4)
_multitask_factory("tiny_multitask_unet", 4, 2)
