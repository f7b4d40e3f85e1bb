"""One copy of a checkpoint's weights per process, however often it is loaded.

Each raw-API ``load_checkpoint`` of a bundled model used to keep its own 25.6 MB of tensors for
the session's lifetime: forty calls added a gigabyte. :func:`share_weights` points a freshly
loaded model's parameters and buffers at the tensors of a model already in the store that came
from the same file, once every name, shape, dtype, device and value has been checked equal; the
fresh tensors are then freed. Only the ``nn.Module`` objects (hooks, compiled walks, metadata in
the entry) stay per load.

Sharing is read-only by contract: explaining never writes to a parameter (the LRP walk computes
folded weights anew on every call), and every path that trains or randomises a model works on a
copy (:func:`explorer.handlers.train_checks.prepare_model`, :func:`isnet.analysis.sanity`).
:func:`storage_count` counts distinct tensor storages (what the store really holds), for tests
and benchmarks.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn


def file_identity(path: str | os.PathLike | None) -> tuple | None:
    """(real path, size, modification time in ns) of a file, or None when it cannot be read."""
    if not path:
        return None
    try:
        real = Path(path).resolve()
        status = real.stat()
    except OSError:
        return None
    return str(real), status.st_size, status.st_mtime_ns


def _tensors(model: nn.Module) -> dict[tuple[str, str, str], torch.Tensor]:
    """Every parameter and buffer of ``model`` by (module name, "p" or "b", attribute name)."""
    found: dict[tuple[str, str, str], torch.Tensor] = {}
    for module_name, module in model.named_modules():
        for kind, table in (("p", module._parameters), ("b", module._buffers)):
            for name, tensor in table.items():
                if tensor is not None:
                    found[(module_name, kind, name)] = tensor
    return found


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Same shape, dtype, device and values (NaNs in the same places count as equal)."""
    return (a.shape == b.shape and a.dtype == b.dtype and a.device == b.device
            and bool(torch.equal(a, b) or (a.is_floating_point()
                                           and torch.allclose(a, b, rtol=0, atol=0,
                                                              equal_nan=True))))


def share_weights(model: nn.Module, source: nn.Module) -> bool:
    """Make ``model`` use ``source``'s parameter and buffer tensors, if both hold the same
    tensors under the same names (else change nothing). Returns whether it shared.

    A parameter stays an ``nn.Parameter`` (the very object of ``source``), so both modules read
    the same storage; ``model``'s own tensors are freed once nothing else holds them.
    """
    if model is source:
        return False
    mine, theirs = _tensors(model), _tensors(source)
    if mine.keys() != theirs.keys():
        return False
    with torch.no_grad():
        if not all(_same(mine[key], theirs[key]) for key in mine):
            return False
    modules = dict(model.named_modules())
    for (module_name, kind, name), tensor in theirs.items():
        table = modules[module_name]._parameters if kind == "p" else \
            modules[module_name]._buffers
        table[name] = tensor
    return True


def storage_count(models: Iterable[nn.Module]) -> int:
    """How many distinct tensor storages the parameters and buffers of ``models`` use."""
    pointers = set()
    for model in models:
        for tensor in _tensors(model).values():
            pointers.add((tensor.device, tensor.untyped_storage().data_ptr()))
    return len(pointers)
