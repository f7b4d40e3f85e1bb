"""Weights from elsewhere: torchvision DenseNets and the ISNet authors' published formats.

Formats understood (see ``docs/lrp-rules.md``, "Weight layouts"):

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
from pathlib import Path

import torch
from torch import Tensor

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
