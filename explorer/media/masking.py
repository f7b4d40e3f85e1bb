"""Foreground masks for the explorer: automatic first guesses and the editor layer that shows them.

Automatic masks are starting points that the user corrects with the brush and eraser:

* :func:`threshold_mask` — Otsu's threshold on brightness; the foreground is whichever side the
  image border mostly is *not* (objects rarely touch every edge).
* :func:`grabcut_mask` — OpenCV's GrabCut initialised with a rectangle a few percent inside the
  border (or with a given rough mask), run on a downscaled copy for speed.

A mask travels to the image editor as an RGBA layer: foreground pixels get a translucent
colour, background pixels alpha 0. Any non-zero alpha in any layer reads back as foreground.
"""

from __future__ import annotations

import cv2
import numpy as np

from explorer.errors import InputError
from explorer.media.decode import mask_from_array

LAYER_COLOUR = (0, 230, 90)
LAYER_ALPHA = 110
REMOVE_COLOUR = (235, 30, 30)
"""The colour of "remove from mask" brush strokes (add strokes use :data:`LAYER_COLOUR`)."""


def _clean(mask: np.ndarray) -> np.ndarray:
    """Close small gaps and drop specks (3×3 kernel, relative to a ≥ 32 px image)."""
    kernel = np.ones((3, 3), np.uint8)
    cleaned = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_CLOSE, kernel)
    cleaned = cv2.morphologyEx(cleaned, cv2.MORPH_OPEN, kernel)
    return cleaned.astype(bool) if cleaned.any() else mask


