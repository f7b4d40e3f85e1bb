"""Transfer learning: a new classifier head for another set of classes.

Fine-tuning a model on a set whose classes differ from the model's (an ImageNet ResNet50 on a
five-class upload, say) keeps every layer but the last linear one, ``model.classifier_layer``,
which every LRP-ready family exposes (DenseNet's ``classifier``, ResNet's ``fc``, VGG's
``classifier[-1]``). That layer is replaced by a freshly initialised ``nn.Linear`` with K outputs,
wherever it sits in the module tree; the network stays LRP-ready (its walk starts at
``classifier_layer``), so it trains as a standard net or as an ISNet.
"""

from __future__ import annotations

import torch
from torch import nn


def classifier_path(model: nn.Module) -> str:
    """The dotted module name of ``model.classifier_layer`` (e.g. ``"fc"``, ``"classifier.6"``).

    Raises:
        ValueError: the model has no ``classifier_layer`` among its submodules.
    """
    head = getattr(model, "classifier_layer", None)
    for name, module in model.named_modules():
        if module is head and name:
            return name
    raise ValueError(f"{type(model).__name__} exposes no classifier_layer among its modules; "
                     "build it with isnet.create_model")


def replace_classifier(model: nn.Module, num_classes: int,
                       generator: torch.Generator | None = None) -> nn.Module:
    """Give ``model`` (in place) a new last linear layer with ``num_classes`` outputs.

    The new layer has the old one's input width, dtype and device; its weights are drawn like
    ``nn.Linear``'s default (uniform in ±1/√fan_in, from ``generator`` when given) and its bias
    is zero. ``model.arch["num_classes"]`` follows, so checkpoints record the new K.

    Args:
        model: an LRP-ready network of any registered family.
        num_classes: K of the new head (≥ 1).
        generator: random source for the new weights (reproducible heads).

    Returns:
        ``model`` itself.

    Shapes:
        new head weight: (num_classes, in_features); bias: (num_classes,).
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}")
    path = classifier_path(model)
    old = model.get_submodule(path)
    if not isinstance(old, nn.Linear):
        raise ValueError(f"{type(model).__name__}.classifier_layer is a {type(old).__name__}, "
                         "not a Linear layer")
    parent_name, _, child = path.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    weight = old.weight
    head = nn.Linear(old.in_features, num_classes, bias=old.bias is not None,
                     device=weight.device, dtype=weight.dtype)
    bound = 1.0 / float(old.in_features) ** 0.5
    with torch.no_grad():
        values = torch.rand(head.weight.shape, generator=generator, dtype=torch.float64)
        head.weight.copy_((values * 2 - 1) * bound)
        if head.bias is not None:
            head.bias.zero_()
    setattr(parent, child, head)
    arch = getattr(model, "arch", None)
    if isinstance(arch, dict):
        setattr(model, "arch", {**arch, "num_classes": num_classes})  # noqa: B010
    return model


def for_classes(model: nn.Module, old_names: list[str], new_names: list[str],
                generator: torch.Generator | None = None) -> tuple[nn.Module, bool]:
    """``model`` ready for ``new_names``: unchanged when the classes are the same (same names in
    the same order), else with a new head (:func:`replace_classifier`).

    Returns:
        (model, whether the head was replaced).
    """
    if list(old_names) == list(new_names):
        return model, False
    return replace_classifier(model, len(new_names), generator), True
