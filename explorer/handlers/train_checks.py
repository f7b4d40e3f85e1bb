"""Checks a fine-tuning set passes before a run: its classes against the base model's, and
its split into training and validation images (Fine-tune tab).

A spelling difference between the set's class folders and the base model's classes (a folder
``t-shirt_top`` for ``T-shirt/top``) must not silently train a new classifier head:
:func:`in_base_classes` matches them forgivingly (:mod:`isnet.data.layouts.class_matching`),
relabels the set into the model's classes, and refuses a set that matches in part.
:func:`split_notices` says what the split is, and warns when validation is too small to
measure anything (the bundled *samples*: 5 training and 1 validation image).
"""

from __future__ import annotations

import isnet
from explorer.entries import ModelEntry
from explorer.errors import InputError
from isnet.data.layouts.class_matching import in_model_classes, match_classes, read_mapping

MIN_VALIDATION = 10
"""Fewer validation images than this make its accuracy and share a coarse, noisy readout (with
one image, accuracy is 0 or 1): the run says so."""


def in_base_classes(image_set: isnet.ImageSet, base: ModelEntry, paths: list[str]
                    ) -> tuple[isnet.ImageSet, list[str]]:
    """The uploaded set in the base model's classes when its folders name them (forgivingly:
    :mod:`isnet.data.layouts.class_matching`), so the model keeps its head; lines saying what
    matched. A set none of whose folders match is another task (a new head; the run says so).

    Raises:
        InputError: some folders match the base model's classes and others do not (a spelling
            mismatch must not silently train a new head), or a bad ``classes.csv``.
    """
    try:
        mapping = read_mapping(paths[0]) if len(paths) == 1 else {}
        match = match_classes(list(image_set.class_names), base.class_names, mapping)
    except ValueError as error:
        raise InputError(f"Cannot use this set: {error}") from error
    if not match.any:
        return image_set, []
    if not match.complete:
        raise InputError(" ".join(match.lines()) + f" A fine-tune of {base.label} keeps its "
                         "classes; it would otherwise train a new classifier head for a set "
                         "that names them differently.")
    return in_model_classes(image_set, match), match.lines()[:1]


def split_notices(train: int, validation: int, shared: bool) -> list[str]:
    """What the split is, and a warning when validation is too small to measure anything."""
    if shared:
        return [f"The set has only {train} images: the same images serve for training and "
                "validation, so the validation numbers measure memory, not generalisation."]
    if validation < MIN_VALIDATION:
        return [f"⚠️ Split: {train} training / {validation} validation image"
                f"{'s' if validation != 1 else ''} (a seeded 80/20 split). With fewer than "
                f"{MIN_VALIDATION} validation images, validation accuracy and background share "
                "move in big jumps (one image: accuracy is 0 or 1); upload a larger set for a "
                "real measure."]
    return [f"Split: {train} training / {validation} validation images (seeded 80/20)."]
