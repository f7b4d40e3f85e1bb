"""The paper's comparison methods as training methods of the engine (one file per method).

Importing this package registers every method (:mod:`isnet.training.methods.registry`); the loop
(:func:`isnet.training.loop.compute_loss`) dispatches to a registered method by
``TrainConfig.method``. Standard training and the LRP ISNets (``"all"``, ``"selective"``,
``"stochastic"``) are not registered here: the loop runs them itself.
"""

from __future__ import annotations

from torch import nn

from isnet.models import create_model
from isnet.training.config import TrainConfig
from isnet.training.methods import (
    ag_sononet,
    background_random,
    background_swap,
    gain,
    gradient_input,
    ham,
    isnet_swap,
    rrr,
    swap_consistency,
    unet,
    vit,
)
from isnet.training.methods.registry import (
    Method,
    as_explainer,
    get_method,
    method_names,
    native_explainer_for,
    register_method,
    register_native_explainer,
)

COMPARISON_METHODS: tuple[str, ...] = method_names()
"""Every registered comparison method (a subset of ``isnet.TRAINING_METHODS``)."""


def create_network(config: TrainConfig, in_channels: int = 3) -> nn.Module:
    """The randomly initialised network that ``config.method`` trains on ``config.model``.

    Standard training and the LRP ISNets train the backbone itself; a comparison method may build
    something else around it (a U-Net in front of it) or instead of it (a ViT).
    """
    method = get_method(config.method)
    if method is None:
        return create_model(config.model, num_classes=config.num_classes, in_channels=in_channels)
    return method.create_model(config, in_channels)


__all__ = ["COMPARISON_METHODS", "Method", "ag_sononet", "as_explainer", "background_random",
           "background_swap", "create_network", "gain", "get_method", "gradient_input", "ham",
           "isnet_swap", "method_names", "native_explainer_for", "register_method",
           "register_native_explainer", "rrr", "swap_consistency", "unet", "vit"]
