"""Robustness to background changes a model never saw in training.

For every bias kind of :mod:`isnet.data.bias` (shape, decoy, text, tint, texture), the clean test
images of an experiment get that kind planted with a random *other* class (strength 0: the mark
never shows the image's own class), local marks at a random place in the background, tints and
textures over the whole background. The object pixels are never changed. The robustness of a
model to that kind is its accuracy on the planted images against the same images clean; the
**drop** is the difference in points (100 × (clean − planted)).

A model that decides by the object alone drops 0 points for every kind. The ISNet paper's claim
is about background bias in general, so the measurement covers the kinds a model was *not*
trained on, not only the one mark of its training data.

:func:`planted_set` builds the images (seeded, bit for bit the same on every call),
:func:`robustness` measures a model, :func:`checkpoint_robustness` a checkpoint from its saved
data description; ``python -m isnet.evaluate CKPT --robustness`` prints it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from isnet.data.bias.config import BIAS_KINDS, REGION_KINDS
from isnet.data.bias.splits import make_split
from isnet.data.image_set import ImageSet, as_dataset
from isnet.io.checkpoints import load_checkpoint
from isnet.training.experiment import DEMO_BIAS, ExperimentData, checkpoint_data, evaluation_set


def planted_set(data: ExperimentData, kind: str, limit: int | None = None) -> ImageSet:
    """The experiment's clean test images with a ``kind`` mark of a random other class.

    The mark is the demo mark (:data:`isnet.training.experiment.DEMO_BIAS`) with ``kind``
    changed, strength 0 and, for local kinds, a random position per image; tints and textures
    cover the whole background. Seeded by ``data.seed``.

    Args:
        data: the experiment description.
        kind: one of :data:`isnet.data.bias.config.BIAS_KINDS`.
        limit: test images (default ``data.test_limit``).

    Raises:
        ValueError: an unknown kind.
    """
    if kind not in BIAS_KINDS:
        raise ValueError(f"kind must be one of {', '.join(BIAS_KINDS)}, got {kind!r}")
    base = evaluation_set(data, "unbiased", limit)  # the clean images
    bias = replace(DEMO_BIAS, kind=kind, strength=0.0,
                   position="corner" if kind in REGION_KINDS else "random")
    images = make_split(base.images, base.masks, base.labels, base.num_classes, split="biased",
                        bias=bias, seed=data.seed + 7).images
    return ImageSet(images, base.masks, base.labels, list(base.class_names))


def accuracy(model: nn.Module, images: ImageSet, batch_size: int = 250,
             transform: Callable[[Tensor], Tensor] | None = None) -> float:
    """Top-1 accuracy of ``model`` (put in ``eval()`` mode) on ``images``: a forward pass only.
    ``transform`` maps each batch of [0, 1] pixels to the model's input (e.g. its
    normalisation)."""
    model.eval()
    reference = next(model.parameters())
    correct = 0
    with torch.inference_mode():
        for batch, _, labels in DataLoader(as_dataset(images), batch_size):
            batch = batch.to(reference.device, reference.dtype)
            logits = model(transform(batch) if transform is not None else batch)
            correct += int((logits.argmax(1).cpu() == labels).sum())
    return correct / len(images)


def robustness(model: nn.Module, data: ExperimentData, kinds: Sequence[str] = BIAS_KINDS,
               limit: int | None = None, batch_size: int = 250,
               clean: float | None = None,
               transform: Callable[[Tensor], Tensor] | None = None,
               ) -> dict[str, dict[str, float]]:
    """Accuracy on clean test images against the same images with each kind planted.

    Args:
        model: the classifier (on its own device and dtype; left in ``eval()`` mode).
        data: the experiment whose test images to use.
        kinds: the bias kinds to plant.
        limit: test images (default ``data.test_limit``).
        batch_size: images per forward pass.
        clean: the clean accuracy if already measured on the same images (saves a pass).
        transform: maps each batch of [0, 1] pixels to the model's input (normalisation).

    Returns:
        ``{kind: {"clean", "planted", "drop_points"}}`` with accuracies in [0, 1] and the drop
        in points rounded to 0.1.
    """
    if clean is None:
        clean = accuracy(model, evaluation_set(data, "unbiased", limit), batch_size,
                         transform)
    result = {}
    for kind in kinds:
        planted = accuracy(model, planted_set(data, kind, limit), batch_size, transform)
        result[kind] = {"clean": clean, "planted": planted,
                        "drop_points": round(100 * (clean - planted), 1)}
    return result


def checkpoint_robustness(path: str | Path, kinds: Sequence[str] = BIAS_KINDS,
                          limit: int | None = None, batch_size: int = 250,
                          data_seed: int | None = None, data_root: str | Path | None = None,
                          ) -> dict[str, dict[str, float]]:
    """:func:`robustness` of a checkpoint on the test images of its saved data description
    (rebuilt with ``data_seed`` instead of its own seed when given, read from ``data_root``
    when given: see :func:`isnet.training.experiment.checkpoint_data`).

    Raises:
        ValueError: the checkpoint has no data description.
    """
    model, metadata = load_checkpoint(path)
    return robustness(model, checkpoint_data(metadata, path, data_seed, data_root), kinds, limit,
                      batch_size)
