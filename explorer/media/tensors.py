"""Pictures ↔ the engine's tensors, and pictures sized for display.

The one place where widget pixels become model inputs: an (H, W, 3) ``uint8`` image becomes a
(1, 3, S, S) float tensor in [0, 1] at the model's input size (then normalised with the model's
own mean and standard deviation, :func:`model_input`), a (H, W) bool mask a (1, 1, S, S) {0, 1}
tensor. How the picture reaches S × S is the model's (``resize``, :func:`resize_mode`):
``"squeeze"``, the whole picture by area averaging; ``"crop"``, torchvision's ImageNet preset
(short side to S / 0.875, centre S × S, :func:`isnet.data.transforms.crop_pixels`), the mask
cut the same way, and :func:`model_view` shows that centre. Heatmaps never come back through
here: they stay tensors until :mod:`isnet.viz` colours them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np
import torch
from torch import Tensor

from isnet.data.transforms import crop_box, crop_mask, crop_pixels, preprocessing_of


def resize_mode(metadata: Mapping[str, Any]) -> str:
    """How a model's pictures reach its input size, from its checkpoint metadata: ``"crop"``
    (torchvision's preset for ImageNet metadata, or what a run recorded) or ``"squeeze"``
    (:func:`isnet.data.transforms.preprocessing_of`)."""
    return preprocessing_of(dict(metadata)).resize


def model_tensor(image: np.ndarray, size: int, resize: str = "squeeze") -> Tensor:
    """(H, W, 3) uint8 → (1, 3, size, size) float32 in [0, 1] (see the module docstring for
    ``resize``)."""
    small = resize_image(image, size, resize)
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



def model_input(image: np.ndarray, size: int,
                normalisation: tuple[Sequence[float], Sequence[float]] | None = None,
                resize: str = "squeeze") -> Tensor:
    """(H, W, 3) uint8 → what a model sees: (1, 3, size, size) float32, resized (``resize``)
    and normalised with the model's own (mean, std) (raw [0, 1] when None)."""
    return normalise(model_tensor(image, size, resize), normalisation)


def mask_tensor(mask: np.ndarray, size: int, resize: str = "squeeze") -> Tensor:
    """(H, W) bool → (1, 1, size, size) float32 in {0, 1} (nearest; cut like the image)."""
    return torch.from_numpy(resize_mask(mask, size, resize).astype(np.float32))[None, None]


def resize_image(image: np.ndarray, size: int, resize: str = "squeeze") -> np.ndarray:
    """(H, W, 3) uint8 → (size, size, 3) uint8, as the model sees it (``"squeeze"``: area
    interpolation; ``"crop"``: torchvision's resize and centre crop)."""
    if resize == "crop":
        return crop_pixels(image, None, size)[0]
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)


def resize_mask(mask: np.ndarray, size: int, resize: str = "squeeze") -> np.ndarray:
    """(H, W) bool → (size, size) bool (nearest; ``"crop"``: the image's resize and crop)."""
    if resize == "crop":
        return crop_mask(mask, size)
    return cv2.resize(mask.astype(np.uint8), (size, size),
                      interpolation=cv2.INTER_NEAREST).astype(bool)


def model_view(image: np.ndarray, size: int, resize: str = "squeeze") -> np.ndarray:
    """The part of a picture the model sees, at the picture's own resolution: the whole
    picture, or (``"crop"``) the centre the crop keeps (H', W', 3) uint8."""
    if resize != "crop":
        return image
    top, left, height, width = crop_box(*image.shape[:2], size)
    return image[top:top + height, left:left + width]


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
