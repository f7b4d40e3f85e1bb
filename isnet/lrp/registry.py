"""Which reverse walk explains which model family.

Each family's walk file (e.g. :mod:`isnet.lrp.densenet`) registers, for its model class, the
function ``walk(model, trace, messages, config) -> heatmaps`` that carries the messages at the
classifier's input (``trace.pooled``) down to the input pixels. The ISNet wrapper and
:func:`isnet.explain` only ever call :func:`relevance_from_messages`, so adding a family touches
no other family's files.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from isnet.lrp.config import LRPConfig

Walk = Callable[[Any, Any, Tensor, LRPConfig], Tensor]
_WALKS: dict[type, Walk] = {}
_WITH_QUIRKS: set[type] = set()


def register_walk(model_type: type, reference_quirks: bool = False) -> Callable[[Walk], Walk]:
    """Decorator: register ``walk`` as the LRP walk of ``model_type`` (and its subclasses).

    ``reference_quirks=True`` says the walk can reproduce a published reference implementation
    (``LRPConfig.reference_quirks``); other walks refuse that setting.
    """

    def decorate(walk: Walk) -> Walk:
        _WALKS[model_type] = walk
        if reference_quirks:
            _WITH_QUIRKS.add(model_type)
        return walk

    return decorate


def is_lrp_ready(model: nn.Module) -> bool:
    """Whether an LRP walk is registered for this model's class."""
    return any(isinstance(model, kind) for kind in _WALKS)


def walk_for(model: nn.Module) -> Walk:
    """The registered walk of ``model``'s family.

    Raises:
        ValueError: no walk is registered (the model is not an LRP-ready isnet network).
    """
    for kind, walk in _WALKS.items():
        if isinstance(model, kind):
            return walk
    names = ", ".join(kind.__name__ for kind in _WALKS)
    raise ValueError(f"no LRP walk for {type(model).__name__}; LRP-ready families: {names}. "
                     "Build the backbone with isnet.create_model(name, num_classes=...)")


def relevance_from_messages(model: nn.Module, trace: Any, messages: Tensor,
                            config: LRPConfig, ledger: Any = None) -> Tensor:
    """Heatmaps (B, M, C, H, W) from messages (B, M, F) at the classifier input.

    A ``ledger`` (:class:`isnet.lrp.conservation.BiasLedger`) records what each step's bias and
    ε keep; the walk then takes it as the keyword ``ledger``.

    Raises:
        ValueError: ``config.reference_quirks`` for a family whose walk has no reference mode
            (the authors' published quirks concern their DenseNet LRP block only).
    """
    walk: Callable[..., Tensor] = walk_for(model)  # walks take ``ledger`` as a keyword
    if config.reference_quirks and not any(isinstance(model, kind) for kind in _WITH_QUIRKS):
        raise ValueError(f"reference_quirks reproduces the ISNet authors' DenseNet LRP block; "
                         f"{type(model).__name__} has no published block to reproduce. Use "
                         "LRPConfig(reference_quirks=False)")
    if ledger is None:
        return walk(model, trace, messages, config)
    return walk(model, trace, messages, config, ledger=ledger)
