"""Weights from elsewhere: torchvision DenseNets and the ISNet authors' published formats.

Formats understood (reference §9):

* torchvision ``densenet121/161/169/201`` state dicts (also the old ``norm.1``-style keys);
* the authors' ``IsDense`` state dicts: keys under ``DenseNet.``, plus ``LRPBlock.*`` aliases of
  the same tensors (dropped);
* their Lightning checkpoints (``{"state_dict": …, "hyper_parameters": …}``): the classifier is
  ``classifier.1.*`` (index 0 is a Dropout), or the newer ``classifierDNN.`` prefix;
* LRP-Flex modules: ``model.`` (or ``model.model.``) prefix with ``ZbModule.*`` aliases.

Files are read with ``torch.load(..., weights_only=True)``: a pickle that would run code is
refused, never executed.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import torch
from torch import Tensor

from isnet.models import DenseNet

_PREFIXES = ("DenseNet.", "classifierDNN.", "model.model.", "model.", "module.")
_ALIASES = ("LRPBlock.", "ZbModule.", "Cweight")


def read_weights_file(path: str | Path) -> dict:
    """``torch.load(path, weights_only=True)`` with messages a user can act on."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError, RuntimeError, EOFError, …
        raise ValueError(f"{path} is not a loadable weights file: it is corrupt, not a PyTorch "
                         "file, or it contains Python objects that would run code when loaded "
                         f"(refused for safety). Details: {str(error).splitlines()[0]}") from None


def load_reference_state_dict(source: str | Path | dict) -> dict[str, Tensor]:
    """A state dict in any supported format (see module docstring) → our DenseNet's keys.

    Raises:
        ValueError: unreadable file, or no DenseNet weights inside.
    """
    state = read_weights_file(source) if isinstance(source, (str, Path)) else source
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise ValueError("expected a state dict (a mapping of parameter names to tensors)")
    tensors = {k: v for k, v in state.items() if isinstance(v, Tensor)}
    prefix = next((p for p in _PREFIXES if any(k.startswith(p + "features.") for k in tensors)), "")
    renamed = {}
    for key, value in tensors.items():
        if key.startswith(_ALIASES) or not key.startswith(prefix):
            continue
        key = key[len(prefix):]
        key = re.sub(r"^classifier\.1\.", "classifier.", key)
        key = re.sub(r"\.(norm|relu|conv)\.([12])\.", r".\1\2.", key)  # old torchvision names
        renamed[key] = value
    if not any(k.startswith("features.conv0") for k in renamed):
        sample = ", ".join(sorted(tensors)[:5])
        raise ValueError(f"no DenseNet weights found (expected keys like 'features.conv0.weight', "
                         f"optionally under 'DenseNet.' or 'classifierDNN.'); first keys: {sample}")
    return renamed


def model_for_state_dict(state: dict[str, Tensor]) -> DenseNet:
    """Build the DenseNet whose architecture matches ``state`` (block sizes, growth, classes)."""
    try:
        conv0 = state["features.conv0.weight"]
        classifier = state["classifier.weight"]
        layers = Counter(int(m.group(1)) for k in state
                         if (m := re.match(r"features\.denseblock(\d+)\.denselayer\d+\.conv1\.weight", k)))
        first_conv2 = state["features.denseblock1.denselayer1.conv2.weight"]
    except KeyError as missing:
        raise ValueError(f"not a DenseNet state dict: key {missing} is missing") from None
    growth = first_conv2.shape[0]
    block_config = tuple(layers[b] for b in sorted(layers))
    return DenseNet(growth_rate=growth, block_config=block_config,
                    num_init_features=conv0.shape[0], bn_size=first_conv2.shape[1] // growth,
                    num_classes=classifier.shape[0], in_channels=conv0.shape[1])


def load_weights(model: DenseNet, state: dict[str, Tensor]) -> DenseNet:
    """``model.load_state_dict(state)`` with a ValueError naming missing/unexpected/odd keys."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or mismatched:
        def show(keys: list[str]) -> str:
            return ", ".join(keys[:6]) + (f" … ({len(keys)} in all)" if len(keys) > 6 else "")
        parts = [f"{name}: {show(keys)}" for name, keys in
                 (("missing keys", missing), ("unexpected keys", unexpected),
                  ("shape mismatches", mismatched)) if keys]
        raise ValueError("weights do not fit this DenseNet — " + "; ".join(parts))
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})
    return model
