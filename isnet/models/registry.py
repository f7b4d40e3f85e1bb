"""The model registry: every buildable network by name, and the family it belongs to.

A *model family* (``"densenet"``, and next ``"resnet"``, ``"vgg"``) is one architecture with its
own file in :mod:`isnet.models` and its own LRP walk in :mod:`isnet.lrp`. Each family file
registers its named builders here when it is imported; nothing else needs to change to add one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from torch import Tensor, nn

_Builder = TypeVar("_Builder", bound=Callable[..., nn.Module])
_BUILDERS: dict[str, Callable[..., nn.Module]] = {}
_FAMILIES: dict[str, str] = {}


@dataclass(frozen=True)
class Family:
    """A model family: its network class and how to recognise its state dicts.

    Attributes:
        name: the family's word (``"densenet"``); stored in checkpoints.
        model_class: the ``nn.Module`` class; ``model_class(**model.arch)`` rebuilds a model.
        architecture_from_state_dict: state dict with our (torchvision) keys → constructor
            arguments; raises ``KeyError`` or ``ValueError`` when the keys are not this family's.
        signature_keys: keys every state dict of the family has (used to name the closest
            family when a file matches none).
        guessed_keys: constructor arguments that ``architecture_from_state_dict`` cannot read
            from tensor shapes and only guesses (e.g. a ViT's number of attention heads); a
            checkpoint's own metadata wins for these.
    """

    name: str
    model_class: type[nn.Module]
    architecture_from_state_dict: Callable[[Mapping[str, Tensor]], dict[str, Any]]
    signature_keys: tuple[str, ...]
    guessed_keys: tuple[str, ...] = ()


_FAMILY_SPECS: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    """Registers a model family (once per family file)."""
    if family.name in _FAMILY_SPECS:
        raise ValueError(f"model family {family.name!r} is already registered")
    _FAMILY_SPECS[family.name] = family
    return family


def families() -> tuple[Family, ...]:
    """Every registered model family."""
    return tuple(_FAMILY_SPECS.values())


def family_spec(name: str) -> Family:
    """The registered family called ``name`` (e.g. ``"densenet"``)."""
    if name not in _FAMILY_SPECS:
        raise ValueError(f"unknown model family {name!r}; known: {', '.join(_FAMILY_SPECS)}")
    return _FAMILY_SPECS[name]


def register_model(name: str, family: str, builder: _Builder) -> _Builder:
    """Registers ``builder(num_classes=..., **overrides)`` under ``name``; returns it unchanged.

    Raises:
        ValueError: the name is already registered.
    """
    if name in _BUILDERS:
        raise ValueError(f"model name {name!r} is already registered")
    _BUILDERS[name] = builder
    _FAMILIES[name] = family
    return builder


def model_names() -> tuple[str, ...]:
    """Every registered model name, in registration order."""
    return tuple(_BUILDERS)


def family_of(name: str) -> str:
    """The family of a registered model name (e.g. ``"densenet121"`` → ``"densenet"``)."""
    _check(name)
    return _FAMILIES[name]


def create_model(name: str, num_classes: int = 1000, **overrides: Any) -> nn.Module:
    """Build a registered network by name, randomly initialised.

    Args:
        name: one of :data:`isnet.MODEL_NAMES` (e.g. ``"densenet121"``, ``"tiny_densenet"``).
        num_classes: number of logits K.
        **overrides: architecture settings of the family (e.g. ``in_channels=1``).

    Raises:
        ValueError: if the name is not registered.
    """
    _check(name)
    return _BUILDERS[name](num_classes=num_classes, **overrides)


def _check(name: str) -> None:
    if name not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(_BUILDERS)}")
