"""Which device runs the work: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

Every command (``python -m isnet.train``, ``python -m isnet.audit``, ``python app.py``) takes the
same ``--device`` value and turns it into a :class:`torch.device` here, so that "auto" means the
same thing everywhere: the first CUDA GPU when torch sees one, else the CPU. Asking for CUDA on a
machine without it is an error with a message that says what to do, never a silent CPU run.
"""

from __future__ import annotations

import torch

DEVICE_CHOICES: tuple[str, ...] = ("auto", "cpu", "cuda")
"""The spellings the commands offer (``"cuda:N"`` is accepted too)."""


def choose_device(name: str | torch.device | None = "auto") -> torch.device:
    """The device ``name`` asks for.

    Args:
        name: ``"auto"`` (or None): ``cuda`` when ``torch.cuda.is_available()``, else ``cpu``;
            ``"cpu"``; ``"cuda"`` or ``"cuda:N"``; or a ``torch.device``.

    Raises:
        ValueError: an unknown name, CUDA asked for where torch sees no GPU, or a GPU index
            beyond those present.
    """
    if name is None or str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise ValueError(f"device {name!r} is not supported; use auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was asked for, but torch sees no CUDA GPU on this "
                         "machine; use --device cpu (or auto)")
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA "
                         "GPU(s), numbered from 0")
    return device


def device_label(device: torch.device | str) -> str:
    """A short human name of ``device`` for status lines and model cards, e.g. ``"CPU"`` or
    ``"cuda:0 (NVIDIA H100 80GB HBM3)"``."""
    device = torch.device(device)
    if device.type != "cuda":
        return device.type.upper()
    index = device.index if device.index is not None else torch.cuda.current_device()
    try:
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    except (RuntimeError, AssertionError):
        return f"cuda:{index}"
