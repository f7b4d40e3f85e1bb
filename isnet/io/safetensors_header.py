"""A safetensors header read and checked under limits, before any tensor is loaded.

A safetensors file is an 8-byte little-endian header length N, N bytes of JSON, then the raw
tensor bytes. The JSON maps each tensor name to ``{"dtype", "shape", "data_offsets": [start,
end]}`` (offsets into the data that follows) and may hold ``"__metadata__"``: a flat map of
strings to strings.

:func:`read_header` checks, in this order and without trusting any field: the file size, the
header length against the file and :class:`isnet.io.limits.CheckpointLimits`, the JSON nesting
depth (counted without recursion), then every tensor entry — a known dtype, a shape of
non-negative integers, and offsets inside the file that hold exactly ``prod(shape) × itemsize``
bytes — and the size of the string metadata. So the shapes it returns are backed by bytes that
are really in the file, and a model built from them is no larger than the file implies.
:func:`checked_architecture` infers the architecture from those shapes (storage-free meta tensors)
and compares it with what the metadata declares.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from isnet.io.architecture import infer_architecture
from isnet.io.limits import CheckpointLimits, LimitError, check_json_depth, size_text
from isnet.models.registry import family_spec

_ITEM_BYTES: dict[str, tuple[int, torch.dtype]] = {
    "F64": (8, torch.float64), "F32": (4, torch.float32), "F16": (2, torch.float16),
    "BF16": (2, torch.bfloat16), "I64": (8, torch.int64), "I32": (4, torch.int32),
    "I16": (2, torch.int16), "I8": (1, torch.int8), "U8": (1, torch.uint8),
    "BOOL": (1, torch.bool),
}
_METADATA = "__metadata__"
_MAX_DIMENSIONS = 8


@dataclass(frozen=True)
class TensorEntry:
    """One tensor's line in the header: dtype name, shape and byte range in the data section."""

    dtype: str
    shape: tuple[int, ...]
    start: int
    end: int


@dataclass(frozen=True)
class SafetensorsHeader:
    """A checked header: the tensor table and the string metadata."""

    tensors: dict[str, TensorEntry]
    metadata: dict[str, str]


def read_header(path: Path, limits: CheckpointLimits) -> SafetensorsHeader:
    """Read and check the header of the safetensors file ``path`` (see the module docstring).

    Raises:
        LimitError: the file, header or metadata is larger, or its JSON deeper, than ``limits``.
        ValueError: the header is not valid safetensors JSON, or a tensor entry is inconsistent.
            Messages name only ``path.name``.
    """
    name = path.name
    size = path.stat().st_size
    if size > limits.max_file_bytes:
        raise LimitError(f"{name} is {size_text(size)}; the limit for a checkpoint is "
                         f"{size_text(limits.max_file_bytes)}")
    with path.open("rb") as stream:
        length = int.from_bytes(stream.read(8), "little")
        if length > limits.max_header_bytes:
            raise LimitError(f"{name}: its safetensors header is {size_text(length)}; the limit "
                             f"is {size_text(limits.max_header_bytes)}")
        if length + 8 > size:
            raise ValueError(f"{name}: its header claims {size_text(length)}, more than the "
                             f"file holds ({size_text(size)}); the file is truncated or forged")
        raw = stream.read(length)
    check_json_depth(raw, limits.max_json_depth, f"{name}: header")
    header = _parse_json(raw, f"{name}: header")
    if not isinstance(header, dict):
        raise ValueError(f"{name}: the safetensors header is not a JSON object")
    metadata = _check_metadata(name, header.pop(_METADATA, {}), limits)
    data_bytes = size - 8 - length
    tensors = {key: _check_entry(name, key, entry, data_bytes) for key, entry in header.items()}
    return SafetensorsHeader(tensors, metadata)


def parse_metadata_json(text: str, limits: CheckpointLimits, what: str) -> Any:
    """``json.loads`` of a metadata string after checking its nesting depth.

    Raises:
        LimitError: nested deeper than ``limits.max_json_depth``.
        ValueError: not valid JSON.
    """
    check_json_depth(text, limits.max_json_depth, what)
    return _parse_json(text, what)


def meta_tensors(header: SafetensorsHeader) -> dict[str, Tensor]:
    """Storage-free (``device="meta"``) tensors with the header's shapes and dtypes.

    Enough for :func:`isnet.io.architecture.infer_architecture`, which reads only shapes.
    """
    return {key: torch.empty(entry.shape, dtype=_ITEM_BYTES[entry.dtype][1], device="meta")
            for key, entry in header.tensors.items()}


