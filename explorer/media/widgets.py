"""Two Gradio widgets with safer file handling than the stock ones; they look and behave the same.

* :func:`checked_image_editor` — a ``gr.ImageEditor`` that reads each file's header before Gradio
  decodes it (background, layers, composite), refusing images over
  :data:`explorer.media.decode.MAX_PIXELS` as "too large" in microseconds. The stock editor decodes
  whatever it is sent before any event function runs, so a 10000 × 10000 PNG of 300 KB sent to
  ``/explain`` cost seconds and gigabytes. EXIF orientation is applied, and a multi-frame file
  gets a notice.
* :func:`output_image` — a ``gr.Image`` for results: an array is encoded once as PNG and written
  atomically under a name made of its content's hash (:func:`explorer.media.stored.stored_png`),
  so an identical image in concurrent answers (the colour bar, the same overlay twice) is
  written once, never re-encoded and never rewritten while a client reads it. (The stock widget
  rewrites the same cache file on every answer, and a concurrent reader could see it half
  written.)

Both are stock widgets with one method replaced on the instance (a subclass of a Gradio component
would make Gradio write a ``.pyi`` stub next to this file), so the front end is unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
from gradio.data_classes import FileData
from PIL import Image

from explorer.errors import InputError
from explorer.media.decode import check_pixels
from explorer.media.stored import stored_png

IMAGE_FOLDER = "isnet-images"
"""Sub-folder of Gradio's cache holding the pictures of :func:`output_image` widgets."""

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


def output_image(**options: Any) -> gr.Image:
    """A ``gr.Image`` (same options) for results: each distinct array is written once,
    atomically, in Gradio's cache (:func:`explorer.media.stored.stored_png`), and its path is
    what Gradio serves."""
    image = gr.Image(**options)
    stock = image.postprocess
    folder = Path(image.GRADIO_CACHE) / IMAGE_FOLDER

    def postprocess(value: Any) -> Any:
        if isinstance(value, np.ndarray):
            value = stored_png(value, folder)
        return stock(value)

    image.postprocess = postprocess  # this widget only
    return image
