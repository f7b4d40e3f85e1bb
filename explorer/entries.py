"""The models the explorer compares, as the UI sees them.

* :class:`ModelEntry` — one model: a read-only ``eval()`` network of any registered family plus
  the metadata the UI needs (class names, input size, training method, training facts, LRP
  defaults).
* :func:`training_method`, :func:`trained_as` — how a model was trained, read from checkpoint
  metadata (also for foreign files).
* :func:`plain_metadata` — metadata with the keys the UI relies on filled in.
* ``SHARED`` — the owner of bundled models (None: every session may use them).

The process-level collection of entries is :class:`explorer.store.ModelStore`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

import isnet
from isnet.models import family_of
from isnet.training.config import HEATMAP_LOSS_METHODS

SHARED = None  # owner of bundled models


@dataclass
class ModelEntry:
    """A model the explorer can use, and what the UI shows about it.

    Attributes:
        model_id: unique key in the store (also the dropdown value).
        label: human-readable name (shown in dropdowns and cards).
        model: an LRP-ready network (any registered family) in ``eval()`` mode, on the store's
            device once added; never trained in place.
        metadata: checkpoint metadata (``class_names``, ``input_size``, ``config``, ``data``,
            ``metrics``, ``provenance``, …) — see :mod:`isnet.io.checkpoints`.
        owner: the session hash that may use it, or None for everyone.
        path: the checkpoint file it came from or was saved to, if any.
    """

    model_id: str
    label: str
    model: Any
    metadata: dict
    owner: str | None = SHARED
    path: str | None = None

    @property
    def class_names(self) -> list[str]:
        """One name per logit (falls back to "0", "1", …)."""
        names = self.metadata.get("class_names")
        return list(names) if names else [str(i) for i in range(self.model.num_classes)]

    @property
    def device(self) -> torch.device:
        """Where the model's weights are (inputs follow it; results come back to the CPU)."""
        return next(self.model.parameters(), torch.empty(0)).device

    @property
    def input_size(self) -> int:
        """Side length in pixels the model expects (64 when the checkpoint does not say)."""
        return int(self.metadata.get("input_size") or 64)

    @property
    def method(self) -> str | None:
        """The training method (``TrainConfig.method``), or None when not recorded."""
        return training_method(self.metadata)

    @property
    def trained_as(self) -> str:
        """"isnet", "standard", "comparison" or "unknown" (see :func:`trained_as`)."""
        return trained_as(self.metadata)

    @property
    def family(self) -> str:
        """The model family ("densenet", …) from the checkpoint, else from the model name."""
        if self.metadata.get("family"):
            return str(self.metadata["family"])
        try:
            return family_of(str(self.metadata.get("model_name")))
        except ValueError:
            return "unknown"

    @property
    def normalisation(self) -> tuple[list[float], list[float]] | None:
        """(mean, std) per channel the model's inputs are normalised with, or None for raw
        [0, 1] pixels."""
        norm = self.metadata.get("normalisation") or {}
        mean, std = norm.get("mean"), norm.get("std")
        if mean is None or std is None:
            return None
        return [float(m) for m in mean], [float(s) for s in std]

    @property
    def bounds(self) -> tuple[Any, Any]:
        """(low, high) of the z^B rule: floats, or one value per channel of the normalised
        input ((0 − mean) / std, (1 − mean) / std)."""
        low, high = self.metadata.get("bounds") or (0.0, 1.0)
        return low, high

    @property
    def lrp_mode(self) -> str:
        """"corrected" or "authors" (the LRP block as published): the model's default."""
        return "authors" if self.metadata.get("lrp_mode") == "authors" else "corrected"

    @property
    def epsilon(self) -> float:
        """ε of the LRP ε-rule the model was trained with (the LRP default when not recorded)."""
        value = (self.metadata.get("config") or {}).get("epsilon")
        return float(value) if value is not None else isnet.LRPConfig().epsilon


def training_method(metadata: Mapping[str, Any]) -> str | None:
    """The training method recorded in checkpoint metadata (``config.method``), or None.

    Version 0.1 checkpoints call it ``config.variant`` (as :meth:`isnet.TrainConfig.from_dict`
    reads it too).
    """
    config = metadata.get("config") or {}
    for key in ("method", "variant"):
        if config.get(key):
            return str(config[key])
    return None


def trained_as(metadata: Mapping[str, Any]) -> str:
    """"isnet", "standard" or "comparison": how a model was trained, from its metadata.

    An explicit ``trained_as`` (e.g. the untrained demo pair) wins; then the training method:
    "standard", an ISNet (the heatmap loss on LRP or on gradient×input) or another arena method
    ("comparison"); then, for foreign files, whether "isnet" appears in their provenance.
    """
    explicit = metadata.get("trained_as")
    if explicit in ("isnet", "standard"):
        return str(explicit)
    method = training_method(metadata)
    if method:
        if method == "standard":
            return "standard"
        return "isnet" if method in HEATMAP_LOSS_METHODS else "comparison"
    sections = [metadata.get(k) for k in ("config", "provenance") if metadata.get(k)]
    if not sections:
        return "unknown"
    return "isnet" if "isnet" in json.dumps(sections, default=str).lower() else "standard"


def plain_metadata(metadata: Mapping[str, Any] | None) -> dict:
    """A shallow copy of checkpoint metadata with the keys the UI relies on filled in."""
    data = dict(metadata or {})
    data.setdefault("config", {})
    data.setdefault("data", {})
    data.setdefault("metrics", {})
    data.setdefault("provenance", {})
    return data
