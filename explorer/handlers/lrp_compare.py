"""The Models tab's LRP switch: one model, one image, the corrected map, the authors' map (their
LRP block as published) and the difference, all on one shared symmetric colour scale."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from explorer.entries import SHARED, ModelEntry
from explorer.errors import InputError
from explorer.handlers.explain import engine_explain
from explorer.handlers.lrp_modes import AUTHORS, CORRECTED, lrp_config, supports_authors
from explorer.media.tensors import model_input, resize_mode
from explorer.plain_text import plain
from explorer.state import AppContext
from isnet import viz


@dataclass
class ModeComparison:
    """Both LRP modes of one model on one image.

    Attributes:
        corrected, authors, difference: (side, side, 3) uint8 maps on one scale (difference =
            corrected − authors').
        scale: the shared colour-scale bound.
        largest_difference: max |difference| as a fraction of max |corrected|.
        summary: Markdown for the user.
    """

    corrected: np.ndarray
    authors: np.ndarray
    difference: np.ndarray
    scale: float
    largest_difference: float
    summary: str


def set_mode(ctx: AppContext, session: str | None, model_id: str, mode: str) -> ModelEntry:
    """Make ``mode`` ("corrected" or "authors") the model's own LRP mode.

    Raises:
        InputError: a shared model, or an unknown mode.
    """
    if mode not in (CORRECTED, AUTHORS):
        raise InputError(f"Unknown LRP mode {mode!r}: choose {CORRECTED!r} or {AUTHORS!r}.")
    entry = ctx.store.get(model_id, session)
    if entry.owner is SHARED:
        raise InputError(f"{entry.label} is shared by every user; pick the mode in the Explain "
                         "tab instead, or load your own copy of its file.")
    entry.metadata.update(lrp_mode=mode, lrp_mode_reason="chosen in the Models tab")
    return entry


def compare_modes(ctx: AppContext, session: str | None, model_id: str, image: np.ndarray | None,
                  target: int | None = None) -> ModeComparison:
    """The corrected and the authors' heatmaps of one model on one image, and their difference.

    Args:
        image: (H, W, 3) uint8, resized and normalised as the model expects.
        target: class index (None: the predicted class).

    Raises:
        InputError: no image, or an unknown model.
    """
    if image is None:
        raise InputError("No image: load a sample or upload one in the Explain tab first.")
    entry = ctx.store.get(model_id, session)
    x = model_input(image, entry.input_size, entry.normalisation,
                    resize_mode(entry.metadata))
    corrected = engine_explain(entry, x, target, lrp_config(entry, CORRECTED))
    authors = engine_explain(entry, x, target, lrp_config(entry, AUTHORS))
    difference = corrected.heatmap - authors.heatmap
    maps = [viz.relevance_map(h) for h in (corrected.heatmap, authors.heatmap, difference)]
    scale = viz.shared_scale(maps)
    side = ctx.limits.display_side
    images = [viz.heatmap_to_rgb(h, scale, size=(side, side))
              for h in (corrected.heatmap, authors.heatmap, difference)]
    peak = float(np.abs(maps[0]).max()) or 1.0
    largest = float(np.abs(maps[2]).max()) / peak
    if not supports_authors(entry):
        why = (f"The authors published no LRP block for the {entry.family} family: both modes "
               "are the corrected rules, so the difference is zero.")
    elif largest == 0:
        why = ("No difference: the two errors of the published block act only in dense blocks "
               "of 10 or more layers and where overlapping pooling windows share a winner.")
    else:
        why = ("The published block drops later consumers of a dense layer (it compares only the "
               "last digit of the layer number) and keeps one value where overlapping pooling "
               "windows share a winner; the difference shows where that changes the map.")
    name = entry.class_names[corrected.explained]
    summary = (f"**{plain(entry.label)}**, class *{plain(name)}*: largest |corrected − authors'| = "
               f"{largest:.2%} of the largest corrected relevance (shared scale ±{scale:.3g}). "
               + why)
    return ModeComparison(images[0], images[1], images[2], float(scale), largest, summary)
