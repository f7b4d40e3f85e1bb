"""Which LRP a model is explained with: the corrected rules, or the ISNet authors' LRP block as
published (``isnet.LRPConfig(reference_quirks=True)``, with its two bookkeeping errors), and the
difference between the two.

The authors' published checkpoints were trained against their block's heatmaps, so a file in
their layout (keys under ``DenseNet.``, ``LRPBlock.`` or ``classifierDNN.``) opens in the
authors' mode, and the model card says why. Only the DenseNet family has a published block; for
other families the authors' mode is the corrected one (there is nothing to reproduce).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch
from torch import Tensor

import isnet
from explorer.entries import ModelEntry
from explorer.errors import InputError
from explorer.handlers.spellings import current_spelling
from isnet.lrp.conservation import Conservation
from isnet.lrp.registry import is_lrp_ready

CORRECTED = "corrected"
AUTHORS = "authors"
DIFFERENCE = "difference"
OWN = "own"
LRP_MODES: dict[str, str] = {
    OWN: "each model's own (Models tab)",
    CORRECTED: "corrected LRP",
    AUTHORS: "authors' LRP (as published)",
    DIFFERENCE: "difference (corrected − authors')",
}
"""Mode id → label of the switch in the Explain tab (the Models tab offers the first three)."""

AUTHORS_PREFIXES = ("DenseNet.", "LRPBlock.", "classifierDNN.")
"""Key prefixes of the authors' ``IsDense`` / Lightning formats (see :mod:`isnet.io.foreign`)."""

AUTHORS_FAMILIES = ("densenet",)
"""Families whose LRP walk reproduces a published reference block."""


def mode_from_label(value: str | None) -> str:
    """A mode id from a widget value: its id, or (deprecated, logged) its label; :data:`OWN`
    when empty."""
    if not value:
        return OWN
    value = current_spelling(value, {label: mode for mode, label in LRP_MODES.items()},
                             "the LRP mode")
    if value in LRP_MODES:
        return value
    raise InputError(f"Unknown LRP mode {value!r}; choose one of {list(LRP_MODES)}.")


def supports_authors(entry: ModelEntry) -> bool:
    """Whether the authors' published block exists for this model's family."""
    return entry.family in AUTHORS_FAMILIES


def resolve(entry: ModelEntry, mode: str | None) -> str:
    """The concrete mode for ``entry``: :data:`OWN` becomes the model's own; the authors'
    mode on a family without a published block becomes the corrected one."""
    mode = mode_from_label(mode)
    if mode == OWN:
        mode = entry.lrp_mode
    if mode == AUTHORS and not supports_authors(entry):
        return CORRECTED
    return mode


def trained_zb(entry: ModelEntry) -> bool:
    """Whether the model's training heatmaps used the z^B rule at the input layer (its
    checkpoint's ``config.zb``; True, the paper's rule, for models without one)."""
    return isnet.LRPConfig.as_trained(entry.metadata.get("config")).zb


def lrp_config(entry: ModelEntry, mode: str | None = None, epsilon: float | None = None,
               zb: bool | None = None) -> isnet.LRPConfig:
    """The model's LRP settings: its ε (or ``epsilon``), its input rule (z^B or ε, as it was
    trained, or ``zb``), its z^B bounds (per channel for normalised inputs), and the corrected
    or the authors' block (``mode``: :data:`CORRECTED`, :data:`AUTHORS` or :data:`OWN`)."""
    low, high = entry.bounds
    config = isnet.LRPConfig(epsilon=entry.epsilon if epsilon is None else float(epsilon),
                             zb=trained_zb(entry) if zb is None else bool(zb), low=low,
                             high=high)
    if resolve(entry, mode) == AUTHORS:
        config = replace(config, reference_quirks=True)
    return config


