"""The paper's three test conditions for background bias: biased, unbiased and confounding.

ISNet (Bassi et al. 2024) trains on images carrying a class-correlated background mark and
tests three ways:

* ``"biased"``: the same correlation as training (mark of the image's own class with
  probability ``BiasConfig.strength``, else of a random other class);
* ``"unbiased"``: no mark at all (images returned as a copy);
* ``"confounding"``: every image carries the mark of *another* class,
  :func:`isnet.data.bias.inject.confounding_class` (a fixed permutation without fixed points).

A classifier that learned the shortcut scores well on biased, worse on unbiased, and worst on
confounding images; one that looks at the foreground scores the same on all three.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from isnet.data.bias.config import BiasConfig
from isnet.data.bias.inject import choose_mark_classes, confounding_class, draw_marks

SPLITS: tuple[str, ...] = ("biased", "unbiased", "confounding")
_CHUNK = 1024  # images per draw_marks call; part of the seed -> image mapping, keep fixed


@dataclass(frozen=True)
class BiasedSplit:
    """A split's images and what was drawn on each.

    Attributes:
        images: (N, C, H, W), same dtype as the input images.
        mark_classes: LongTensor (N,): class each mark shows; -1 = no mark (unbiased or skipped).
        skipped: BoolTensor (N,): True where the background had no room (``on_no_room="skip"``).
    """

    images: torch.Tensor
    mark_classes: torch.Tensor
    skipped: torch.Tensor


def make_split(images: torch.Tensor, masks: torch.Tensor, labels: torch.Tensor,
                      num_classes: int, split: str = "biased", bias: BiasConfig = BiasConfig(),
                      seed: int = 0) -> BiasedSplit:
    """Build one test condition and report which mark each image received.

    Args:
        images: (N, C, H, W) float in [0, 1].
        masks: (N, 1, H, W) in {0, 1}, 1 = foreground (never changed).
        labels: LongTensor (N,) in [0, K).
        num_classes: K.
        split: One of :data:`SPLITS`.
        bias: The mark.
        seed: Seeds mark classes and placements; same seed, byte-identical images.

    Returns:
        A :class:`BiasedSplit`.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if not isinstance(labels, torch.Tensor) or labels.dim() != 1 or len(labels) != len(images):
        raise ValueError(f"labels must be a tensor (N,) with N = {len(images)} images, got "
                         f"{getattr(labels, 'shape', type(labels))}")
    label_array = labels.detach().cpu().numpy().astype(np.int64)
    if label_array.size and (label_array.min() < 0 or label_array.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}), got values "
                         f"{sorted(set(label_array.tolist()))[:10]}")
    if split == "unbiased":
        classes = np.full(label_array.shape, -1, np.int64)
    elif split == "confounding":
        classes = confounding_class(torch.from_numpy(label_array), num_classes).numpy()
    else:
        rng = np.random.default_rng([seed, 1])
        classes = choose_mark_classes(label_array, num_classes, bias.strength, rng)
    outputs, skipped = [], []
    for start in range(0, len(images), _CHUNK):  # chunks bound the memory of placement search
        stop = start + _CHUNK
        out, skip = draw_marks(images[start:stop], masks[start:stop], classes[start:stop],
                               num_classes, bias, seed=[seed, 2, start])
        outputs.append(out)
        skipped.append(skip)
    skipped_all = np.concatenate(skipped) if skipped else np.zeros(0, bool)
    shown = np.where(skipped_all, -1, classes)
    return BiasedSplit(
        images=torch.cat(outputs) if outputs else images.clone(),
        mark_classes=torch.from_numpy(shown),
        skipped=torch.from_numpy(skipped_all),
    )
