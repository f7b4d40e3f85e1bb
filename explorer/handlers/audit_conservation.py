"""The conservation readout of an audit's maps (issue 29: every map in the app carries it).

For the images the gallery shows first (the :data:`COUNT` most background-reliant of the first
model), each model's map is recomputed with :func:`isnet.explain` and its conservation ledger
(:mod:`isnet.lrp.conservation`): Σ R against the explained logit, their ratio, and the share the
biases absorbed. :func:`measure` keeps per model the median ratio and bias share, their range,
and how many maps conserve the score within
:data:`isnet.lrp.conservation.CONSERVED_TOLERANCE`, in the audit's folder
(``conservation.json``); :func:`conservation_lines` words it for the summary, with a notice
when maps do not conserve the score (what that means for reading them).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

import isnet
from explorer.handlers.lrp_modes import lrp_config
from explorer.media.tensors import model_input
from explorer.state import AppContext
from isnet.io.export import write_json
from isnet.lrp.conservation import CONSERVED_TOLERANCE
from isnet.lrp.registry import is_lrp_ready

COUNT = 12
"""Images per model whose maps get a conservation readout (the gallery's first)."""
FILE = "conservation.json"


def _picture(data: Any, index: int) -> np.ndarray:
    """Image ``index`` as the first model saw it: (S, S, 3) uint8."""
    return data.image(index)[0] if getattr(data, "streamed", False) else data.images[index]


def measure(ctx: AppContext, session: str | None, data: Any, ranked: list[int],
            count: int = COUNT) -> dict[str, dict[str, Any]]:
    """Conservation of each model's maps of the first ``count`` images of ``ranked``; kept in
    the audit's folder and returned as ``{model label: numbers}`` (a model without an LRP walk
    is left out)."""
    chosen = [int(i) for i in ranked[:count]]
    pictures = [_picture(data, i) for i in chosen]
    found: dict[str, dict[str, Any]] = {}
    for model in data.record["models"]:
        entry = ctx.store.get(model["id"], session)
        if not pictures or not is_lrp_ready(entry.model):
            continue
        x = torch.cat([model_input(p, entry.input_size, entry.normalisation)
                       for p in pictures])  # (B, 3, S, S)
        dtype = next(entry.model.parameters()).dtype
        with torch.no_grad():
            _, _, books = isnet.explain(entry.model, x.to(entry.device, dtype), None,
                                        lrp=lrp_config(entry), return_conservation=True)
        ratios = np.array([b[0].ratio for b in books], float)
        biases = np.array([b[0].bias_share for b in books], float)
        conserved = np.abs(ratios - 1.0) <= CONSERVED_TOLERANCE
        found[model["label"]] = {
            "images": len(chosen), "indices": chosen,
            "ratio_median": float(np.nanmedian(ratios)), "ratio_min": float(np.nanmin(ratios)),
            "ratio_max": float(np.nanmax(ratios)),
            "bias_share_median": float(np.nanmedian(biases)),
            "conserved": int(conserved.sum()), "tolerance": CONSERVED_TOLERANCE,
            "ratios": ratios.round(4).tolist()}
    write_json(Path(data.record["dir"]) / FILE, found, overwrite=True)
    return found


def read(record: dict) -> dict[str, dict[str, Any]]:
    """The readout :func:`measure` kept for this audit ({} when none)."""
    try:
        return json.loads((Path(record["dir"]) / FILE).read_text())
    except (OSError, ValueError):
        return {}


def conservation_lines(found: dict[str, dict[str, Any]]) -> list[str]:
    """Markdown lines: per model, Σ R / score and the biases' share; a notice when maps do not
    conserve the score."""
    lines = []
    for label, n in found.items():
        line = (f"*Conservation, {label} ({n['images']} most reliant images):* Σ R / logit median "
                f"{n['ratio_median']:.2f} ({n['ratio_min']:.2f}–{n['ratio_max']:.2f}), biases "
                f"absorbed {n['bias_share_median']:.0%} (median); {n['conserved']} of "
                f"{n['images']} maps conserve the logit within {n['tolerance']:.0%}.")
        if n["conserved"] < n["images"]:
            line += (" ⚠ Where a map does not sum to its logit, part of the score comes from the "
                     "network's constant terms: the colours show how pixels shift the score, "
                     "not a full account of it (docs/trust.md, \"The Bag case\").")
        lines.append(line)
    return lines
