"""Is an image within a model's domain? Plain checks that warn before a user trusts an answer.

A classifier answers every image with one of its classes, even a photo of a cat for a model of
clothes. :func:`notices` compares the image with what the checkpoint says the model was trained
on — input size and proportions, colour (a model trained on greyscale data sees colour as
something new) and the class set — and returns one notice per mismatch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from explorer.entries import ModelEntry
from explorer.media.tensors import resize_mode
from explorer.plain_text import plain

GREYSCALE_DATASETS = ("fashion-mnist", "mnist")
"""Datasets whose images are grey (apart from any planted marks)."""


def colourfulness(image: np.ndarray) -> float:
    """Mean chroma (max − min over R, G, B) in [0, 1]; 0 for a grey image.

    Shapes: image (H, W, 3) uint8.
    """
    pixels = image.astype(np.float32) / 255.0
    return float((pixels.max(axis=2) - pixels.min(axis=2)).mean())


def notices(entries: Sequence[ModelEntry], image: np.ndarray,
            true_class: str | None = None) -> list[str]:
    """One notice per way ``image`` lies outside a model's domain (empty when it looks fine).

    Args:
        entries: the models that will answer.
        image: (H, W, 3) uint8, as the user gave it.
        true_class: the image's true class, when known.
    """
    found: list[str] = []
    height, width = image.shape[:2]
    for entry in entries:
        size = entry.input_size
        problems = []
        if max(height, width) / max(1, min(height, width)) > 1.5:
            how = ("only its centre square is kept (the model's crop), then scaled to"
                   if resize_mode(entry.metadata) == "crop" else "it is squeezed to the square")
            problems.append(f"the image is {width}×{height}, and {how} {size}×{size} the model "
                            f"sees")
        elif min(height, width) < size / 2:
            problems.append(f"the image is only {width}×{height}; the model takes {size}×{size}")
        dataset = str((entry.metadata.get("data") or {}).get("dataset", "")).lower()
        if dataset in GREYSCALE_DATASETS and colourfulness(image) > 0.12:
            problems.append(f"the image is in colour, the model was trained on greyscale "
                            f"{dataset} images")
        if true_class and true_class not in entry.class_names:
            problems.append(f"it does not know the class {plain(repr(true_class))}")
        if problems:
            classes = ", ".join(plain(name) for name in entry.class_names[:10])
            more = "…" if len(entry.class_names) > 10 else ""
            found.append(f"Out of domain for {plain(entry.label)}: " + "; ".join(problems)
                         + f". It knows {len(entry.class_names)} classes ({classes}{more}) "
                         f"at {size} px, so its answer may mean little.")
    return found
