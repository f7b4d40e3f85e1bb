"""A colour toy dataset: silhouettes on textured, varied backgrounds, with exact masks.

Each class is an object outline (:data:`OBJECT_NAMES`): the horse silhouette bundled with
scikit-image (``skimage.data.horse``, openclipart, CC0) and outlines drawn from formulas (heart,
crescent, flower, arrow). Every sample gets a random scale, rotation, mirror and position, a
random colour with a lighting ramp, and one of four background families: the scikit-image
photo textures brick, grass and gravel (all CC0), smooth two-colour gradients, noise clouds, or
soft random blobs. Nothing about the background depends on the class, so a classifier must read
the object's shape; :mod:`isnet.data.bias` then adds the shortcut.

The mask is the rasterised outline itself (nearest-neighbour warp of a binary template), and
the object is pasted exactly where the mask is 1: ``images * masks`` is the object and
``images * (1 - masks)`` is background, with no blended edge.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch

from isnet.data.image_set import ImageSet

OBJECT_NAMES: tuple[str, ...] = ("horse", "heart", "crescent", "flower", "arrow")
"""Object classes of :func:`synthetic_shapes`, in label order."""

_TEMPLATE = 256  # side of the binary class templates


def _horse_template() -> np.ndarray:
    """The scikit-image horse (False = horse), cropped and centred on a square canvas."""
    from skimage import data  # imported here: only this dataset needs scikit-image

    horse = ~data.horse()  # (328, 400) True = horse
    rows, cols = np.flatnonzero(horse.any(1)), np.flatnonzero(horse.any(0))
    crop = horse[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].astype(np.uint8)
    side = max(crop.shape)
    canvas = np.zeros((side, side), np.uint8)
    top, left = (side - crop.shape[0]) // 2, (side - crop.shape[1]) // 2
    canvas[top : top + crop.shape[0], left : left + crop.shape[1]] = crop
    return cv2.resize(canvas, (_TEMPLATE, _TEMPLATE), interpolation=cv2.INTER_NEAREST)


def _polygon_template(points: np.ndarray) -> np.ndarray:
    """Fill a closed outline given in [-1, 1]^2 coordinates (x right, y down)."""
    canvas = np.zeros((_TEMPLATE, _TEMPLATE), np.uint8)
    pixels = np.round((points * 0.98 + 1.0) * (_TEMPLATE - 1) / 2.0).astype(np.int32)
    cv2.fillPoly(canvas, [pixels.reshape(-1, 1, 2)], 1)
    return canvas


def object_template(name: str) -> np.ndarray:
    """Binary template of one object class.

    Args:
        name: One of :data:`OBJECT_NAMES`.

    Returns:
        (256, 256) uint8 in {0, 1}, 1 = object, roughly centred and filling the square.
    """
    angles = np.linspace(0.0, 2.0 * math.pi, 400, endpoint=False)
    if name == "horse":
        return _horse_template()
    if name == "heart":
        x = 16 * np.sin(angles) ** 3
        y = -(13 * np.cos(angles) - 5 * np.cos(2 * angles) - 2 * np.cos(3 * angles)
              - np.cos(4 * angles))
        return _polygon_template(np.stack([x / 17.0, (y + 2.5) / 17.0], 1))
    if name == "crescent":
        template = _polygon_template(np.stack([np.cos(angles), np.sin(angles)], 1))
        bite = _polygon_template(np.stack([0.75 * np.cos(angles) + 0.45,
                                           0.75 * np.sin(angles) - 0.15], 1))
        return template * (1 - bite)
    if name == "flower":
        radius = 0.62 + 0.38 * np.cos(5 * angles)
        return _polygon_template(np.stack([radius * np.cos(angles), radius * np.sin(angles)], 1))
    if name == "arrow":
        outline = np.array([[-1.0, -0.22], [0.2, -0.22], [0.2, -0.65], [1.0, 0.0],
                            [0.2, 0.65], [0.2, 0.22], [-1.0, 0.22]])
        return _polygon_template(outline)
    raise ValueError(f"object name must be one of {OBJECT_NAMES}, got {name!r}")


def _photo_textures() -> list[np.ndarray]:
    """The CC0 texture photos bundled with scikit-image, as float32 (H, W) in [0, 1]."""
    from skimage import data

    names = ("brick", "grass", "gravel")
    return [getattr(data, name)().astype(np.float32) / 255.0 for name in names]


def _random_color(rng: np.random.Generator) -> np.ndarray:
    """A saturated RGB colour (3,) float32 drawn uniformly in hue."""
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(120, 255), rng.uniform(120, 255)]]],
                   np.float32)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32) / 255.0


def _background(size: int, textures: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """One random background (size, size, 3) float32 in [0, 1]."""
    family = rng.integers(0, 4)
    low, high = _random_color(rng) * 0.8, _random_color(rng)
    if family == 0:  # photo texture, random crop and zoom, coloured between two colours
        texture = textures[rng.integers(0, len(textures))]
        crop = int(rng.integers(size, min(texture.shape) + 1))
        top, left = rng.integers(0, texture.shape[0] - crop + 1, 2)
        gray = cv2.resize(texture[top : top + crop, left : left + crop], (size, size),
                          interpolation=cv2.INTER_AREA)
    elif family == 1:  # smooth gradient in a random direction
        rows, cols = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)
        angle = rng.uniform(0, 2 * math.pi)
        gray = (math.cos(angle) * cols + math.sin(angle) * rows)
        gray = (gray - gray.min()) / max(float(np.ptp(gray)), 1e-6)
    elif family == 2:  # noise clouds: coarse noise, upsampled smoothly
        coarse = rng.random((int(rng.integers(3, 9)),) * 2).astype(np.float32)
        gray = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    else:  # soft blobs
        gray = np.zeros((size, size), np.float32)
        for _ in range(int(rng.integers(3, 8))):
            center = tuple(int(v) for v in rng.integers(0, size, 2))
            cv2.circle(gray, center, int(rng.integers(size // 10, size // 3)), 1.0, -1)
        gray = cv2.GaussianBlur(gray, (0, 0), size / 12.0)
    gray = np.clip(gray, 0.0, 1.0)[..., None]  # (size, size, 1)
    return low * (1.0 - gray) + high * gray  # (size, size, 3)


def _place_object(template: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Warp a class template to a random scale, angle, mirror and position: (size, size) uint8."""
    if rng.random() < 0.5:  # mirror left-right
        template = np.ascontiguousarray(template[:, ::-1])
    scale = rng.uniform(0.45, 0.75) * size / _TEMPLATE
    angle = rng.uniform(-25.0, 25.0)
    matrix = cv2.getRotationMatrix2D((_TEMPLATE / 2.0, _TEMPLATE / 2.0), angle, scale)
    half = scale * _TEMPLATE / 2.0 * 1.2
    shift = rng.uniform(-1, 1, 2) * max(size / 2.0 - half, 0.0)
    matrix[:, 2] = matrix[:, 2] + size / 2.0 - _TEMPLATE / 2.0 + shift  # template → image centre
    return cv2.warpAffine(template, matrix, (size, size), flags=cv2.INTER_NEAREST,
                          borderValue=0)