def model_maps(entry: ModelEntry, x: Tensor, target: int | str | None,
               config: isnet.LRPConfig) -> tuple[Tensor, Tensor, Conservation | None]:
    """Logits, one heatmap and its conservation readout (Σ R against the explained score,
    :mod:`isnet.lrp.conservation`; None for a native map): LRP with ``config`` where the
    network has an LRP walk, else the
    method's native map (predicted mask, attention, …; not class-specific), as
    :func:`isnet.training.evaluate.measure` falls back. ``x`` goes to the model's device; the
    logits and the heatmap come back on the CPU (for the pictures).

    Shapes:
        x: (1, C, S, S) → logits (1, K), heatmaps (1, 1, C or 1, S, S).

    Raises:
        InputError: a network with neither an LRP walk nor a native map.
    """
    x = x.to(entry.device)
    if is_lrp_ready(entry.model):
        with torch.no_grad():
            logits, maps, books = isnet.explain(entry.model, x, **_which(target), lrp=config,
                                                return_conservation=True)
        return logits.cpu(), maps.cpu(), books[0][0]
    from isnet.training.methods import native_explainer_for

    explainer = native_explainer_for(entry.model)
    if explainer is None:
        raise InputError(f"{entry.label} ({type(entry.model).__name__}) has neither an LRP walk "
                         "nor a native map to explain it with.")
    logits, maps = explainer(entry.model, x)
    return logits.detach().cpu(), maps.detach().cpu(), None


def _which(target: int | str | None) -> dict[str, int | str | None]:
    """``isnet.explain``'s keywords for an explained target: a class index is ``target=``, a
    mode name (``"selective"``) is ``mode=`` (which map, not which output), None is neither."""
    if isinstance(target, str):
        return {"mode": target}
    return {"target": target}


def authors_layout(path: str | Path) -> bool:
    """Whether a weights file is in the ISNet authors' layout (read its keys only).

    Our safetensors files and torchvision state dicts are not. The file is opened with
    ``torch.load(..., weights_only=True, mmap=True)``, so big files are not read into memory.
    """
    source = Path(path)
    with source.open("rb") as stream:
        start = stream.read(9)
    if len(start) == 9 and start[8:9] == b"{":  # safetensors: ours
        return False
    try:
        raw = torch.load(source, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 — legacy (non-zip) files cannot be memory-mapped
        try:
            raw = torch.load(source, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 — load_checkpoint gives the refusal
            return False
    if isinstance(raw, dict) and isinstance(raw.get("state_dict"), dict):
        raw = raw["state_dict"]
    return isinstance(raw, dict) and any(_authors_key(k) for k in raw)


def _authors_key(key: object) -> bool:
    """A key of the authors' DenseNet LRP-block modules, at the top or inside a wrapper
    (``model.DenseNet.…`` in a Lightning checkpoint); LRP-Flex files (``ZbModule``) have
    neither quirk and do not count."""
    return isinstance(key, str) and any(key.startswith(p) or f".{p}" in key
                                        for p in AUTHORS_PREFIXES)


def mode_note(entry: ModelEntry) -> str:
    """One sentence for the model card: which LRP the model opens with, and why."""
    reason = entry.metadata.get("lrp_mode_reason")
    if entry.lrp_mode == AUTHORS:
        return ("authors' LRP (as published)" + (f": {reason}" if reason else "")
                + ". Switch to the corrected LRP to see what the corrections change.")
    if not supports_authors(entry):
        return (f"corrected LRP (the authors published no LRP block for the {entry.family} "
                "family, so both modes give the same map)")
    return "corrected LRP" + (f": {reason}" if reason else "")


def opening_mode(path: str | Path, metadata: dict) -> tuple[str, str | None]:
    """(mode, reason) a freshly loaded checkpoint opens with."""
    if (metadata.get("config") or {}).get("reference_quirks"):
        return AUTHORS, "it was trained with the authors' LRP block (reference_quirks)"
    if metadata.get("family") in AUTHORS_FAMILIES and authors_layout(path):
        return AUTHORS, ("the file is in the ISNet authors' own format, and their checkpoints "
                         "were trained against the heatmaps of their LRP block as published")
    return CORRECTED, None
