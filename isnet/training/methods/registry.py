"""The comparison-method registry: how each method builds, trains and explains its network.

A :class:`Method` is three plain functions:

* ``create_model(config, in_channels)`` — the network it trains, from ``config.model`` (the
  backbone name) and ``config.num_classes``;
* ``loss(network, images, masks, labels, config)`` — its loss terms for one batch, with the logits
  and (optionally) the maps the loss constrained;
* ``native_map(model, images)`` — the method's own explanation, one (B, 1, H, W) map per image
  (Grad-CAM for GAIN, the predicted mask for the U-Nets, attention rollout for the ViT, …).

Each method file in :mod:`isnet.training.methods` registers itself here when imported.
Networks without an LRP walk (the U-Nets, the ViT) also register their native map by class, so
:func:`isnet.measure` can compute their background share (:func:`native_explainer_for`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from isnet.loss import LossTerms

MethodLoss = Callable[[nn.Module, Tensor, Tensor, Tensor, Any], tuple[LossTerms, Tensor,
                                                                     Tensor | None]]
NativeMap = Callable[[nn.Module, Tensor], Tensor]
Explainer = Callable[[nn.Module, Tensor], tuple[Tensor, Tensor]]


@dataclass(frozen=True)
class Method:
    """One training method beside standard training and the LRP ISNets.

    Attributes:
        name: the word used in ``TrainConfig.method`` (e.g. ``"rrr"``).
        title: a short human name for tables (e.g. ``"RRR"``).
        create_model: ``(config, in_channels) -> nn.Module`` with ``num_classes`` logits.
        loss: ``(network, images, masks, labels, config) -> (LossTerms, logits (B, K), maps)``;
            maps are (B, M, C, H, W) or None (then no background share is logged per step).
        native_map: ``(model, images) -> (B, 1, H, W)`` non-negative map of the method's own
            explanation of the predicted class.
        native_name: what the native map is (``"Grad-CAM"``, ``"predicted mask"``, …).
        model_name: ``backbone -> registry name`` of the network this method trains when given
            that backbone (most methods train the backbone itself).
    """

    name: str
    title: str
    create_model: Callable[[Any, int], nn.Module]
    loss: MethodLoss
    native_map: NativeMap
    native_name: str
    model_name: Callable[[str], str] = lambda backbone: backbone


_METHODS: dict[str, Method] = {}
_NATIVE_BY_CLASS: dict[type, NativeMap] = {}


def register_method(method: Method) -> Method:
    """Registers a comparison method (once, from its own file)."""
    if method.name in _METHODS:
        raise ValueError(f"training method {method.name!r} is already registered")
    _METHODS[method.name] = method
    return method


def method_names() -> tuple[str, ...]:
    """Every registered comparison method, in registration order."""
    return tuple(_METHODS)


def get_method(name: str) -> Method | None:
    """The comparison method called ``name``, or None (standard training and the ISNets)."""
    return _METHODS.get(name)


def register_native_explainer(model_class: type, native_map: NativeMap) -> None:
    """Use ``native_map`` to explain networks of ``model_class`` that have no LRP walk."""
    _NATIVE_BY_CLASS[model_class] = native_map


def native_explainer_for(model: nn.Module) -> Explainer | None:
    """``(model, images) -> (logits, maps (B, 1, 1, H, W))`` for a class without LRP, else None."""
    for kind, native_map in _NATIVE_BY_CLASS.items():
        if isinstance(model, kind):
            return as_explainer(native_map)
    return None


def as_explainer(native_map: NativeMap) -> Explainer:
    """Wrap a native map as an explainer returning logits and maps shaped like LRP heatmaps.

    Shapes: images (B, C, H, W) → logits (B, K), maps (B, 1, 1, H, W) (one map, one channel).
    """

    def explainer(model: nn.Module, images: Tensor) -> tuple[Tensor, Tensor]:
        with torch.no_grad():
            logits = model(images)
        return logits, native_map(model, images).detach().unsqueeze(1)

    return explainer


def predicted_lrp_map(model: nn.Module, images: Tensor) -> Tensor:
    """|LRP| of the predicted class summed over colour channels (z^B input rule on [0, 1]
    pixels): the map of methods that train a plain backbone and have no map of their own.

    Shapes: images (B, C, H, W) → (B, 1, H, W).
    """
    from isnet.wrapper import explain  # the LRP walk, only when a map is asked for

    with torch.no_grad():
        _, heatmaps = explain(model, images)  # (B, 1, C, H, W)
    return heatmaps[:, 0].abs().sum(1, keepdim=True)


LRP_NATIVE_NAME = "LRP"
"""``Method.native_name`` of methods whose only map is the backbone's LRP heatmap."""


def predicted_classes(model: nn.Module, images: Tensor) -> Tensor:
    """Arg-max class of each image, shape (B,), computed without gradients."""
    with torch.no_grad():
        return model(images).argmax(1)