def synthetic_shapes(n: int, size: int = 96, num_classes: int = 4, seed: int = 0) -> ImageSet:
    """Colour objects on textured backgrounds with exact foreground masks.

    Args:
        n: Number of images N (classes cycle 0, 1, ..., K - 1, 0, ...; then shuffled).
        size: Side in pixels (32-256; 96-128 looks best).
        num_classes: K, 2 to ``len(OBJECT_NAMES)``; the classes are ``OBJECT_NAMES[:K]``.
        seed: Same seed, byte-identical images.

    Returns:
        An :class:`ImageSet` of N images (N, 3, size, size).
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not 32 <= size <= 256:
        raise ValueError(f"size must lie in [32, 256] px, got {size}")
    if not 2 <= num_classes <= len(OBJECT_NAMES):
        raise ValueError(f"num_classes must lie in [2, {len(OBJECT_NAMES)}], got {num_classes}")
    rng = np.random.default_rng(seed)
    templates = [object_template(name) for name in OBJECT_NAMES[:num_classes]]
    textures = _photo_textures()
    labels = rng.permutation(np.arange(n) % num_classes)
    images = np.zeros((n, size, size, 3), np.float32)
    masks = np.zeros((n, size, size), np.float32)
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float32) / size
    for index, label in enumerate(labels):
        mask = _place_object(templates[label], size, rng)  # (size, size) in {0, 1}
        background = _background(size, textures, rng)
        angle = rng.uniform(0, 2 * math.pi)
        light = 0.8 + 0.4 * (math.cos(angle) * cols + math.sin(angle) * rows)  # lighting ramp
        color = _random_color(rng)[None, None] * light[..., None]  # (size, size, 3)
        images[index] = np.where(mask[..., None] > 0, np.clip(color, 0.0, 1.0), background)
        masks[index] = mask
    return ImageSet(
        images=torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(),  # (N, 3, size, size)
        masks=torch.from_numpy(masks)[:, None],  # (N, 1, size, size)
        labels=torch.from_numpy(labels.astype(np.int64)),
        class_names=list(OBJECT_NAMES[:num_classes]),
    )