def threshold_mask(image: np.ndarray) -> np.ndarray:
    """Otsu foreground guess.

    Args:
        image: (H, W, 3) uint8 RGB.

    Returns:
        (H, W) bool, True on the side of the threshold the border is not.
    """
    grey = cv2.cvtColor(np.ascontiguousarray(image[..., :3]), cv2.COLOR_RGB2GRAY)
    _, binary = cv2.threshold(grey, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    border = np.concatenate([binary[0], binary[-1], binary[:, 0], binary[:, -1]])
    foreground = binary == 0 if border.mean() > 0.5 else binary == 1
    return _clean(foreground)


def grabcut_mask(image: np.ndarray, rough: np.ndarray | None = None, iterations: int = 3,
                 max_side: int = 192) -> np.ndarray:
    """GrabCut foreground guess.

    Args:
        image: (H, W, 3) uint8 RGB.
        rough: optional (H, W) bool first guess (e.g. what the user drew); else a rectangle 6 %
            inside the border is "probably foreground".
        iterations: GrabCut iterations.
        max_side: the image is shrunk to this long side first (GrabCut is slow on big images).

    Returns:
        (H, W) bool.
    """
    height, width = image.shape[:2]
    factor = min(1.0, max_side / max(height, width))
    small_size = (max(8, round(width * factor)), max(8, round(height * factor)))
    small = cv2.resize(np.ascontiguousarray(image[..., :3]), small_size,
                       interpolation=cv2.INTER_AREA)
    labels = np.zeros(small.shape[:2], np.uint8)
    background_model = np.zeros((1, 65), np.float64)
    foreground_model = np.zeros((1, 65), np.float64)
    if rough is not None and 0 < rough.mean() < 1:
        seed = cv2.resize(rough.astype(np.uint8), small_size, interpolation=cv2.INTER_NEAREST)
        labels[:] = np.where(seed > 0, cv2.GC_PR_FGD, cv2.GC_PR_BGD)
        mode, rect = cv2.GC_INIT_WITH_MASK, None
    else:
        margin_x, margin_y = max(1, small_size[0] * 6 // 100), max(1, small_size[1] * 6 // 100)
        rect = (margin_x, margin_y, small_size[0] - 2 * margin_x, small_size[1] - 2 * margin_y)
        mode = cv2.GC_INIT_WITH_RECT
    cv2.grabCut(cv2.cvtColor(small, cv2.COLOR_RGB2BGR), labels, rect, background_model,
                foreground_model, iterations, mode)
    foreground = np.isin(labels, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.uint8)
    full = cv2.resize(foreground, (width, height), interpolation=cv2.INTER_NEAREST)
    return _clean(full.astype(bool))


def auto_mask(image: np.ndarray, method: str, rough: np.ndarray | None = None) -> np.ndarray:
    """Dispatch to :func:`threshold_mask` ("threshold") or :func:`grabcut_mask` ("grabcut").

    Raises:
        InputError: unknown method.
    """
    if method == "threshold":
        return threshold_mask(image)
    if method == "grabcut":
        return grabcut_mask(image, rough)
    raise InputError(f"Unknown automatic mask method {method!r}; use 'threshold' or 'grabcut'.")


def mask_layer(mask: np.ndarray) -> np.ndarray:
    """The editor layer for a mask: (H, W, 4) uint8, translucent colour on the foreground."""
    layer = np.zeros(mask.shape + (4,), np.uint8)
    layer[mask] = (*LAYER_COLOUR, LAYER_ALPHA)
    return layer


def mask_from_layers(layers: list | None, shape: tuple[int, int]) -> np.ndarray | None:
    """Union of the painted pixels (alpha > 0) of all editor layers, or None if none is painted.

    Args:
        layers: the editor's layers, (h, w, 4) arrays; sizes other than ``shape`` are resized
            when the proportions agree.
        shape: (H, W) of the background image.

    Raises:
        InputError: a layer with other proportions.
    """
    mask = np.zeros(shape, bool)
    for index, layer in enumerate(layers or []):
        if layer is None:
            continue
        array = np.asarray(layer)
        if array.ndim == 3 and array.shape[2] == 4:
            painted = array[..., 3] > 0
        else:  # a layer without alpha (e.g. an uploaded black/white mask): brightness
            painted = mask_from_array(array, array.shape[:2])
        mask |= mask_from_array(painted, shape, f"mask layer {index + 1}")
    return mask if mask.any() else None


def strokes_by_colour(layers: list | None, shape: tuple[int, int]
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Painted pixels of all editor layers split by brush colour: (add, remove, other).

    A stroke's meaning lives in its colour, so it keeps it however the brush mode changes
    later: green (:data:`LAYER_COLOUR`) adds to the mask, red (:data:`REMOVE_COLOUR`) cuts it
    away; any other colour (a script's black-and-white or alpha-only layer) is "other" and
    follows the brush mode.

    Returns:
        three (H, W) bool maps.

    Raises:
        InputError: a layer with other proportions.
    """
    add, remove, other = (np.zeros(shape, bool) for _ in range(3))
    for index, layer in enumerate(layers or []):
        if layer is None:
            continue
        array = np.asarray(layer)
        name = f"mask layer {index + 1}"
        if not (array.ndim == 3 and array.shape[2] == 4):
            other |= mask_from_array(mask_from_array(array, array.shape[:2]), shape, name)
            continue
        painted = array[..., 3] > 0
        red, green = array[..., 0].astype(np.int16), array[..., 1].astype(np.int16)
        is_remove = painted & (red > 100) & (red > 2 * green)
        is_add = painted & (green > 100) & (green > 2 * red)
        add |= mask_from_array(is_add, shape, name)
        remove |= mask_from_array(is_remove, shape, name)
        other |= mask_from_array(painted & ~is_add & ~is_remove, shape, name)
    return add, remove, other


def describe_mask(mask: np.ndarray | None) -> tuple[str, str | None]:
    """A one-line summary of a mask and a warning when it is empty or covers everything."""
    if mask is None or not mask.any():
        return "No mask: background share not computed.", (
            "The mask is empty. Paint the object (brush), upload a mask or use an automatic "
            "mask to get the background relevance share.")
    coverage = float(mask.mean())
    if coverage >= 0.999:
        return "Mask covers the whole image.", ("The mask covers the whole image, so there is "
                                                "no background: the share is 0 by definition.")
    return f"Foreground covers {coverage:.0%} of the image.", None
