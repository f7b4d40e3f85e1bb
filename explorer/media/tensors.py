"""Pictures ↔ the engine's tensors, and pictures sized for display.

The one place where widget pixels become model inputs: an (H, W, 3) ``uint8`` image becomes a
(1, 3, S, S) float tensor in [0, 1] at the model's input size (then normalised with the model's
own mean and standard deviation, :func:`model_input`), a (H, W) bool mask a (1, 1, S, S) {0, 1}
tensor. Heatmaps never come back through here: they stay tensors until
:mod:`isnet.viz` colours them.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch
from torch import Tensor


def model_tensor(image: np.ndarray, size: int) -> Tensor:
    """(H, W, 3) uint8 → (1, 3, size, size) float32 in [0, 1] (area interpolation)."""
    small = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    return torch.from_numpy(small.astype(np.float32) / 255.0).permute(2, 0, 1)[None]


def normalise(x: Tensor, normalisation: tuple[Sequence[float], Sequence[float]] | None) -> Tensor:
    """``(x − mean) / std`` per channel; ``x`` unchanged when ``normalisation`` is None.

    Shapes:
        x: (B, C, S, S); mean and std: C values each.
    """
    if normalisation is None:
        return x
    mean, std = (torch.as_tensor(v, dtype=x.dtype).reshape(1, -1, 1, 1) for v in normalisation)
    return (x - mean) / std


def normalised_bounds(mean: Sequence[float], std: Sequence[float]) -> tuple[list[float],
                                                                             list[float]]:
    """The z^B bounds of normalised pixels: ``(0 − mean) / std`` and ``(1 − mean) / std`` per
    channel."""
    return ([-m / s for m, s in zip(mean, std, strict=True)],
            [(1 - m) / s for m, s in zip(mean, std, strict=True)])


def model_input(image: np.ndarray, size: int,
                normalisation: tuple[Sequence[float], Sequence[float]] | None = None) -> Tensor:
    """(H, W, 3) uint8 → what a model sees: (1, 3, size, size) float32, resized and normalised
    with the model's own (mean, std) (raw [0, 1] when None)."""
    return normalise(model_tensor(image, size), normalisation)


def mask_tensor(mask: np.ndarray, size: int) -> Tensor:
    """(H, W) bool → (1, 1, size, size) float32 in {0, 1} (nearest)."""
    return torch.from_numpy(resize_mask(mask, size).astype(np.float32))[None, None]


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """(H, W, 3) uint8 → (size, size, 3) uint8 (area interpolation, as the model sees it)."""
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)


def resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """(H, W) bool → (size, size) bool (nearest)."""
    return cv2.resize(mask.astype(np.uint8), (size, size),
                      interpolation=cv2.INTER_NEAREST).astype(bool)


def display_image(image: np.ndarray, max_side: int) -> np.ndarray:
    """Fit an image for display: shrink big ones (small payloads), enlarge small ones by an
    integer factor, nearest neighbour (so a 64 px model input stays crisp).

    Args:
        image: (H, W, 3) uint8.
        max_side: the long side to aim for.
    """
    height, width = image.shape[:2]
    factor = max_side / max(height, width)
    if factor >= 2:
        whole = int(factor)
        return np.repeat(np.repeat(image, whole, axis=0), whole, axis=1)
    if factor >= 1:
        return image
    return cv2.resize(image, (round(width * factor), round(height * factor)),
                      interpolation=cv2.INTER_AREA)


def enlarge(image: np.ndarray, side: int) -> np.ndarray:
    """(S, S, 3) uint8 → (side, side, 3) uint8, nearest neighbour (model pixels stay blocks)."""
    return cv2.resize(image, (side, side), interpolation=cv2.INTER_NEAREST)
