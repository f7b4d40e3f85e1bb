"""Heatmaps as pictures: relevance → RGB ``uint8`` on one shared, symmetric colour scale.

Two heatmaps are only comparable when the same colour means the same relevance in both. So the
scale is computed once for a group of maps (:func:`shared_scale`) and every map of the group is
drawn with it (:func:`heatmap_to_rgb`, :func:`overlay`). The scale is symmetric around zero:
white (the middle of a diverging colour map) is zero relevance, red is positive evidence for the
explained class, blue is negative evidence, and the same magnitude gives the same saturation on
both sides.

Everything here is NumPy in, ``uint8`` NumPy out, so that the explorer and notebooks can show the
results directly. Torch tensors are accepted as inputs and converted.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

DEFAULT_CMAP = "bwr"


def relevance_map(heatmap: np.ndarray | object) -> np.ndarray:
    """Reduce a heatmap to one relevance value per pixel.

    Args:
        heatmap: a torch tensor or array of shape (H, W), (C, H, W) or (1, C, H, W) — for instance
            one item of the ``(B, 1, C, H, W)`` heatmaps of :func:`isnet.explain`.

    Returns:
        float64 array (H, W): relevance summed over colour channels.

    Raises:
        ValueError: for any other shape.
    """
    if hasattr(heatmap, "detach"):
        heatmap = heatmap.detach().cpu().numpy()
    array = np.asarray(heatmap, dtype=np.float64)
    shape = array.shape
    while array.ndim > 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim == 3:
        array = array.sum(axis=0)  # (H, W)
    if array.ndim != 2:
        raise ValueError(f"expected a heatmap of shape (H, W), (C, H, W) or (1, C, H, W), "
                         f"got {shape}")
    return array


def shared_scale(maps: Sequence[np.ndarray], percentile: float = 100.0) -> float:
    """The one colour-scale bound for a group of relevance maps.

    Args:
        maps: relevance maps (any shapes); all of them are drawn with the returned bound.
        percentile: 100 uses the largest magnitude; lower values (e.g. 99.5) clip a few extreme
            pixels so the rest stays visible.

    Returns:
        A positive float ``s``: relevance ``+s`` is drawn fully red, ``-s`` fully blue. A group
        with no relevance at all gets ``1.0`` so that it draws as white instead of dividing by 0.
    """
    magnitudes = [np.abs(np.asarray(m, dtype=np.float64)).ravel() for m in maps]
    magnitudes = [m[np.isfinite(m)] for m in magnitudes if m.size]
    if not magnitudes or not sum(m.size for m in magnitudes):
        return 1.0
    values = np.concatenate(magnitudes)
    scale = float(np.percentile(values, percentile)) if percentile < 100 else float(values.max())
    return scale if scale > 0 else 1.0


@lru_cache(maxsize=16)
def _colormap(name: str):
    """The matplotlib colour map called ``name`` (imported lazily, no pyplot state). Made once
    per name: the registry hands out a fresh copy, whose lookup table is built on first use,
    and colouring only reads it afterwards (safe to share between threads)."""
    from matplotlib import colormaps

    colormap = colormaps[name]
    colormap(0.5)  # builds the lookup table now, before any concurrent use
    return colormap


def _resize_nearest(array: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """Nearest-neighbour resize of an (H, W, ...) array to ``size`` = (height, width)."""
    if size is None or tuple(array.shape[:2]) == tuple(size):
        return array
    rows = (np.arange(size[0]) * array.shape[0] / size[0]).astype(int)
    cols = (np.arange(size[1]) * array.shape[1] / size[1]).astype(int)
    return array.take(rows, axis=0).take(cols, axis=1)  # (2× faster than array[rows][:, cols])


def heatmap_to_rgb(heatmap: np.ndarray, scale: float, cmap: str = DEFAULT_CMAP,
                   size: tuple[int, int] | None = None) -> np.ndarray:
    """Colour a relevance map with a diverging colour map on the symmetric range [-scale, scale].

    Args:
        heatmap: relevance, any shape accepted by :func:`relevance_map`.
        scale: the shared bound from :func:`shared_scale`; values beyond it saturate.
        cmap: a diverging matplotlib colour map whose middle is white ("bwr", "seismic", "RdBu_r").
        size: optional (height, width) to enlarge to, nearest neighbour (each model pixel stays a
            visible block rather than being smoothed into something the model did not compute).

    Returns:
        uint8 array (H, W, 3).
    """
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    relevance = np.nan_to_num(relevance_map(heatmap))
    unit = np.clip(relevance / scale, -1.0, 1.0) * 0.5 + 0.5  # (H, W) in [0, 1], 0.5 = zero
    rgb = (_colormap(cmap)(unit)[..., :3] * 255.0 + 0.5).astype(np.uint8)  # (H, W, 3)
    return _resize_nearest(rgb, size)


def as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """An image as (H, W, 3) uint8: greyscale is repeated, alpha dropped, floats in [0, 1] scaled.

    Args:
        image: (H, W), (H, W, 1), (H, W, 3), (H, W, 4) or a (3, H, W) float tensor/array in [0, 1].
    """
    if hasattr(image, "detach"):
        image = image.detach().cpu().numpy()
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3, 4):
        array = np.moveaxis(array, 0, -1)  # (C, H, W) → (H, W, C)
    if array.dtype != np.uint8:
        array = (np.clip(array.astype(np.float64), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if array.ndim == 2:
        array = array[..., None]
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    return np.ascontiguousarray(array[..., :3])


def overlay(image: np.ndarray, heatmap: np.ndarray, scale: float, opacity: float = 0.6,
            cmap: str = DEFAULT_CMAP) -> np.ndarray:
    """Draw a relevance map over an image.

    Each pixel mixes the image with the heatmap colour with weight
    ``opacity · sqrt(|R| / scale)`` (clipped to [0, 1]): pixels without relevance show the image
    unchanged, strongly relevant ones show mostly the colour, and the square root keeps weak but
    real relevance visible.

    Args:
        image: the picture, any form accepted by :func:`as_rgb_uint8`; the heatmap is enlarged to
            its size (nearest neighbour).
        heatmap: relevance, any shape accepted by :func:`relevance_map`.
        scale: the shared colour-scale bound.
        opacity: 0 shows only the image, 1 the strongest mix.
        cmap: diverging colour map.

    Returns:
        uint8 array (H, W, 3) at the image's size.
    """
    base = as_rgb_uint8(image)
    size = base.shape[:2]
    # colour and weight at the map's own resolution, then enlarged: the same pixels as colouring
    # the enlarged map (both are per pixel, the enlargement picks pixels), at a fraction of
    # the cost; the mix is done in float32, in place (the image may be large)
    relevance = np.nan_to_num(relevance_map(heatmap))
    colour = _resize_nearest(heatmap_to_rgb(relevance, scale, cmap), size).astype(np.float32)
    strength = np.sqrt(np.clip(np.abs(relevance) / scale, 0, 1))
    weight = (float(np.clip(opacity, 0.0, 1.0)) * strength).astype(np.float32)
    # (H, W, 3): one weight per channel, so the products below are plain elementwise ones
    # (broadcasting an (H, W, 1) factor is ~20× slower in NumPy)
    weight = _resize_nearest(np.repeat(weight[..., None], 3, axis=2), size)
    mixed = base.astype(np.float32)
    colour -= mixed  # colour − image
    colour *= weight
    mixed += colour  # image · (1 − w) + colour · w
    mixed += 0.5
    return mixed.astype(np.uint8)


def mask_overlay(image: np.ndarray, mask: np.ndarray, opacity: float = 0.45,
                 colour: tuple[int, int, int] = (0, 200, 80)) -> np.ndarray:
    """Tint the foreground of an image and dim its background, to show a mask.

    Args:
        image: the picture, any form accepted by :func:`as_rgb_uint8`.
        mask: (H, W) or (1, H, W) foreground mask (non-zero = foreground), same height and width.
        opacity: strength of the tint.
        colour: RGB tint of the foreground.

    Returns:
        uint8 array (H, W, 3).
    """
    base = as_rgb_uint8(image).astype(np.float64)
    fg = np.asarray(mask).reshape(base.shape[:2]) > 0
    tint = np.asarray(colour, dtype=np.float64)
    out = base.copy()
    out[fg] = base[fg] * (1 - opacity) + tint * opacity
    out[~fg] = base[~fg] * (1 - opacity / 2)
    return (out + 0.5).astype(np.uint8)


def colorbar(scale: float, cmap: str = DEFAULT_CMAP, width: int = 256,
             height: int = 16) -> np.ndarray:
    """A horizontal colour bar from ``-scale`` (left) to ``+scale`` (right) as uint8 (h, w, 3)."""
    ramp = np.linspace(-scale, scale, width)[None, :].repeat(height, axis=0)
    return heatmap_to_rgb(ramp, scale, cmap)
