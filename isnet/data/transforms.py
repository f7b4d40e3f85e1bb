"""How a decoded image and its mask become a model's input, together.

:class:`Preprocessing` holds the facts that come from the model (input size, normalisation; the
ImageNet statistics for torchvision weights) and the augmentation of a training run. It builds
two transforms of ``(image (H, W, 3) float32 in [0, 1], mask (H, W) bool)`` →
``(image (3, S, S) float32, mask (1, S, S) float32 in {0, 1})``:

* **evaluation** — ``squeeze`` (default): the whole picture resized to S × S by area
  averaging (OpenCV ``INTER_AREA``; the mask by nearest neighbour), exactly what the explorer's
  uploads get (:func:`isnet.data.folders.load_image_folder`); ``crop``: torchvision's preset for
  ImageNet weights, the short side resized to S / 0.875 and the centre S × S cut out;
* **training** — a random resized crop (area share ``crop_scale``, aspect 3/4–4/3), a
  horizontal flip with probability ``flip`` and a light colour jitter (brightness, contrast,
  saturation ± ``jitter``), all from ``torchvision.transforms.v2`` on an ``Image`` and a
  ``tv_tensors.Mask`` in one call, so the mask is cut, scaled and flipped with its image
  (nearest neighbour, never blended) and never colour-jittered.

Normalisation ``(x − mean) / std`` comes last and touches only the image. The z^B rule then
needs the normalised pixel range, :meth:`Preprocessing.bounds`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np
import torch
from torch import Tensor
from torchvision import tv_tensors
from torchvision.transforms import v2

RESIZE_MODES: tuple[str, ...] = ("squeeze", "crop")
CROP_RATIO = 0.875
"""torchvision's ImageNet presets: resize to 256, crop 224 (224 / 256)."""
PRESHRINK = 2
"""Images whose short side exceeds PRESHRINK × S are first shrunk to it by area averaging (the
crop and resize that follow then work on a few hundred pixels, not thousands)."""


@dataclass(frozen=True)
class Preprocessing:
    """Input size, normalisation and augmentation (see the module docstring).

    Attributes:
        size: side S of the model's square input in pixels.
        mean, std: per-channel normalisation of [0, 1] RGB pixels, or None for raw pixels.
        resize: ``"squeeze"`` or ``"crop"`` (evaluation), see the module docstring.
        crop_scale: (low, high) area share of the training crop; (1, 1) turns cropping off.
        flip: probability of a horizontal flip in training (0 = off; X-rays may want 0).
        jitter: brightness, contrast and saturation jitter in training (0 = off).
    """

    size: int = 224
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    resize: str = "squeeze"
    crop_scale: tuple[float, float] = (0.75, 1.0)
    flip: float = 0.5
    jitter: float = 0.1

    def __post_init__(self) -> None:
        """Refuse settings that cannot work, naming the field."""
        if self.size < 8:
            raise ValueError(f"Preprocessing.size must be at least 8 px, got {self.size}")
        if self.resize not in RESIZE_MODES:
            raise ValueError(f"Preprocessing.resize must be one of {', '.join(RESIZE_MODES)}, "
                             f"got {self.resize!r}")
        if (self.mean is None) != (self.std is None):
            raise ValueError("Preprocessing: give both mean and std, or neither")
        if not (0 < self.crop_scale[0] <= self.crop_scale[1] <= 1):
            raise ValueError(f"Preprocessing.crop_scale must satisfy 0 < low ≤ high ≤ 1, got "
                             f"{self.crop_scale}")
        if not (0 <= self.flip <= 1 and 0 <= self.jitter < 1):
            raise ValueError(f"Preprocessing: flip must be in [0, 1] and jitter in [0, 1), got "
                             f"{self.flip}, {self.jitter}")

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any], size: int | None = None,
                      **augmentation: Any) -> Preprocessing:
        """The preprocessing a checkpoint's metadata implies: its input size (or ``size``) and
        normalisation (``{"mean": …, "std": …}``, None for raw pixels)."""
        norm = metadata.get("normalisation") or {}
        mean, std = norm.get("mean"), norm.get("std")
        return cls(size=int(size or metadata.get("input_size") or 224),
                   mean=tuple(mean) if mean else None, std=tuple(std) if std else None,
                   **augmentation)

    @property
    def normalisation(self) -> dict[str, list[float] | None]:
        """The checkpoint-metadata form: ``{"mean": [...] | None, "std": [...] | None}``."""
        return {"mean": list(self.mean) if self.mean else None,
                "std": list(self.std) if self.std else None}

    def bounds(self) -> tuple[Any, Any]:
        """The z^B input range (low, high): (0, 1), or ``(0 − mean) / std`` and
        ``(1 − mean) / std`` per channel when normalised."""
        if self.mean is None or self.std is None:
            return 0.0, 1.0
        return ([-m / s for m, s in zip(self.mean, self.std, strict=True)],
                [(1 - m) / s for m, s in zip(self.mean, self.std, strict=True)])

    def describe(self) -> dict[str, Any]:
        """JSON-ready record of every setting (stored in checkpoints)."""
        return {key: (list(value) if isinstance(value, tuple) else value)
                for key, value in asdict(self).items()}

    def evaluation(self) -> PairTransform:
        """The deterministic transform for validation, test and audit."""
        return PairTransform(self, training=False)

    def training(self) -> PairTransform:
        """The random transform for training (seeded per image by the dataset)."""
        return PairTransform(self, training=True)


