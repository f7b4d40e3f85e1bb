"""Gradio widgets with safer input handling than the stock ones; they look and behave the same.

* :func:`checked_image_editor` — a ``gr.ImageEditor`` that reads each file's header before Gradio
  decodes it (background, layers, composite), refusing images over
  :data:`explorer.media.decode.MAX_PIXELS` as "too large" in microseconds. The stock editor decodes
  whatever it is sent before any event function runs, so a 10000 × 10000 PNG of 300 KB sent to
  ``/explain`` cost seconds and gigabytes. One editor value is bounded as a whole too, before
  any file of it is decoded: at most :data:`MAX_EDITOR_LAYERS` layers and
  :data:`MAX_EDITOR_PIXELS` pixels over its background, layers and composite (sixteen
  transparent 40-megapixel layers of 187 KB each once took 2.6 GB). A file more than twice
  :data:`explorer.media.decode.MAX_SIDE` on its long side is decoded reduced, straight to about
  that side (:func:`explorer.media.decode.open_reduced`, holding a slot of the app's decode
  budget), never at full size. EXIF orientation is applied, and a multi-frame file gets a
  notice.
* :func:`output_image` — a ``gr.Image`` for results: an array is encoded once as PNG and written
  atomically under a name made of its content's hash (:func:`explorer.media.stored.stored_png`),
  so an identical image in concurrent answers (the colour bar, the same overlay twice) is
  written once, never re-encoded and never rewritten while a client reads it. (The stock widget
  rewrites the same cache file on every answer, and a concurrent reader could see it half
  written.)

* :func:`field_checked_number` — a ``gr.Number`` whose bounds are checked by the app (a
  message at the field) instead of by Gradio's preprocessing (an error toast that marks every
  output of the event).

* :func:`accepting_old_spellings` — a ``gr.Radio`` or ``gr.Dropdown`` with ``(label, id)``
  choices that still takes the old label spellings its API clients sent before (logged as
  deprecated, :mod:`explorer.handlers.spellings`) instead of Gradio's "not in the list of
  choices" refusal.

All are stock widgets with one method replaced on the instance (a subclass of a Gradio component
would make Gradio write a ``.pyi`` stub next to this file), so the front end is unchanged.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
from gradio import image_utils
from gradio.data_classes import FileData
from PIL import Image

from explorer.errors import InputError
from explorer.handlers.spellings import current_spelling
from explorer.media.decode import MAX_PIXELS, MAX_SIDE, check_pixels, open_reduced
from explorer.media.stored import stored_png

MAX_EDITOR_LAYERS = 4
"""Most layers one editor value may hold (the explorer's editor sends one; a mask loaded with
the image is one more)."""
MAX_EDITOR_PIXELS = 4 * MAX_PIXELS
"""Most pixels one editor value may hold over its background, layers and composite together:
a largest image, its composite and two layers of its size."""

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
        if max(header.width, header.height) > 2 * MAX_SIDE:
            value = _reduced_value(editor, source, name, flatten_on_white)
        else:
            try:
                value = stock(file, flatten_on_white)
            except (OSError, SyntaxError, ValueError, EOFError):  # never the server's path
                raise gr.Error(f"{name} looks like an image but is damaged or truncated.",
                               title="Cannot do that") from None
        if isinstance(value, np.ndarray) and header.orientation != 1:
            value = orient(value, header.orientation)
        return value

    stock_preprocess = editor.preprocess

    def preprocess(payload: Any) -> Any:
        if payload is not None:
            try:
                check_editor_value(editor, payload)
            except InputError as error:
                raise gr.Error(str(error), title="Cannot do that") from None
        try:
            return stock_preprocess(payload)
        except gr.Error:
            raise
        except Exception:  # noqa: BLE001 — Gradio's own messages name server paths
            raise gr.Error("The image editor's value could not be read: an image in it is "
                           "damaged or not an image.", title="Cannot do that") from None

    editor.convert_and_format_image = convert_and_format_image  # this widget only
    editor.preprocess = preprocess
    return editor


def _reduced_value(editor: gr.ImageEditor, source: str | bytes, name: str,
                   flatten_on_white: bool) -> Any:
    """A large editor file decoded reduced (:func:`explorer.media.decode.open_reduced`), then
    made into the editor's value as the stock widget makes it (flattened on white when asked,
    in the editor's image mode and type)."""
    try:
        image, _ = open_reduced(source, MAX_SIDE)
    except InputError as error:
        raise gr.Error(str(error), title="Cannot do that") from None
    except (OSError, SyntaxError, ValueError, EOFError):
        raise gr.Error(f"{name} looks like an image but is damaged or truncated.",
                       title="Cannot do that") from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if flatten_on_white and editor.image_mode not in ("RGBA", "LA", "PA") and \
                ("A" in image.getbands() or "transparency" in image.info):
            image = Image.alpha_composite(Image.new("RGBA", image.size, "white"),
                                          image.convert("RGBA"))
        image = image.convert(editor.image_mode)
    return image_utils.format_image(image, editor.type, editor.GRADIO_CACHE,
                                    name=Path(name).stem or "image", format="png")


