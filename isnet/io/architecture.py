"""Which network a state dict belongs to, and loading it with a key check: written once.

Every model family registers how to read its constructor arguments from a state dict with
torchvision's keys (:class:`isnet.models.registry.Family`). :func:`infer_architecture` asks each
family in turn; a state dict that fits none gets an error naming the closest family and the keys
that differ.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from isnet.io.limits import CheckpointLimits
from isnet.models import create_model, family_of
from isnet.models.registry import families, family_spec, model_names


def infer_architecture(state: Mapping[str, Tensor]) -> tuple[str, dict[str, Any]]:
    """The family and constructor arguments of the network whose weights ``state`` holds.

    Raises:
        ValueError: no registered family fits; the message names the closest family and the
            keys it expects but the file lacks (and a few keys the file has instead).
    """
    misfits: dict[str, str] = {}
    for family in families():
        if all(key in state for key in family.signature_keys):
            try:
                return family.name, family.architecture_from_state_dict(state)
            except KeyError as error:
                misfits[family.name] = f"key {error} is missing"
            except (ValueError, IndexError) as error:
                misfits[family.name] = str(error)
    closest = max(families(), key=lambda f: sum(key in state for key in f.signature_keys))
    if closest.name in misfits:  # it has the family's keys, but not a layout the family builds
        raise ValueError(f"the weights look like a {closest.name} but do not fit it: "
                         f"{misfits[closest.name]}")
    missing = [key for key in closest.signature_keys if key not in state]
    others = sorted(set(state) - set(closest.signature_keys))[:5]
    raise ValueError(f"the weights match no supported model family "
                     f"({', '.join(f.name for f in families())}). Closest: {closest.name}, "
                     f"which needs keys {missing[:6]} that the file lacks; the file has keys "
                     f"such as {others}")


def check_declared_size(state: Mapping[str, Tensor], file_bytes: int,
                        limits: CheckpointLimits = CheckpointLimits()) -> None:
    """Refuse weights that declare a network too large to build, from their shapes alone.

    Counted over the tensors themselves (nothing is built or copied): all their values (a
    stride-0 ``expand``-ed tensor counts as large as it claims to be) against
    ``limits.max_parameters`` and against ``file_bytes`` (2 bytes per value at least), the
    tensors of two or more dimensions against ``limits.max_weight_layers``, and each
    convolution's channels against ``limits.max_channels``.

    Raises:
        ValueError: the first bound exceeded, with the number and the limit.
    """
    values = sum(v.numel() for v in state.values() if v.is_floating_point())
    if values > limits.max_parameters:
        raise ValueError(f"the weights declare {values:,} parameters; at most "
                         f"{limits.max_parameters:,} are accepted")
    if 2 * values > file_bytes:
        raise ValueError(f"the weights declare {values:,} parameters, more than a file of "
                         f"{file_bytes:,} bytes can hold (tensors expanded from a few values "
                         f"are refused)")
    layers = [v for v in state.values() if v.ndim >= 2]
    if len(layers) > limits.max_weight_layers:
        raise ValueError(f"the weights declare {len(layers)} weight layers; at most "
                         f"{limits.max_weight_layers} are accepted")
    widest = max((max(v.shape[:2]) for v in layers if v.ndim == 4), default=0)
    if widest > limits.max_channels:
        raise ValueError(f"a convolution declares {widest:,} channels; at most "
                         f"{limits.max_channels:,} are accepted")


def build_model(family: str, architecture: Mapping[str, Any]) -> nn.Module:
    """A randomly initialised network of ``family`` with these constructor arguments."""
    arguments = {k: (tuple(v) if isinstance(v, list) else v) for k, v in architecture.items()}
    try:
        return family_spec(family).model_class(**arguments)
    except TypeError as error:
        raise ValueError(f"architecture {dict(architecture)} does not fit the {family} family "
                         f"({error})") from error


def model_for_state_dict(state: Mapping[str, Tensor]) -> nn.Module:
    """Build the (randomly initialised) network whose architecture matches ``state``."""
    family, architecture = infer_architecture(state)
    return build_model(family, architecture)


def load_weights(model: nn.Module, state: Mapping[str, Tensor]) -> nn.Module:
    """``model.load_state_dict(state)`` with a ValueError naming missing/unexpected/odd keys.

    Tensors are cast to the model's dtypes (float16 checkpoints load as float32).
    """
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
        raise ValueError(f"weights do not fit this {type(model).__name__} — " + "; ".join(parts))
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})
    return model


def registered_name(family: str, architecture: Mapping[str, Any]) -> str | None:
    """The registry name with this family and architecture (ignoring K), else None."""
    def same(a: Any, b: Any) -> bool:
        return (tuple(a) if isinstance(a, (list, tuple)) else a) == \
            (tuple(b) if isinstance(b, (list, tuple)) else b)

    for name in model_names():  # asked now: a family registered after import counts too
        if family_of(name) != family:
            continue
        with torch.device("meta"):  # only .arch is read: no memory, no initialisation cost
            candidate = create_model(name, num_classes=1,
                                     in_channels=architecture.get("in_channels", 3))
        arch = getattr(candidate, "arch", {})
        keys = [k for k in arch if k not in ("num_classes", "in_channels")]
        if all(k in architecture and same(arch[k], architecture[k]) for k in keys):
            return name
    return None
