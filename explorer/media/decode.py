"""Turning whatever a user uploads into an RGB image and a foreground mask — or a clear refusal.

Accepted images: PNG, JPEG, WebP, BMP, TIFF (and a GIF's first frame); greyscale, RGB, RGBA
(composited on white, the alpha channel kept as a mask suggestion), palette, 16-bit and float.
Other formats (PPM, ICO, PCX, TGA, SGI, …) are refused by their header. Images larger than
``max_side`` pixels on their long side are downscaled, with a notice. A large file is decoded
reduced, straight to about that size (a JPEG scales while it decodes, ``Image.draft``; other
formats are reduced by an integer box filter right after, ``Image.reduce``), never to the full
size in floating point; and while a file of more than
:data:`explorer.media.budget.LARGE_PIXELS` pixels is decoded it holds a slot of the app's
:class:`explorer.media.budget.DecodeBudget` (a few at once; the others are told to retry).
Every path that decodes a file first reads its header
(:func:`isnet.io.limits.check_image_header`) and refuses more than :data:`MAX_PIXELS` pixels as
"too large" before any pixel is decoded; arrays decoded elsewhere (by Gradio) are refused by
their shape. EXIF orientation is applied; of a multi-frame file only the first frame is used,
with a notice. Messages name only a file's base name. Every refusal is an :class:`InputError`
whose message can be shown to the user as is.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from explorer.errors import InputError
from explorer.media.budget import DecodeBudget, running_budget
from isnet.io.limits import (
    DEFAULT_MAX_PIXELS,
    FORMATS_TEXT,
    FormatError,
    ImageHeader,
    LimitError,
    check_image_header,
    display_name,
)

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
MAX_SIDE = 1024  # long side after downscaling, pixels
MAX_PIXELS = DEFAULT_MAX_PIXELS  # refuse to decode beyond this (about 6300 × 6300)


@dataclass
class DecodedImage:
    """An upload made usable.

    Attributes:
        image: (H, W, 3) uint8 RGB.
        alpha_mask: (H, W) bool from a non-trivial alpha channel, else None.
        notices: things the user should know (downscaled, 16-bit reduced, alpha flattened).
    """

    image: np.ndarray
    alpha_mask: np.ndarray | None = None
    notices: list[str] = field(default_factory=list)


def _name(source: object) -> str:
    return display_name(source, "the image")


def check_pixels(source: str | os.PathLike | bytes, max_pixels: int = MAX_PIXELS) -> ImageHeader:
    """Read an image file's header and refuse it before decoding when it has too many pixels.

    Args:
        source: a file path or the file's bytes.
        max_pixels: the largest allowed width × height.

    Returns:
        The header (size, frames, EXIF orientation); its ``notice`` is set for multi-frame files.

    Raises:
        InputError: "too large" beyond ``max_pixels``; not an image; a missing file. Messages
            name only the file's base name.
    """
    name = _name(source)
    if isinstance(source, (str, os.PathLike)) and not Path(source).is_file():
        raise InputError(f"{name}: file not found.")
    try:
        return check_image_header(source, max_pixels=max_pixels, name=name)
    except (LimitError, FormatError) as error:
        raise InputError(f"{error}.") from None
    except ValueError:
        raise InputError(f"{name} is not an image this app can read "
                         f"({FORMATS_TEXT} expected).") from None


def check_array_pixels(array: np.ndarray, max_pixels: int = MAX_PIXELS,
                       name: str = "the image") -> None:
    """Refuse an already decoded (H, W[, C]) array with more than ``max_pixels`` pixels.

    Raises:
        InputError: "too large".
    """
    height, width = array.shape[:2] if array.ndim >= 2 else (array.size, 1)
    if height * width > max_pixels:
        raise InputError(f"{name} is too large: {width}×{height} = {height * width:,} pixels; "
                         f"the limit is {max_pixels:,} pixels ({max_pixels / 1e6:g} megapixels).")


def open_reduced(source: str | os.PathLike | bytes, max_side: int | None = None,
                 budget: DecodeBudget | None = None) -> tuple[Image.Image, ImageHeader]:
    """Open a file whose header passed :func:`check_pixels` and decode it, reduced to a long
    side of at least ``max_side`` when it is larger (None: full size), holding a slot of
    ``budget`` (default: the serving app's, :func:`explorer.media.budget.running_budget`)
    while a large file is decoded. EXIF orientation is not applied yet.

    Returns:
        (the decoded PIL image, its header).

    Raises:
        InputError: the checks of :func:`check_pixels`; "busy" when the budget has no slot.
        OSError, SyntaxError, ValueError, EOFError: PIL could not decode it (damaged).
    """
    header = check_pixels(source)
    factor = max(1, max(header.width, header.height) // max_side) if max_side else 1
    budget = budget or running_budget() or DecodeBudget(slots=1, large_pixels=MAX_PIXELS)
    with budget.slot(header.width * header.height, _name(source)):
        image = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
        if factor > 1 and image.format == "JPEG":  # libjpeg scales by 1/2, 1/4, 1/8 as it reads
            image.draft(image.mode, (header.width // factor, header.height // factor))
        image.load()
        factor = max(1, max(image.size) // max_side) if max_side else 1
        if factor > 1:
            if image.mode in ("P", "PA", "1"):
                image = image.convert("RGBA" if "transparency" in image.info or
                                      image.mode == "PA" else "RGB")
            image = image.reduce(factor)
    return image, header


def _open(source: str | os.PathLike | bytes, max_pixels: int = MAX_PIXELS,
          max_side: int | None = None) -> tuple[Image.Image, list[str], tuple[int, int]]:
    """Open and decode an image file with PIL (:func:`open_reduced`), after its header passed
    :func:`check_pixels`.

    EXIF orientation is applied (a portrait photo stays upright); of an animated or multi-page
    file only the first frame is used, with a notice.

    Returns:
        (the decoded image, notices, the file's (width, height) upright, before any reduction).
    """
    header = check_pixels(source, max_pixels)
    name = _name(source)
    try:
        image, _ = open_reduced(source, max_side)
        if header.orientation != 1:
            image = ImageOps.exif_transpose(image)
    except InputError:  # busy: the message says so
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError) as error:
        raise InputError(f"{name} is not an image this app can read "
                         f"({FORMATS_TEXT} expected).") from error
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise InputError(f"{name} looks like an image but is damaged or truncated "
                         f"({type(error).__name__}).") from None
    size = (header.height, header.width) if header.orientation >= 5 else \
        (header.width, header.height)
    return image, [f"{name} {header.notice}."] if header.notice else [], size


def to_float_array(image: Image.Image) -> tuple[np.ndarray, list[str]]:
    """PIL image of any mode → float array in [0, 1], shape (H, W, C) with C in {1, 3, 4}.

    16-bit and 32-bit integer images are scaled by their type's range; float images are clipped.
    """
    notices: list[str] = []
    if image.mode in ("P", "PA", "LA", "CMYK", "YCbCr", "LAB", "HSV", "1"):
        image = image.convert("RGBA" if "A" in image.mode or "transparency" in image.info
                              else "RGB")
    array = np.asarray(image)
    if array.dtype == np.uint8:
        scaled = array.astype(np.float32) / 255.0
    elif array.dtype.kind in "ui":
        top = 65535.0 if image.mode.startswith("I;16") or array.max() <= 65535 else array.max()
        scaled = array.astype(np.float32) / top
        notices.append(f"{array.dtype.itemsize * 8}-bit image reduced to 8 bits per channel.")
    elif array.dtype.kind == "f":
        scaled = np.nan_to_num(array.astype(np.float32))
        if scaled.max() > 1.0:
            scaled = scaled / scaled.max()
    elif array.dtype == bool:
        scaled = array.astype(np.float32)
    else:
        raise InputError(f"unsupported pixel type {array.dtype}.")
    if scaled.ndim == 2:
        scaled = scaled[..., None]
    return np.clip(scaled, 0.0, 1.0), notices


def _downscale(array: np.ndarray, max_side: int, original: tuple[int, int] | None = None
               ) -> tuple[np.ndarray, str | None]:
    """Shrink an (H, W, C) float image so its long side is at most ``max_side`` (area filter);
    the notice names the ``original`` (width, height) when the file was decoded reduced."""
    height, width = array.shape[:2]
    if max(height, width) <= max_side:
        if original and max(original) > max(height, width):  # reduced while decoding
            return array, (f"Large image ({original[0]}×{original[1]}) downscaled to "
                           f"{width}×{height}.")
        return array, None
    factor = max_side / max(height, width)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    small = cv2.resize(array, size, interpolation=cv2.INTER_AREA)
    small = small.reshape(size[1], size[0], array.shape[2])
    width, height = original or (width, height)
    return small, f"Large image ({width}×{height}) downscaled to {size[0]}×{size[1]}."


def decode_image(source: str | os.PathLike | bytes | np.ndarray | Image.Image,
                 max_side: int = MAX_SIDE) -> DecodedImage:
    """Decode an upload into an RGB uint8 image (plus an alpha mask suggestion and notices).

    Args:
        source: a file path, raw bytes, a PIL image or an array (H, W[, C]).
        max_side: long side limit; larger images are downscaled.

    Raises:
        InputError: not an image, damaged, too large, or an unusable shape.
    """
    if isinstance(source, np.ndarray):
        if source.ndim not in (2, 3) or (source.ndim == 3 and source.shape[2] not in (1, 3, 4)):
            raise InputError(f"expected an image array (H, W[, 1|3|4]), got {source.shape}.")
        check_array_pixels(source)
        pil = Image.fromarray(source if source.dtype != np.float64 else source.astype(np.float32))
        notices: list[str] = []
        original = None
    elif isinstance(source, Image.Image):
        check_array_pixels(np.empty((source.height, source.width, 0)))
        pil, notices, original = source, [], None
    else:
        pil, notices, original = _open(source, max_side=max_side)
    array, reduced = to_float_array(pil)
    notices += reduced
    if min(array.shape[:2]) < 8:
        raise InputError(f"the image is only {array.shape[1]}×{array.shape[0]} pixels; "
                         f"at least 8×8 is needed.")
    array, notice = _downscale(array, max_side, original)
    notices += [notice] if notice else []
    alpha_mask = None
    if array.shape[2] == 4:
        alpha = array[..., 3:]
        array = array[..., :3] * alpha + (1.0 - alpha)  # composite on white
        if 0.0 < float((alpha > 0.5).mean()) < 1.0:
            alpha_mask = alpha[..., 0] > 0.5
            notices.append("Transparent background flattened on white; its alpha channel is "
                           "offered as the foreground mask.")
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    image = (array[..., :3] * 255.0 + 0.5).astype(np.uint8)
    return DecodedImage(image=image, alpha_mask=alpha_mask, notices=notices)


def _resize_mask(mask: np.ndarray, shape: tuple[int, int], name: str) -> np.ndarray:
    """Nearest-neighbour resize of a bool mask to ``shape`` if the aspect ratio agrees."""
    height, width = mask.shape
    if (height, width) == tuple(shape):
        return mask
    if abs(height / width - shape[0] / shape[1]) > 0.02:
        raise InputError(f"{name} is {width}×{height} but the image is {shape[1]}×{shape[0]}; "
                         f"a mask must have the image's size (or at least its proportions).")
    rows = (np.arange(shape[0]) * height / shape[0]).astype(int)
    cols = (np.arange(shape[1]) * width / shape[1]).astype(int)
    return mask[rows][:, cols]


def mask_from_array(array: np.ndarray, shape: tuple[int, int],
                    name: str = "the mask") -> np.ndarray:
    """Foreground (True) from a mask image: its alpha channel if it has a non-trivial one, else
    its brightness (> half of full scale). Resized to ``shape`` if only the resolution differs.

    Args:
        array: (H, W), (H, W, 1|3|4) uint8/uint16/float/bool.
        shape: (height, width) of the image the mask belongs to.

    Raises:
        InputError: wrong shape or different proportions.
    """
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[2] == 4 and array[..., 3].min() < array[..., 3].max():
        values = array[..., 3]
    elif array.ndim == 3 and array.shape[2] in (1, 3, 4):
        values = array[..., :3].max(axis=2)
    elif array.ndim == 2:
        values = array
    else:
        raise InputError(f"{name} has shape {array.shape}; expected a greyscale or colour image.")
    if values.dtype == bool:
        mask = values
    else:
        top = {1: 255.0, 2: 65535.0}.get(values.dtype.itemsize, 1.0) if values.dtype.kind in "ui" \
            else 1.0
        mask = values.astype(np.float32) > top / 2
    return _resize_mask(mask, shape, name)


def decode_mask(source: str | os.PathLike | bytes | np.ndarray,
                shape: tuple[int, int]) -> np.ndarray:
    """Decode an uploaded mask file (or array) into an (H, W) bool foreground mask of ``shape``.

    Raises:
        InputError: not an image, damaged, or sized for another image.
    """
    if isinstance(source, np.ndarray):
        check_array_pixels(source, name="the mask")
        return mask_from_array(source, shape)
    name = _name(source)
    pil, _, _ = _open(source, max_side=max(shape))  # reduced towards the image's size
    array = np.asarray(pil.convert("RGBA") if pil.mode in ("P", "LA", "PA", "1") else pil)
    return mask_from_array(array, shape, name)
