"""The image and its foreground mask, before any model sees them (the Explain tab's left column).

Each function returns a :class:`LoadedImage`: the clean picture, the mask to show in the editor,
and anything the user should know. Refusals are :class:`explorer.errors.InputError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from explorer.errors import InputError
from explorer.media import masking
from explorer.media.decode import decode_image, decode_mask
from explorer.media.editor import EditorInput
from explorer.state import AppContext


@dataclass
class LoadedImage:
    """An image ready for the mask editor.

    Attributes:
        image: (H, W, 3) uint8.
        mask: (H, W) bool foreground, or None.
        notices: things the user should know (downscaled, degenerate mask, …).
        label: the true class name of a bundled sample, when known.
        name: where the image came from (the uploaded file's name, the sample's name); None
            when it is the editor's image kept from before.
        mask_source: where the mask came from (a mask file's name, "alpha channel of …",
            "threshold", "grabcut"); None when there is none or it is kept from before.
    """

    image: np.ndarray
    mask: np.ndarray | None = None
    notices: list[str] = field(default_factory=list)
    label: str | None = None
    name: str | None = None
    mask_source: str | None = None


def load_upload(ctx: AppContext, path: str | None) -> LoadedImage:
    """Decode an uploaded image; a non-trivial alpha channel becomes the mask.

    Raises:
        InputError: no file, not an image, damaged, too large.
    """
    if not path:
        raise InputError("No image uploaded.")
    decoded = decode_image(path, max_side=ctx.limits.max_side)
    name = Path(path).name
    return LoadedImage(decoded.image, decoded.alpha_mask, decoded.notices, name=name,
                       mask_source=None if decoded.alpha_mask is None
                       else f"alpha channel of {name}")


def load_sample(ctx: AppContext, name: str) -> LoadedImage:
    """A bundled sample with its mask (if any) and true class (if known)."""
    sample = ctx.sample(name)
    decoded = decode_image(sample.image_path, max_side=ctx.limits.max_side)
    mask = decode_mask(sample.mask_path, decoded.image.shape[:2]) if sample.mask_path else None
    return LoadedImage(decoded.image, mask, label=sample.label, name=f"sample {sample.name}",
                       mask_source=None if mask is None else f"sample {sample.name}'s mask")


def mask_file(editor: EditorInput, path: str | None) -> LoadedImage:
    """The editor's image with an uploaded mask file for it (white = object).

    Raises:
        InputError: no image, no file, not an image, or sized for another image.
    """
    image, _ = editor.read()
    if not path:
        raise InputError("No mask file uploaded.")
    return LoadedImage(image, decode_mask(path, image.shape[:2]), mask_source=Path(path).name)


def auto_mask(editor: EditorInput, method: str) -> LoadedImage:
    """The editor's image with an automatic mask ("threshold" or "grabcut"), plus a warning
    when the mask is degenerate.

    GrabCut starts from the current mask when there is one (so it refines a rough stroke),
    otherwise from a rectangle just inside the border.
    """
    image, rough = editor.read()
    mask = masking.auto_mask(image, method, rough)
    warning = masking.describe_mask(mask)[1]
    return LoadedImage(image, mask, [warning] if warning else [], mask_source=method)


def clear_mask(editor: EditorInput) -> LoadedImage:
    """The editor's image without a mask."""
    image, _ = editor.read()
    return LoadedImage(image, None)
