"""Two Gradio widgets with safer file handling than the stock ones; they look and behave the same.

* :func:`checked_image_editor` — a ``gr.ImageEditor`` that reads each file's header before Gradio
  decodes it (background, layers, composite), refusing images over
  :data:`explorer.media.decode.MAX_PIXELS` as "too large" in microseconds. The stock editor decodes
  whatever it is sent before any event function runs, so a 10000 × 10000 PNG of 300 KB sent to
  ``/explain`` cost seconds and gigabytes. EXIF orientation is applied, and a multi-frame file
  gets a notice.
* :func:`output_image` — a ``gr.Image`` for results: an array is encoded once as PNG and written
  atomically under a name made of its content's hash (:func:`stored_png`), so an identical image
  in concurrent answers (the colour bar, the same overlay twice) is written once and never
  rewritten while a client reads it; a repeated image is not even re-encoded (:class:`PngStore`).
  (The stock widget rewrites the same cache file on every answer, and a concurrent reader could
  see it half written.)

Both are stock widgets with one method replaced on the instance (a subclass of a Gradio component
would make Gradio write a ``.pyi`` stub next to this file), so the front end is unchanged.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import cv2
import gradio as gr
import numpy as np
from gradio.data_classes import FileData
from PIL import Image

from explorer.errors import InputError
from explorer.media.decode import check_pixels
from isnet.io.atomic import write_atomically

IMAGE_FOLDER = "isnet-images"
"""Sub-folder of Gradio's cache holding :class:`OutputImage` files."""

_ORIENTATION = {2: (Image.Transpose.FLIP_LEFT_RIGHT,), 3: (Image.Transpose.ROTATE_180,),
                4: (Image.Transpose.FLIP_TOP_BOTTOM,), 5: (Image.Transpose.TRANSPOSE,),
                6: (Image.Transpose.ROTATE_270,), 7: (Image.Transpose.TRANSVERSE,),
                8: (Image.Transpose.ROTATE_90,)}


def orient(array: np.ndarray, orientation: int) -> np.ndarray:
    """An (H, W[, C]) array turned upright according to EXIF ``orientation`` (1–8)."""
    steps = _ORIENTATION.get(int(orientation), ())
    if not steps:
        return array
    image = Image.fromarray(array)
    for step in steps:
        image = image.transpose(step)
    return np.asarray(image)


def checked_image_editor(**options: Any) -> gr.ImageEditor:
    """A ``gr.ImageEditor`` (same options) that refuses too-large images before decoding them.

    Each file the editor receives (background, layers, composite) has its header read first;
    then Gradio decodes it as usual, and EXIF orientation is applied to arrays.
    """
    editor = gr.ImageEditor(**options)
    stock = editor.convert_and_format_image

    def convert_and_format_image(file: FileData | None | bytes,
                                 flatten_on_white: bool = False) -> Any:
        if file is None:
            return None
        if isinstance(file, FileData):
            source, name = file.path, Path(file.orig_name or "the image").name
        else:
            source, name = bytes(file), "the image"
        try:
            header = check_pixels(source)
        except InputError as error:
            raise gr.Error(str(error), title="Cannot do that") from None
        if header.notice:
            gr.Warning(f"{name} {header.notice}.")
        value = stock(file, flatten_on_white)
        if isinstance(value, np.ndarray) and header.orientation != 1:
            value = orient(value, header.orientation)
        return value

    editor.convert_and_format_image = convert_and_format_image  # this widget only
    return editor


class PngStore:
    """PNG files of arrays in one folder, each named by its content's hash, written once.

    A file is written atomically the first time its pixels are seen; later calls with the same
    pixels skip the encoding (a small LRU maps the array's digest to its file), only touch the
    file (so a cache cleaner measuring age keeps it) and return the same path.

    Args:
        folder: where the files live.
        capacity: arrays remembered by digest.
    """

    def __init__(self, folder: str | os.PathLike, capacity: int = 256) -> None:
        self.folder, self.capacity = Path(folder), capacity
        self._known: OrderedDict[str, Path] = OrderedDict()
        self._lock = threading.Lock()

    def path(self, array: np.ndarray) -> str:
        """The path of a PNG of ``array`` ((H, W[, 3|4]) uint8; other dtypes are clipped)."""
        pixels = np.ascontiguousarray(array if array.dtype == np.uint8
                                      else np.clip(array, 0, 255).astype(np.uint8))
        digest = hashlib.sha1(f"{pixels.shape}".encode() + pixels.tobytes()).hexdigest()
        with self._lock:
            known = self._known.get(digest)
            if known is not None:
                self._known.move_to_end(digest)
        if known is not None:
            with contextlib.suppress(FileNotFoundError):
                os.utime(known)
                return str(known)
        path = Path(stored_png(pixels, self.folder))
        with self._lock:
            self._known[digest] = path
            while len(self._known) > self.capacity:
                self._known.popitem(last=False)
        return str(path)


def stored_png(array: np.ndarray, folder: str | os.PathLike) -> str:
    """The path of a PNG of ``array`` in ``folder``, named by its encoded content's hash.

    The file is written atomically the first time; later calls with the same pixels only touch
    it and return the same path. (:class:`PngStore` also skips the encoding.)

    Args:
        array: (H, W, 3|4) or (H, W) uint8 (other dtypes are clipped to [0, 255]).
        folder: where the files live.
    """
    pixels = np.ascontiguousarray(array if array.dtype == np.uint8
                                  else np.clip(array, 0, 255).astype(np.uint8))
    if pixels.ndim == 3 and pixels.shape[2] == 3:
        pixels = pixels[..., ::-1]  # OpenCV writes BGR
    elif pixels.ndim == 3 and pixels.shape[2] == 4:
        pixels = pixels[..., [2, 1, 0, 3]]
    ok, encoded = cv2.imencode(".png", pixels, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise ValueError(f"cannot encode an image of shape {array.shape} as PNG")
    data = encoded.tobytes()
    path = Path(folder) / f"{hashlib.sha256(data).hexdigest()[:40]}.png"
    if path.exists():
        try:
            os.utime(path)
            return str(path)
        except FileNotFoundError:  # removed by a cleaner just now: write it again
            pass
    with contextlib.suppress(FileExistsError):  # a concurrent answer wrote the same first
        write_atomically(path, data)
    return str(path)


def output_image(**options: Any) -> gr.Image:
    """A ``gr.Image`` (same options) for results: each distinct array is written once,
    atomically, by a :class:`PngStore` in Gradio's cache, and its path is what Gradio serves."""
    image = gr.Image(**options)
    stock = image.postprocess
    store = PngStore(Path(image.GRADIO_CACHE) / IMAGE_FOLDER)

    def postprocess(value: Any) -> Any:
        if isinstance(value, np.ndarray):
            value = store.path(value)
        return stock(value)

    image.postprocess = postprocess  # this widget only
    return image