def check_editor_value(editor: gr.ImageEditor, payload: Any) -> None:
    """Refuse an editor value with more than :data:`MAX_EDITOR_LAYERS` layers or more than
    :data:`MAX_EDITOR_PIXELS` pixels in all, from the files' headers (nothing is decoded).

    Raises:
        InputError: too many layers, too many pixels in all, or a file that is no image.
    """
    if getattr(payload, "id", None) is not None:  # the front end's blobs, uploaded beforehand
        cached = editor.blob_storage.get(payload.id)
        background, layers, composite = ((cached.background, cached.layers, cached.composite)
                                         if cached else (None, [], None))
    else:
        background, layers, composite = payload.background, payload.layers, payload.composite
    layers = [layer for layer in layers or [] if layer is not None]
    if len(layers) > MAX_EDITOR_LAYERS:
        raise InputError(f"The image editor sent {len(layers)} layers; at most "
                         f"{MAX_EDITOR_LAYERS} are accepted.")
    total = 0
    for file in [background, *layers, composite]:
        if file is None:
            continue
        source = file.path if isinstance(file, FileData) else bytes(file)
        header = check_pixels(source)
        total += header.width * header.height
        if total > MAX_EDITOR_PIXELS:
            raise InputError(f"The image editor's background and layers are too large "
                             f"together: over {MAX_EDITOR_PIXELS / 1e6:.0f} megapixels in all "
                             f"(at most {MAX_EDITOR_LAYERS} layers as large as the image).")


def field_checked_number(**options: Any) -> gr.Number:
    """A ``gr.Number`` (same options) whose ``minimum``/``maximum`` stay in the page (the
    browser's arrows stop there) but are not enforced by Gradio's preprocessing, which raises
    a generic error toast and marks every output of the event red. The event functions and a
    validator judge the value instead, so a bad value is named at its field (``gr.validate``)
    and nothing else changes."""
    number = gr.Number(**options)

    def preprocess(payload: Any) -> Any:
        if payload is None:
            return None
        return number.round_to_precision(payload, number.precision)  # the stock one, unbounded

    number.preprocess = preprocess  # this widget only
    return number


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


def accepting_old_spellings(widget: gr.Radio | gr.Dropdown, old_spellings: dict[str, str],
                            what: str) -> gr.Radio | gr.Dropdown:
    """``widget`` (a Radio or a Dropdown) with its old spellings (label → id) read as their
    ids before Gradio checks the value against the choices; each use is logged as deprecated,
    naming ``what``. A widget that an event updates with ``gr.update(choices=...)`` is
    rebuilt by Gradio for that session without this: use ``allow_custom_value`` there."""
    stock = widget.preprocess

    def preprocess(payload: Any) -> Any:
        return stock(current_spelling(payload, old_spellings, what))

    widget.preprocess = preprocess  # this widget only
    return widget
