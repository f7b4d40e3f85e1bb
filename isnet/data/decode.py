"""Decoding one image file: header checks first, then OpenCV, EXIF orientation, RGB in [0, 1].

Both ways into the engine use this: :func:`isnet.data.folders.load_image_folder` (a bounded
upload decoded at once) and :class:`isnet.data.streaming.StreamingDataset` (a dataset of any size
decoded in DataLoader workers). The header is read before any pixel is decoded
(:func:`isnet.io.limits.check_image_header`), so an image over the pixel limit is refused in
microseconds, and a format outside :data:`isnet.io.limits.IMAGE_FORMATS` (PPM, ICO, TGA, …) is
refused. Grey (X-ray), RGB, RGBA and 16-bit files are read; alpha is dropped; 16-bit values are
scaled by 65535, 8-bit by 255.

A caller that will shrink the image anyway passes ``reduce_to`` (the side it needs): a large image
is then decoded at a half, a quarter or an eighth of its size (OpenCV's ``IMREAD_REDUCED_*``;
libjpeg scales while it decodes, other formats are reduced right after), never smaller than
``reduce_to`` on its short side, as 8-bit BGR or grey (alpha and the 16-bit depth go).
"""

from __future__ import annotations

import cv2
import numpy as np

from isnet.io.limits import DEFAULT_MAX_PIXELS, FormatError, LimitError, check_image_header

REDUCED_FLAGS = {(False, 2): cv2.IMREAD_REDUCED_COLOR_2, (False, 4): cv2.IMREAD_REDUCED_COLOR_4,
                 (False, 8): cv2.IMREAD_REDUCED_COLOR_8, (True, 2): cv2.IMREAD_REDUCED_GRAYSCALE_2,
                 (True, 4): cv2.IMREAD_REDUCED_GRAYSCALE_4,
                 (True, 8): cv2.IMREAD_REDUCED_GRAYSCALE_8}
"""OpenCV's reduced-decoding flag for (grey, factor)."""


class DecodeError(ValueError):
    """A file that cannot be used as an image (or a mask); the message names the file."""


def reduction_factor(width: int, height: int, reduce_to: int | None) -> int:
    """The largest of 1, 2, 4, 8 that keeps the short side of a ``width × height`` image at
    least ``reduce_to`` pixels (1 when ``reduce_to`` is None)."""
    if not reduce_to:
        return 1
    factor = 1
    while factor < 8 and min(width, height) // (factor * 2) >= reduce_to:
        factor *= 2
    return factor


def decode_image(raw: bytes, name: str, grey: bool = False,
                 max_pixels: int = DEFAULT_MAX_PIXELS,
                 reduce_to: int | None = None) -> tuple[np.ndarray, str | None]:
    """Decode an image file's bytes, upright by its EXIF orientation.

    Args:
        raw: the file's bytes.
        name: the file's name, for messages.
        grey: decode as one grey channel (masks).
        max_pixels: largest ``width × height``, checked on the header before decoding.
        reduce_to: the short side the caller needs; a larger image is decoded reduced
            (:func:`reduction_factor`), as 8-bit. None decodes at full size.

    Returns:
        (the array as OpenCV decodes it: (H, W) grey or (H, W, 3|4) BGR[A], uint8 or uint16;
        a notice for the user, e.g. "only the first frame is used", or None).

    Raises:
        LimitError: the header declares more than ``max_pixels`` pixels.
        DecodeError: not an image, or damaged.
    """
    try:
        header = check_image_header(raw, max_pixels, name=name)
    except LimitError:
        raise
    except FormatError as error:
        raise DecodeError(str(error)) from None
    except ValueError:
        raise DecodeError(f"{name}: cannot be read as an image") from None
    factor = reduction_factor(header.width, header.height, reduce_to)
    flags = REDUCED_FLAGS[(grey, factor)] if factor > 1 else \
        (cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_UNCHANGED)
    flags |= cv2.IMREAD_IGNORE_ORIENTATION
    image = cv2.imdecode(np.frombuffer(raw, np.uint8), flags)
    if image is None:
        raise DecodeError(f"{name}: cannot be read as an image")
    notice = f"{name}: {header.notice}" if header.notice else None
    return orient(image, header.orientation), notice


def orient(image: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1–8) to an image array, as ``PIL.ImageOps.exif_transpose``.

    Shapes: (H, W[, C]) → (H, W[, C]), or (W, H[, C]) for orientations 5–8.
    """
    swapped = image.swapaxes(0, 1)  # (W, H[, C]): the transpose
    return {2: image[:, ::-1], 3: image[::-1, ::-1], 4: image[::-1],
            5: swapped, 6: swapped[:, ::-1], 7: swapped[::-1, ::-1],
            8: swapped[::-1]}.get(orientation, image).copy()


def to_rgb(image: np.ndarray) -> np.ndarray:
    """Any decoded image (grey, BGR, BGRA; 8 or 16 bit) as float32 RGB (H, W, 3) in [0, 1]."""
    scale = 65535.0 if image.dtype == np.uint16 else 255.0
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    elif image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    else:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return image.astype(np.float32) / scale


def binary_mask(mask: np.ndarray) -> tuple[np.ndarray, str | None]:
    """A decoded grey mask as bool (H, W), 1 = object, and a notice when it was not binary.

    Values in {0, 1} or {0, 255} (or {0, 65535}) are taken as they are; any other grey levels
    are thresholded at half the range and the notice says so.
    """
    top = 65535 if mask.dtype == np.uint16 else 255
    values = np.unique(mask)
    notice = None
    if not set(values.tolist()) <= {0, 1, top}:
        notice = (f"not binary ({len(values)} grey levels); thresholded at {(top + 1) // 2} - "
                  f"save it with only black and white to silence this")
    return ((mask >= (top + 1) // 2) if values.max() > 1 else (mask >= 1)), notice
