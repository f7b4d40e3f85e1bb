"""Checkpoints: one safe file holding a network's weights and everything needed to reuse them.

Format (our own checkpoints): a `safetensors <https://huggingface.co/docs/safetensors>`_ file.
The tensors are the network's ``state_dict`` (optionally stored as float16 to keep bundled assets
small); the header's string metadata holds one JSON document under the key ``"isnet"``::

    {"format_version": 1, "model_name": "densenet121", "family": "densenet",
     "architecture": {...constructor kwargs...},
     "class_names": [...], "input_size": 64, "normalisation": {"mean": null, "std": null},
     "bounds": [0.0, 1.0], "seed": 0, "config": {...TrainConfig...}, "data": {...},
     "metrics": {...}, "provenance": {...}, "storage_dtype": "float16"}

Loading a safetensors file never executes code. Other files (the ISNet authors' ``torch.save`` or
Lightning ``.ckpt`` dictionaries, or a plain state dict) are read with
``torch.load(..., weights_only=True)``: a pickle that would run code is refused with a
:class:`CheckpointError`, and nothing it asks for is executed. Their keys are translated by
:func:`isnet.load_reference_state_dict`, and the architecture is inferred from tensor shapes
(:mod:`isnet.io.architecture`).

Reading is bounded (:class:`isnet.io.limits.CheckpointLimits`, :mod:`isnet.io.safetensors_header`):
the file size, the header and metadata size and JSON depth, the required metadata entries, and
the declared architecture against the tensor shapes are all checked before a tensor is read or a
model is built. Error messages name only the file's base name.

Writing is atomic (:mod:`isnet.io.atomic`): an interrupted save leaves any previous file
untouched, and an existing file is never replaced unless ``overwrite=True``.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

import torch
from safetensors import SafetensorError
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_save
from torch import Tensor, nn

from isnet.io.architecture import (
    build_model,
    check_declared_size,
    infer_architecture,
    load_weights,
    registered_name,
)
from isnet.io.atomic import write_atomically
from isnet.io.foreign import load_reference_state_dict
from isnet.io.imagenet import IMAGENET_CLASSES, imagenet_preprocessing
from isnet.io.limits import CheckpointLimits, size_text
from isnet.io.safetensors_header import (
    SafetensorsHeader,
    checked_architecture,
    parse_metadata_json,
    read_header,
)
from isnet.models.protocols import as_classifier
from isnet.models.registry import families

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
_METADATA_KEY = "isnet"
_CHUNK_BYTES = 1 << 20
_UNSAFE_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]{1,80})")
_REQUIRED: tuple[tuple[str, type], ...] = (("architecture", dict),)
_REQUIRED_TEXT = {"architecture": "the network's constructor arguments, e.g. num_classes"}


class CheckpointError(ValueError):
    """A file is not a loadable checkpoint (unsafe, corrupt, or of an unknown layout)."""


class LoadedCheckpoint(NamedTuple):
    """What :func:`load_checkpoint` returns.

    Attributes:
        model: the network with the stored weights, float32, in ``eval()`` mode.
        metadata: the JSON metadata (see the module docstring); for foreign files a minimal
            dictionary with ``model_name``, ``architecture``, ``class_names`` and ``provenance``.
    """

    model: nn.Module
    metadata: dict[str, Any]


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    *,
    model_name: str | None = None,
    class_names: list[str] | None = None,
    input_size: int | None = None,
    normalisation: Mapping[str, Any] | None = None,
    bounds: tuple[Any, Any] = (0.0, 1.0),
    seed: int | None = None,
    config: Mapping[str, Any] | None = None,
    data: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
    half: bool = False,
    overwrite: bool = False,
) -> Path:
    """Write ``model`` and its metadata to one safetensors file, atomically.

    Args:
        path: target file (conventionally ``*.safetensors``); its folder is created if missing.
        model: the bare network (not the ISNet wrapper; pass ``isnet_model.backbone``).
        model_name: registry name (e.g. ``"densenet121"``); inferred from the architecture if None.
        class_names: one name per logit; defaults to ``["0", "1", …]``.
        input_size: side length in pixels of the training images.
        normalisation: input normalisation, e.g. ``{"mean": None, "std": None}`` for raw [0, 1].
        bounds: pixel range (l, h) the z^B rule assumed.
        seed: the training seed.
        config: the training configuration (e.g. ``dataclasses.asdict(TrainConfig)``).
        data: how the training data was made (dataset, bias settings, limits).
        metrics: measured results (accuracy, background share, …).
        provenance: free-form origin facts (command line, git commit, …); a UTC timestamp and
            library versions are added.
        half: store floating-point tensors as float16 (halves the size; loaded back as float32).
        overwrite: replace an existing file. Without it an existing file raises.

    Returns:
        The path written.

    Raises:
        FileExistsError: if ``path`` exists and ``overwrite`` is False.
        ValueError: if ``model`` is not of a registered family, class names do not match the
            logits, or the metadata cannot be written as JSON.
    """
    family = next((f.name for f in families() if type(model) is f.model_class), None)
    if family is None:
        raise ValueError(f"save_checkpoint: model must be a network of a registered family "
                         f"(isnet.create_model), got {type(model).__name__}; pass the ISNet "
                         "wrapper's .backbone")
    network = as_classifier(model)
    target = Path(path)
    if target.exists() and not overwrite:
        raise FileExistsError(f"save_checkpoint: {target} already exists; pass overwrite=True "
                              "to replace it or choose another path")
    names = list(class_names) if class_names is not None else [str(i) for i in
                                                               range(network.num_classes)]
    if len(names) != network.num_classes:
        raise ValueError(f"save_checkpoint: {len(names)} class_names for a model with "
                         f"{network.num_classes} logits")
    metadata = {
        "format_version": FORMAT_VERSION,
        "model_name": model_name or registered_name(family, network.arch),
        "family": family,
        "architecture": dict(network.arch),
        "class_names": names,
        "input_size": input_size,
        "normalisation": dict(normalisation) if normalisation else {"mean": None, "std": None},
        "bounds": [_bound(bounds[0]), _bound(bounds[1])],
        "seed": seed,
        "config": dict(config or {}),
        "data": dict(data or {}),
        "metrics": dict(metrics or {}),
        "provenance": {**_default_provenance(), **dict(provenance or {})},
        "storage_dtype": "float16" if half else "float32",
    }
    try:
        header = json.dumps(metadata, allow_nan=True)
    except (TypeError, ValueError) as error:
        raise ValueError(f"save_checkpoint: metadata is not JSON-serialisable ({error}); pass "
                         "plain numbers, strings, lists and dicts") from error
    tensors = _storable_tensors(model, half)
    payload = safetensors_save(tensors, metadata={_METADATA_KEY: header})
    chunks = (payload[i:i + _CHUNK_BYTES] for i in range(0, len(payload), _CHUNK_BYTES))
    write_atomically(target, chunks, overwrite=overwrite)
    logger.info("saved checkpoint %s (%.1f MB)", target, len(payload) / 1e6)
    return target


def _bound(value: Any) -> float | list[float]:
    """A z^B bound as JSON: one float, or one float per channel."""
    if isinstance(value, (list, tuple)) or bool(getattr(value, "ndim", 0)):
        return [float(v) for v in value]
    return float(value)


def load_checkpoint(path: str | os.PathLike,
                    limits: CheckpointLimits = CheckpointLimits()) -> LoadedCheckpoint:
    """Load a checkpoint as a float32 network in ``eval()`` mode, plus its metadata.

    Accepts our safetensors checkpoints and, through :func:`isnet.load_reference_state_dict`,
    the ISNet authors' formats (``IsDense``/``ISNetLgt``/``ISNetFlex`` state dicts, Lightning
    ``.ckpt`` dictionaries with a ``"state_dict"`` entry) and plain torchvision-layout state
    dicts. For foreign files the architecture (and K, from the classifier's shape) is inferred.

    The file is untrusted until checked: its size, the safetensors header and metadata (size and
    JSON depth, :class:`isnet.io.limits.CheckpointLimits`), the required metadata entries, and
    the architecture the metadata declares against the one the tensor shapes imply — all before
    any tensor is read or any model is built.

    Args:
        path: the file to read.
        limits: bounds on the file (defaults: 1 GB file, 8 MB header, 1 MB metadata, JSON depth
            32).

    Returns:
        ``LoadedCheckpoint(model, metadata)``.

    Raises:
        CheckpointError: (a ``ValueError``) if the file is missing, too large, not a checkpoint,
            would execute code when unpickled, lacks a required metadata entry, or its tensors
            do not fit the declared architecture or any registered family. The message names
            only the file's base name.
    """
    source = Path(path)
    if not source.is_file():
        raise CheckpointError(f"{source.name} does not exist or is not a file")
    size = source.stat().st_size
    if size > limits.max_file_bytes:
        raise CheckpointError(f"{source.name} is {size_text(size)}; the limit for a checkpoint "
                              f"is {size_text(limits.max_file_bytes)}")
    if _looks_like_safetensors(source):
        return _load_safetensors(source, limits)
    return _load_foreign(source, limits)


def read_metadata(path: str | os.PathLike,
                  limits: CheckpointLimits = CheckpointLimits()) -> dict[str, Any]:
    """Read only the JSON metadata of one of our checkpoints (fast; no weights are loaded).

    The header and metadata are bounded by ``limits`` as in :func:`load_checkpoint`; the
    required entries are checked, the tensor shapes are not.

    Raises:
        CheckpointError: if ``path`` is not one of our safetensors checkpoints, or its header or
            metadata exceeds ``limits``.
    """
    source = Path(path)
    if not source.is_file() or not _looks_like_safetensors(source):
        raise CheckpointError(f"{source.name} is not an ISNet safetensors checkpoint")
    return _parse_metadata(source, _checked_header(source, limits).metadata, limits)


def list_checkpoints(folder: str | os.PathLike,
                     limits: CheckpointLimits = CheckpointLimits()) -> dict[str, dict[str, Any]]:
    """Map each ``*.safetensors`` checkpoint's file stem in ``folder`` to its metadata.

    Files that are not our checkpoints (or exceed ``limits``) are skipped with a logged warning.
    """
    found: dict[str, dict[str, Any]] = {}
    for file in sorted(Path(folder).glob("*.safetensors")):
        try:
            found[file.stem] = read_metadata(file, limits)
        except CheckpointError as error:
            logger.warning("skipping %s: %s", file, error)
    return found


# --- writing ---------------------------------------------------------------------------------

def _storable_tensors(model: nn.Module, half: bool) -> dict[str, Tensor]:
    """Contiguous CPU copies of the state dict; floating tensors optionally as float16."""
    tensors = {}
    for key, value in model.state_dict().items():
        value = value.detach().to("cpu")
        if half and value.is_floating_point():
            value = value.to(torch.float16)
        tensors[key] = value.contiguous().clone()
    return tensors


def _default_provenance() -> dict[str, Any]:
    from isnet import __version__

    return {"created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "isnet_version": __version__, "torch_version": torch.__version__}


# --- reading ---------------------------------------------------------------------------------

def _looks_like_safetensors(path: Path) -> bool:
    """safetensors files start with an 8-byte little-endian header length, then ``{``."""
    with path.open("rb") as stream:
        start = stream.read(9)
    return len(start) == 9 and start[8:9] == b"{"  # the length is checked by read_header


def _checked_header(path: Path, limits: CheckpointLimits) -> SafetensorsHeader:
    try:
        return read_header(path, limits)
    except ValueError as error:  # LimitError included
        raise CheckpointError(str(error)) from None


def _parse_metadata(path: Path, header: Mapping[str, str],
                    limits: CheckpointLimits) -> dict[str, Any]:
    """Our JSON document from the header's string metadata, with its required entries."""
    if _METADATA_KEY not in header:
        raise CheckpointError(f"{path.name}: a safetensors file without ISNet metadata; save it "
                              "with isnet.save_checkpoint")
    try:
        metadata = parse_metadata_json(header[_METADATA_KEY], limits, f"{path.name}: metadata")
    except ValueError as error:
        raise CheckpointError(str(error)) from None
    if not isinstance(metadata, dict):
        raise CheckpointError(f"{path.name}: the ISNet metadata is not a JSON object")
    version = metadata.get("format_version", 0)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(f"{path.name}: checkpoint format {str(version)[:20]} is not one "
                              f"this code reads (up to {FORMAT_VERSION}); update isnet")
    for key, kind in _REQUIRED:
        if key not in metadata:
            raise CheckpointError(f"{path.name}: the metadata has no {key!r} entry (required: "
                                  f"{_REQUIRED_TEXT[key]}); re-save it with isnet.save_checkpoint")
        if not isinstance(metadata[key], kind):
            raise CheckpointError(f"{path.name}: the metadata's {key!r} entry must be a "
                                  f"{kind.__name__}, got {type(metadata[key]).__name__}")
    return metadata


def _load_safetensors(path: Path, limits: CheckpointLimits) -> LoadedCheckpoint:
    header = _checked_header(path, limits)
    metadata = _parse_metadata(path, header.metadata, limits)
    try:
        family, architecture = checked_architecture(path.name, metadata, header)
    except ValueError as error:
        raise CheckpointError(str(error)) from None
    try:
        tensors = safetensors_load(path.read_bytes())
    except SafetensorError as error:
        raise CheckpointError(f"{path.name}: corrupt safetensors data ({error})") from error
    return LoadedCheckpoint(_build(path, family, architecture, tensors, limits), metadata)


def _load_foreign(path: Path, limits: CheckpointLimits) -> LoadedCheckpoint:
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # UnpicklingError, RuntimeError, EOFError, … all mean "refused"
        raise CheckpointError(_refusal(path, error)) from None
    if not isinstance(raw, Mapping):
        raise CheckpointError(f"{path.name}: holds a {type(raw).__name__}, not a state dict")
    state = {k: v for k, v in raw.items() if isinstance(v, Tensor)}
    try:
        family, architecture = infer_architecture(state)
    except ValueError as no_family:
        try:
            state = load_reference_state_dict(dict(raw))
        except ValueError:  # not the authors' layout either: name the closest family
            raise CheckpointError(f"{path.name}: {no_family}") from no_family
        try:
            family, architecture = infer_architecture(state)
        except (ValueError, KeyError, TypeError, IndexError) as error:
            raise CheckpointError(f"{path.name}: {error}") from error
    metadata = {
        "format_version": 0, "model_name": registered_name(family, architecture),
        "family": family, "architecture": architecture,
        "class_names": [str(i) for i in range(architecture["num_classes"])],
        "input_size": None, "normalisation": {"mean": None, "std": None}, "bounds": [0.0, 1.0],
        "seed": None, "config": {}, "data": {}, "metrics": {},
        "provenance": {"source_file": path.name, "format": "torch.load state dict"},
        "storage_dtype": str(next(iter(state.values())).dtype).replace("torch.", ""),
    }
    if architecture["num_classes"] == IMAGENET_CLASSES:  # names, size, normalisation, bounds
        metadata.update(imagenet_preprocessing(str(metadata["model_name"])).metadata())
    return LoadedCheckpoint(_build(path, family, architecture, state, limits), metadata)


def _build(path: Path, family: str, architecture: dict[str, Any],
           tensors: Mapping[str, Tensor], limits: CheckpointLimits) -> nn.Module:
    try:
        check_declared_size(tensors, path.stat().st_size, limits)  # before anything is built
        model = build_model(family, architecture)
        load_weights(model, {k: (v.float() if v.is_floating_point() else v)
                             for k, v in tensors.items()})
    except (ValueError, TypeError, RuntimeError) as error:
        raise CheckpointError(f"{path.name}: {error}") from error
    return model.eval()


def _refusal(path: Path, error: Exception) -> str:
    """Why ``torch.load(weights_only=True)`` refused a file, without torch's advice to load it
    unsafely (``weights_only=False``) and without paths."""
    asked = _UNSAFE_GLOBAL.search(str(error))
    reason = (f"it asks to run {asked.group(1)} when unpickled" if asked
              else f"{type(error).__name__}")
    return (f"{path.name}: refused: not a safetensors checkpoint, and not a plain dictionary of "
            f"tensors ({reason}). Pickled objects that would run code are never loaded. Save "
            "the model with isnet.save_checkpoint, or its state_dict() with torch.save.")
