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

import functools
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np
import torch
from torch import Tensor
from torchvision import tv_tensors
from torchvision.transforms import InterpolationMode, v2
from torchvision.transforms import functional as F

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
        """The z^B input range (low, high): (0, 1), or :func:`normalised_bounds` when
        normalised."""
        if self.mean is None or self.std is None:
            return 0.0, 1.0
        return normalised_bounds(self.mean, self.std)

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


def normalised_bounds(mean: Sequence[float], std: Sequence[float]
                      ) -> tuple[list[float], list[float]]:
    """The z^B bounds of normalised [0, 1] pixels: ``(0 − mean) / std`` and ``(1 − mean) / std``
    per channel."""
    return ([-m / s for m, s in zip(mean, std, strict=True)],
            [(1 - m) / s for m, s in zip(mean, std, strict=True)])


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


def preprocessing_of(metadata: dict[str, Any], default_size: int = 64) -> Preprocessing:
    """The evaluation preprocessing a checkpoint records or implies.

    In order: the transforms a run recorded (``data.transforms``, written by ``python -m
    isnet.train --data``); torchvision's ImageNet preset (``resize="crop"``: short side to
    S / 0.875, centre S × S) for a model with ImageNet metadata (:func:`has_imagenet_metadata`);
    otherwise the whole picture squeezed to the recorded input size (``default_size`` when
    none is recorded). Input size and normalisation always come from the metadata's own fields
    (the explorer may override them).
    """
    recorded = (metadata.get("data") or {}).get("transforms") or {}
    resize = recorded.get("resize") if recorded.get("resize") in RESIZE_MODES else None
    if resize is None:
        resize = "crop" if has_imagenet_metadata(metadata) else "squeeze"
    return Preprocessing.from_metadata(metadata, int(metadata.get("input_size") or default_size),
                                       resize=resize)


def has_imagenet_metadata(metadata: dict[str, Any]) -> bool:
    """Whether a checkpoint's metadata is torchvision's ImageNet-1k facts: the 1000 class names
    and the ImageNet normalisation (what :mod:`isnet.io.imagenet` fills in for such weights)."""
    names = metadata.get("class_names") or []
    if len(names) != 1000:
        return False
    facts = _imagenet_facts()
    norm = metadata.get("normalisation") or {}
    mean, std = norm.get("mean"), norm.get("std")
    return (list(names) == list(facts.class_names) and mean is not None and std is not None
            and np.allclose(mean, facts.mean) and np.allclose(std, facts.std))


@functools.lru_cache(maxsize=1)
def _imagenet_facts() -> Any:
    from isnet.io.imagenet import imagenet_preprocessing  # lazy: isnet.io reads isnet.data

    return imagenet_preprocessing()


def crop_pixels(image: np.ndarray, mask: np.ndarray | None, size: int
                ) -> tuple[np.ndarray, np.ndarray | None]:
    """The ``"crop"`` evaluation resize on ``uint8`` pixels, exactly as torchvision's weight
    transforms do it (``weights.transforms()``): the short side resized to round(S / 0.875)
    by antialiased bilinear interpolation of the ``uint8`` tensor, then the centre S × S; the
    mask by nearest neighbour through the same resize and crop.

    :class:`PairTransform` resizes float pixels instead (the same steps; values differ from
    these by at most the rounding to 1/255).

    Shapes:
        image: (H, W, 3) uint8 → (S, S, 3) uint8; mask: (H, W) bool → (S, S) bool.
    """
    picture = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
    picture = F.center_crop(F.resize(picture, [round(size / CROP_RATIO)],
                                     InterpolationMode.BILINEAR, antialias=True), [size, size])
    return picture.permute(1, 2, 0).numpy(), None if mask is None else crop_mask(mask, size)


def crop_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """A mask through :func:`crop_pixels`' resize (nearest neighbour) and centre crop.

    Shapes: mask (H, W) bool → (S, S) bool.
    """
    region = torch.from_numpy(np.ascontiguousarray(mask, np.uint8))[None]
    region = F.center_crop(F.resize(region, [round(size / CROP_RATIO)],
                                    InterpolationMode.NEAREST), [size, size])
    return region[0].numpy().astype(bool)


def crop_box(height: int, width: int, size: int) -> tuple[int, int, int, int]:
    """Where the ``"crop"`` evaluation's S × S centre lies in the original picture:
    ``(top, left, box_height, box_width)`` in original pixels (for showing what the model
    sees at the picture's own resolution)."""
    side = round(size / CROP_RATIO)
    if height <= width:  # torchvision: the short side becomes ``side``, the other is truncated
        resized_h, resized_w = side, int(side * width / height)
    else:
        resized_h, resized_w = int(side * height / width), side
    top, left = int(round((resized_h - size) / 2.0)), int(round((resized_w - size) / 2.0))
    box_h, box_w = round(size * height / resized_h), round(size * width / resized_w)
    return (round(top * height / resized_h), round(left * width / resized_w), box_h, box_w)


def evaluation_record(preprocessing: Preprocessing) -> dict[str, Any]:
    """JSON-ready record of how evaluation pictures reach the model (model cards, exports):
    ``resize`` mode, input ``size``, the ``short_side`` a crop resizes to (None for squeeze),
    the interpolation, normalisation and a one-line ``text``."""
    size = preprocessing.size
    if preprocessing.resize == "crop":
        short = round(size / CROP_RATIO)
        text = (f"short side resized to {short} (bilinear, antialiased), centre {size}×{size} "
                f"cropped (torchvision's preset); masks follow the crop")
        interpolation = "bilinear (antialiased); masks nearest"
    else:
        short = None
        text = f"whole picture resized to {size}×{size} (area averaging; masks nearest)"
        interpolation = "area; masks nearest"
    return {"resize": preprocessing.resize, "size": size, "short_side": short,
            "interpolation": interpolation, **preprocessing.normalisation, "text": text}
