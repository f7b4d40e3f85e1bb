"""What the mask editor's value means: the current image, a base mask, and the user's strokes.

Gradio 6's image editor does not reliably draw layers that the server sends: it places each one
in a canvas sized from its drawing container's bounds at that moment, so on a non-square photo
(chelsea, 451×300, at 1500 px) a mask layer was drawn enlarged and shifted below and right of
the image (the "ghost mask"). Once the user paints it sends back only what was painted in the
browser (and, when the server sent a ``composite``, that composite as the background). So the
explorer keeps the truth on the server side and sends the editor *no* layers:

* when an image or a mask is set by the server (sample, upload, automatic mask, mask file),
  :func:`show` saves the clean image and the *base mask* as PNGs in the session's folder, keeps
  their paths in a small ``gr.State`` record, and sends the editor the image with the base mask
  tinted in (as its composite, the one picture the editor draws in place), so the user sees it;
* :func:`resolve` turns what the editor sends back into (clean image, mask): the image comes from
  the record whenever the editor still shows it (clean or tinted), the strokes come from the
  layers, and each stroke's colour says whether it adds to the base mask (green) or cuts it
  away (red) — the brush mode only picks the colour of the next strokes, so a stroke keeps its
  meaning once drawn. Strokes of other colours (scripts) follow the brush mode.

An editor value that does not match the record (for instance sent by a script through
``gradio_client``) is taken as it is: its background is the image, its layers the mask.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from explorer.errors import InputError
from explorer.media import masking
from isnet import viz
from isnet.io.atomic import write_with

ADD, REMOVE = "add to mask", "remove from mask"
BRUSH_MODES = (ADD, REMOVE)
BRUSH_LABELS = {ADD: "add to mask (green strokes)", REMOVE: "remove from mask (red strokes)"}
BRUSH_COLOURS = {ADD: "rgba({}, {}, {}, 0.55)".format(*masking.LAYER_COLOUR),
                 REMOVE: "rgba({}, {}, {}, 0.55)".format(*masking.REMOVE_COLOUR)}
"""The brush colour of each mode: what a stroke means is read from its colour."""


def editor_value(image: np.ndarray, mask: np.ndarray | None) -> dict:
    """An editor value with ``mask`` as its one painted layer (what a script would send)."""
    layers = [masking.mask_layer(mask)] if mask is not None and mask.any() else []
    return {"background": image, "layers": layers, "composite": None}


def empty_record() -> dict:
    """The editor record before any image: no image, no base mask."""
    return {"image": None, "mask": None}


def show(folder: Path, image: np.ndarray, mask: np.ndarray | None) -> tuple[dict, dict]:
    """The editor value showing ``image`` with ``mask`` tinted in, and the record to keep.

    Args:
        folder: the session's folder, where the clean image and base mask are saved.
        image: (H, W, 3) uint8.
        mask: (H, W) bool base mask, or None.

    Returns:
        (editor value, record ``{"image": path, "mask": path or None}``).
    """
    stamp = time.time_ns()
    image_path = _save_png(folder / f"image-{stamp}.png", image)
    mask_path = None
    if mask is not None and mask.any():
        mask_path = _save_png(folder / f"mask-{stamp}.png", mask.astype(np.uint8) * 255)
        value = {"background": image, "layers": [], "composite": viz.mask_overlay(image, mask)}
    else:
        value = {"background": image, "layers": [], "composite": None}
    return value, {"image": str(image_path), "mask": str(mask_path) if mask_path else None}


def _save_png(path: Path, array: np.ndarray) -> Path:
    """Write ``array`` as a PNG atomically (a partial file never has the final name)."""
    return write_with(path, lambda temporary: Image.fromarray(array).save(temporary, "PNG"))


def _load(record: dict | None) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The record's clean image and base mask (None where missing or unreadable)."""
    if not record or not record.get("image"):
        return None, None
    try:
        image = np.asarray(Image.open(record["image"]).convert("RGB"))
        mask = (np.asarray(Image.open(record["mask"])) > 127) if record.get("mask") else None
    except OSError:
        return None, None
    return image, mask


def _same_picture(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal shapes and nearly equal pixels (the browser may re-encode)."""
    return a.shape == b.shape and float(np.abs(a.astype(np.int16) - b).mean()) < 3.0


def resolve(value: dict | None, record: dict | None,
            mode: str = ADD) -> tuple[np.ndarray, np.ndarray | None]:
    """(clean image (H, W, 3) uint8, mask (H, W) bool or None) from the editor and the record.

    Raises:
        InputError: no image, unknown brush mode, or strokes of other proportions.
    """
    if mode not in BRUSH_MODES:
        raise InputError(f"Brush mode must be one of {BRUSH_MODES}, not {mode!r}.")
    background = (value or {}).get("background")
    if background is None:
        raise InputError("No image yet: pick a sample or upload an image first.")
    shown = viz.as_rgb_uint8(np.asarray(background))
    clean, base = _load(record)
    ours = clean is not None and (_same_picture(shown, clean) or (
        base is not None and _same_picture(shown, viz.mask_overlay(clean, base))))
    if not ours:
        if min(shown.shape[:2]) < 8:
            raise InputError(f"The image is only {shown.shape[1]}×{shown.shape[0]} pixels.")
        return shown, masking.mask_from_layers(value.get("layers"), shown.shape[:2])
    add, remove, other = masking.strokes_by_colour(value.get("layers"), clean.shape[:2])
    if mode == REMOVE:
        remove |= other
    else:
        add |= other
    if not add.any() and not remove.any():
        return clean, base
    mask = (base.copy() if base is not None else np.zeros(clean.shape[:2], bool)) | add
    mask &= ~remove
    return clean, mask if mask.any() else None


@dataclass(frozen=True)
class EditorInput:
    """What the mask editor holds, as one named value: handler requests carry it.

    Attributes:
        value: the editor's ``{"background", "layers", "composite"}`` dict.
        record: the editor's ``gr.State`` record (None: take ``value`` as it is).
        mode: what brush strokes do, one of :data:`BRUSH_MODES`.
    """

    value: dict | None
    record: dict | None = None
    mode: str = ADD

    def read(self) -> tuple[np.ndarray, np.ndarray | None]:
        """(clean image (H, W, 3) uint8, mask (H, W) bool or None); see :func:`resolve`."""
        return resolve(self.value, self.record, self.mode)