class PairTransform:
    """``(image (H, W, 3) float32, mask (H, W) bool) → (image (3, S, S), mask (1, S, S))``."""

    def __init__(self, preprocessing: Preprocessing, training: bool) -> None:
        self.preprocessing, self.training = preprocessing, training
        p, steps = preprocessing, []
        if training:
            steps.append(v2.RandomResizedCrop(p.size, scale=p.crop_scale, antialias=True))
            if p.flip > 0:
                steps.append(v2.RandomHorizontalFlip(p.flip))
            if p.jitter > 0:
                steps.append(v2.ColorJitter(p.jitter, p.jitter, p.jitter))
        elif p.resize == "crop":
            steps += [v2.Resize(round(p.size / CROP_RATIO), antialias=True),
                      v2.CenterCrop(p.size)]
        steps.append(v2.ToDtype({tv_tensors.Image: torch.float32, tv_tensors.Mask: torch.float32,
                                 "others": None}))
        if p.mean is not None:
            steps.append(v2.Normalize(list(p.mean), list(p.std or ())))
        self.steps = v2.Compose(steps)

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> tuple[Tensor, Tensor]:
        """Transform one pair (see the class docstring)."""
        size = self.preprocessing.size
        squeeze = not self.training and self.preprocessing.resize == "squeeze"
        if squeeze and image.shape[:2] != (size, size):
            image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
            mask = cv2.resize(mask.astype(np.uint8), (size, size),
                              interpolation=cv2.INTER_NEAREST)
        elif min(image.shape[:2]) > PRESHRINK * size:  # a 3000 px X-ray: shrink once, by area
            scale = PRESHRINK * size / min(image.shape[:2])
            shape = (round(image.shape[1] * scale), round(image.shape[0] * scale))
            image = cv2.resize(image, shape, interpolation=cv2.INTER_AREA)
            mask = cv2.resize(mask.astype(np.uint8), shape, interpolation=cv2.INTER_NEAREST)
        picture = tv_tensors.Image(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1))
        region = tv_tensors.Mask(torch.from_numpy(np.ascontiguousarray(mask, np.uint8))[None])
        picture, region = self.steps(picture, region)
        picture = picture.as_subclass(Tensor)
        if self.preprocessing.mean is None:
            picture = picture.clamp_(0.0, 1.0)  # resampling may overshoot [0, 1] by rounding
        return picture, region.as_subclass(Tensor)
