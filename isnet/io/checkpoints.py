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

Writing is atomic (:mod:`isnet.io.atomic`): an interrupted save leaves any previous file
untouched, and an existing file is never replaced unless ``overwrite=True``.
"""

from __future__ import annotations

import json
import logging
import os
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
    infer_architecture,
    load_weights,
    registered_name,
)
from isnet.io.atomic import write_atomically
from isnet.io.foreign import load_reference_state_dict
from isnet.io.imagenet import IMAGENET_CLASSES, imagenet_preprocessing
from isnet.models.registry import families

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
_METADATA_KEY = "isnet"
_CHUNK_BYTES = 1 << 20


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
    bounds: tuple[float, float] = (0.0, 1.0),
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
        ValueError: if ``model`` is not of a registered family, class names do not match the logits, or the
            metadata cannot be written as JSON.
    """
    family = next((f.name for f in families() if type(model) is f.model_class), None)
    if family is None:
        raise ValueError(f"save_checkpoint: model must be a network of a registered family "
                         f"(isnet.create_model), got {type(model).__name__}; pass the ISNet "
                         "wrapper's .backbone")
    target = Path(path)
    if target.exists() and not overwrite:
        raise FileExistsError(f"save_checkpoint: {target} already exists; pass overwrite=True "
                              "to replace it or choose another path")
    names = list(class_names) if class_names is not None else [str(i) for i in
                                                               range(model.num_classes)]
    if len(names) != model.num_classes:
        raise ValueError(f"save_checkpoint: {len(names)} class_names for a model with "
                         f"{model.num_classes} logits")
    metadata = {
        "format_version": FORMAT_VERSION,
        "model_name": model_name or registered_name(family, model.arch),
        "family": family,
        "architecture": dict(model.arch),
        "class_names": names,
        "input_size": input_size,
        "normalisation": dict(normalisation) if normalisation else {"mean": None, "std": None},
        "bounds": [float(bounds[0]), float(bounds[1])],
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


def load_checkpoint(path: str | os.PathLike) -> LoadedCheckpoint:
    """Load a checkpoint as a float32 network in ``eval()`` mode, plus its metadata.

    Accepts our safetensors checkpoints and, through :func:`isnet.load_reference_state_dict`,
    the ISNet authors' formats (``IsDense``/``ISNetLgt``/``ISNetFlex`` state dicts, Lightning
    ``.ckpt`` dictionaries with a ``"state_dict"`` entry) and plain torchvision-layout state dicts. For
    foreign files the architecture (and K, from the classifier's shape) is inferred.

    Args:
        path: the file to read.

    Returns:
        ``LoadedCheckpoint(model, metadata)``.

    Raises:
        CheckpointError: (a ``ValueError``) if the file is missing, not a checkpoint, would
            execute code when unpickled, or its tensors do not fit any registered family.
    """
    source = Path(path)
    if not source.is_file():
        raise CheckpointError(f"load_checkpoint: {source} does not exist or is not a file")
    if _looks_like_safetensors(source):
        return _load_safetensors(source)
    return _load_foreign(source)


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """Read only the JSON metadata of one of our checkpoints (fast; no weights are loaded).

    Raises:
        CheckpointError: if ``path`` is not one of our safetensors checkpoints.
    """
    source = Path(path)
    if not source.is_file() or not _looks_like_safetensors(source):
        raise CheckpointError(f"read_metadata: {source} is not an ISNet safetensors checkpoint")
    header = _read_header(source)
    return _parse_metadata(source, header.get("__metadata__", {}))


def list_checkpoints(folder: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Map each ``*.safetensors`` checkpoint's file stem in ``folder`` to its metadata.

    Files that are not our checkpoints are skipped with a logged warning.
    """
    found: dict[str, dict[str, Any]] = {}
    for file in sorted(Path(folder).glob("*.safetensors")):
        try:
            found[file.stem] = read_metadata(file)
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
    if len(start) < 9 or start[8:9] != b"{":
        return False
    return int.from_bytes(start[:8], "little") < path.stat().st_size


def _read_header(path: Path) -> dict[str, Any]:
    with path.open("rb") as stream:
        length = int.from_bytes(stream.read(8), "little")
        try:
            return json.loads(stream.read(length))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise CheckpointError(f"{path}: corrupt safetensors header ({error})") from error


def _parse_metadata(path: Path, header: Mapping[str, str]) -> dict[str, Any]:
    if _METADATA_KEY not in header:
        raise CheckpointError(f"{path}: a safetensors file without ISNet metadata; save it "
                              "with isnet.save_checkpoint")
    metadata = json.loads(header[_METADATA_KEY])
    if metadata.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format {metadata['format_version']} is newer "
                              f"than this code ({FORMAT_VERSION}); update isnet")
    return metadata


def _load_safetensors(path: Path) -> LoadedCheckpoint:
    metadata = _parse_metadata(path, _read_header(path).get("__metadata__", {}))
    try:
        tensors = safetensors_load(path.read_bytes())
    except SafetensorError as error:
        raise CheckpointError(f"{path}: corrupt safetensors data ({error})") from error
    family = metadata.get("family", "densenet")  # version 0.1 files hold only DenseNets
    return LoadedCheckpoint(_build(path, family, dict(metadata["architecture"]), tensors),
                            metadata)


def _load_foreign(path: Path) -> LoadedCheckpoint:
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # UnpicklingError, RuntimeError, EOFError, … all mean "refused"
        raise CheckpointError(
            f"{path}: not loadable as a safe checkpoint ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}). Only safetensors files and "
            "torch.save'd dictionaries of tensors are accepted; pickled objects that would run "
            "code are refused. Re-save the model's state_dict() with torch.save.") from error
    if not isinstance(raw, Mapping):
        raise CheckpointError(f"{path}: holds a {type(raw).__name__}, not a state dict")
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
        except ValueError as error:
            raise CheckpointError(f"{path.name}: {error}") from error
    metadata = {
        "format_version": 0, "model_name": registered_name(family, architecture),
        "family": family, "architecture": architecture,
        "class_names": [str(i) for i in range(architecture["num_classes"])],
        "input_size": None, "normalisation": {"mean": None, "std": None}, "bounds": [0.0, 1.0],
        "seed": None, "config": {}, "data": {}, "metrics": {},
        "provenance": {"source_file": str(path), "format": "torch.load state dict"},
        "storage_dtype": str(next(iter(state.values())).dtype).replace("torch.", ""),
    }
    if architecture["num_classes"] == IMAGENET_CLASSES:  # names, size, normalisation, bounds
        metadata.update(imagenet_preprocessing(metadata["model_name"]).metadata())
    return LoadedCheckpoint(_build(path, family, architecture, state), metadata)


def _build(path: Path, family: str, architecture: dict[str, Any],
           tensors: Mapping[str, Tensor]) -> nn.Module:
    try:
        model = build_model(family, architecture)
        load_weights(model, {k: (v.float() if v.is_floating_point() else v)
                             for k, v in tensors.items()})
    except ValueError as error:
        raise CheckpointError(f"{path.name}: {error}") from error
    return model.eval()
