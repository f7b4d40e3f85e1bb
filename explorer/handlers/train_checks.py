"""What a fine-tune checks and prepares before its run (Fine-tune tab): the settings (refused,
never replaced, naming the setting), the set's classes against the base model's, its split into
training and validation images, and the model to train (a new head only for other classes).

A spelling difference between the set's class folders and the base model's classes (a folder
``t-shirt_top`` for ``T-shirt/top``) must not silently train a new classifier head:
:func:`in_base_classes` matches them forgivingly (:mod:`isnet.data.layouts.class_matching`),
relabels the set into the model's classes, and refuses a set that matches in part.
:func:`split_notices` says what the split is, and warns when validation is too small to
measure anything (the bundled *samples*: 5 training and 1 validation image).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import isnet
from explorer.entries import ModelEntry
from explorer.errors import InputError
from isnet.data.layouts.class_matching import in_model_classes, match_classes, read_mapping
from isnet.training.transfer import for_classes

if TYPE_CHECKING:
    from explorer.handlers.train import FineTuneRequest

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


def prepare_model(base: ModelEntry, class_names: list[str]) -> tuple[Any, list[str]]:
    """A trainable float32 copy of the base model on the CPU (the worker moves it to the
    device), with a new classifier head if the classes differ (transfer learning, any family:
    :func:`isnet.training.transfer.for_classes`)."""
    try:
        model, replaced = for_classes(copy.deepcopy(base.model), base.class_names,
                                      list(class_names))
    except ValueError as error:
        raise InputError(f"{base.label} cannot learn other classes here: {error}") from error
    notices = []
    if replaced:
        notices.append(f"The set's classes differ from {base.label}'s: a new classifier head "
                       f"for {len(class_names)} classes is trained.")
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    return model.float().cpu(), notices


SETTING_NAMES = {"learning_rate": "Learning rate", "epochs": "Epochs", "batch_size": "Batch size",
                 "heat_weight": "P (heatmap-loss share)", "decay": "d (GWRP decay)",
                 "seed": "Seed", "background_tint": "Random background colours",
                 "mask_margin": "Mask margin"}
"""How the user sees each checked :class:`isnet.TrainConfig` field in messages."""


INHERITED = ("epsilon", "zb", "background_weight", "foreground_weight", "foreground_range",
             "saturation", "foreground_form")
"""The explanation and heatmap-loss settings a fine-tune keeps from its base model's training
configuration (the tab does not show them): an ISNet trained with, say, the ε-rule at the input
and a wide foreground band goes on learning against the same heatmaps and the same loss."""


def inherited(base: ModelEntry) -> dict[str, Any]:
    """The :data:`INHERITED` settings of ``base``'s checkpoint (none for a foreign file)."""
    trained = base.metadata.get("config") or {}
    values = {key: trained[key] for key in INHERITED if key in trained}
    if "foreground_range" in values:
        values["foreground_range"] = tuple(values["foreground_range"])
    return values


def run_config(base: ModelEntry, request: FineTuneRequest, num_classes: int,
            max_epochs: int) -> isnet.TrainConfig:
    """The run's TrainConfig: every number as sent (never replaced), refused by
    :class:`isnet.TrainConfig` when it is not finite or out of range (an InputError naming the
    setting); the LRP and loss shape (:data:`INHERITED`) as the base model was trained."""
    values = {"epochs": request.epochs, "batch_size": request.batch_size,
              "learning_rate": request.learning_rate, "heat_weight": request.heat_weight,
              "decay": request.decay, "seed": request.seed,
              "background_tint": request.background_tint, "mask_margin": request.mask_margin}
    for key, value in values.items():
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(f"{SETTING_NAMES[key]} must be a number, got {value!r}.")
    try:
        config = isnet.TrainConfig(
            model=base.metadata.get("model_name") or "densenet121", num_classes=num_classes,
            method=request.method, input_size=base.input_size, **inherited(base), **values)
    except ValueError as error:
        message = str(error)
        for key, name in SETTING_NAMES.items():
            message = message.replace(f"TrainConfig.{key}", name)
        raise InputError(message + ".") from None
    if config.epochs > max_epochs:
        raise InputError(f"Epochs must lie between 1 and {max_epochs} here, got {config.epochs}.")
    return config
