"""What the engine reads from a registered classifier, as a type: :class:`Classifier`.

``nn.Module.__getattr__`` types every sub-module and attribute as ``Tensor | Module``, so code
that reads ``model.arch`` or ``model.classifier_layer`` from an ``nn.Module`` cannot be checked.
Every registered family's network has these members (the family contract suite,
``tests/test_family_contract.py``, checks it); :func:`as_classifier` says so to the type checker
where a model arrives as a plain ``nn.Module``.
"""

from __future__ import annotations

from typing import Any, Protocol, cast

from torch import Tensor, nn


class Classifier(Protocol):
    """A registered classifier: its constructor arguments, classes and last linear layer.

    ``model_class(**model.arch)`` rebuilds the network; ``classifier_layer`` is where every LRP
    walk starts (logits (B, K) = classifier_layer(pooled features (B, F))).
    """

    arch: dict[str, Any]

    @property
    def num_classes(self) -> int: ...

    @property
    def classifier_layer(self) -> nn.Linear: ...

    def __call__(self, x: Tensor) -> Tensor: ...


class TracedClassifier(Classifier, Protocol):
    """A classifier with an LRP walk: ``forward_trace`` returns the logits (B, K) and the
    family's trace (every activation its walk reads)."""

    def forward_trace(self, x: Tensor) -> tuple[Tensor, Any]: ...


def as_classifier(model: nn.Module) -> Classifier:
    """``model`` typed as a :class:`Classifier` (no check at run time: a cast)."""
    return cast(Classifier, model)