def checked_architecture(name: str, metadata: Mapping[str, Any],
                         header: SafetensorsHeader) -> tuple[str, dict[str, Any]]:
    """The family and architecture to build, after checking the metadata against the shapes.

    The architecture is inferred from the header's tensor shapes alone (storage-free meta
    tensors, :func:`isnet.io.architecture.infer_architecture`), so metadata that declares a
    larger model than the file holds (say ``num_classes=200000`` beside a 3-class classifier) is
    refused before anything is allocated.

    Args:
        name: the file's base name, for messages.
        metadata: our JSON metadata; ``metadata["architecture"]`` is a dict.
        header: the checked header.

    Returns:
        ``(family, architecture)``: the declared architecture with the inferred values.

    Raises:
        ValueError: the shapes fit no family, or contradict the declared family, an architecture
            value or the number of class names.
    """
    declared = dict(metadata["architecture"])
    family = metadata.get("family", "densenet")  # version 0.1 files hold only DenseNets
    try:
        inferred_family, inferred = infer_architecture(meta_tensors(header))
    except (ValueError, RuntimeError) as error:
        raise ValueError(f"{name}: {error}") from None
    if family != inferred_family:
        raise ValueError(f"{name}: the metadata declares family {str(family)[:40]!r} but the "
                         f"weights are a {inferred_family}")
    guessed = family_spec(family).guessed_keys
    for key, value in inferred.items():
        if key in declared and key not in guessed and not _same(declared[key], value):
            raise ValueError(f"{name}: the metadata declares {key}={str(declared[key])[:40]} "
                             f"but the weights hold {key}={value}; refused before building the "
                             f"model")
    names, classes = metadata.get("class_names"), inferred.get("num_classes")
    if names is not None and classes is not None and (
            not isinstance(names, list) or len(names) != classes):
        raise ValueError(f"{name}: the metadata's class_names must be a list of {classes} "
                         f"names (num_classes of the weights)")
    return family, {**declared, **{k: v for k, v in inferred.items() if k not in guessed}}


def _same(a: Any, b: Any) -> bool:
    """Equal, reading lists and tuples alike at any depth (JSON has no tuples)."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def _parse_json(raw: str | bytes, what: str) -> Any:
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{what} is not valid JSON ({error.__class__.__name__} at position "
                         f"{getattr(error, 'pos', getattr(error, 'start', '?'))})") from None
    except RecursionError:  # a backstop: depth is checked first
        raise LimitError(f"{what}: JSON nested too deeply") from None


def _check_metadata(name: str, metadata: Any, limits: CheckpointLimits) -> dict[str, str]:
    if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise ValueError(f"{name}: the header's __metadata__ must map strings to strings")
    total = sum(len(k.encode("utf-8", "surrogatepass")) + len(v.encode("utf-8", "surrogatepass"))
                for k, v in metadata.items())
    if total > limits.max_metadata_bytes:
        raise LimitError(f"{name}: its metadata is {size_text(total)}; the limit is "
                         f"{size_text(limits.max_metadata_bytes)}")
    return metadata


def _check_entry(name: str, key: str, entry: Any, data_bytes: int) -> TensorEntry:
    """One tensor entry, checked against the data section's size."""
    where = f"{name}: tensor {key[:80]!r}"
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: its header entry is not an object")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if dtype not in _ITEM_BYTES:
        raise ValueError(f"{where}: unsupported dtype {str(dtype)[:20]!r}")
    if (not isinstance(shape, list) or len(shape) > _MAX_DIMENSIONS
            or not all(type(n) is int and n >= 0 for n in shape)):
        raise ValueError(f"{where}: shape must be a list of at most {_MAX_DIMENSIONS} "
                         f"non-negative integers")
    if (not isinstance(offsets, list) or len(offsets) != 2
            or not all(type(n) is int for n in offsets)):
        raise ValueError(f"{where}: data_offsets must be two integers")
    start, end = offsets
    expected = math.prod(shape) * _ITEM_BYTES[dtype][0]
    if not 0 <= start <= end <= data_bytes or end - start != expected:
        raise ValueError(f"{where}: its shape {shape} needs {size_text(expected)}, but its "
                         f"offsets {offsets} do not hold that inside the file's "
                         f"{size_text(data_bytes)} of data; the file is truncated or forged")
    return TensorEntry(dtype, tuple(shape), start, end)
