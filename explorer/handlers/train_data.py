"""The fine-tuning set: the bundled samples or an upload, checked and split (Fine-tune tab).

An upload is a zip of ``<class>/<name>.png`` + ``<name>.mask.png`` folders, or loose files named
``<class>_<name>.png`` + ``<class>_<name>.mask.png``; :func:`isnet.data.folders.load_image_folder`
reads both: the pixels to decode are bounded from the headers first
(:attr:`isnet.io.limits.UploadLimits.max_decoded_pixels`), large images are decoded reduced, and
the reading ends between two files once the run's stop event is set. Pictures reach the model's
input size as its evaluation does (:func:`explorer.media.tensors.resize_mode`): torchvision's
resize and centre crop for a model with ImageNet metadata, else the whole picture squeezed.
Every refusal is an :class:`explorer.errors.InputError` naming what to fix.
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import torch

import isnet
from explorer.errors import InputError
from explorer.media.decode import decode_image, decode_mask
from explorer.media.tensors import mask_tensor, model_tensor
from explorer.state import AppContext
from isnet.data.folders import ReadingStopped, load_image_folder
from isnet.io.atomic import write_with
from isnet.io.limits import UploadLimits

MAX_DECODED_PIXELS = 400_000_000
"""Pixels (images and masks, from their headers) one fine-tuning upload may ask to decode: ten
pairs of 40-megapixel images at most."""

class StoppedReading(InputError):
    """The run's stop event was set while the upload was read (nothing was trained)."""


def samples_set(ctx: AppContext, size: int, class_names: list[str],
                resize: str = "squeeze") -> isnet.ImageSet:
    """The bundled samples that have a mask and a known class, at ``size`` × ``size``
    (``resize``: "squeeze" or "crop", as the model's evaluation).

    Raises:
        InputError: no sample has both a mask and one of ``class_names``.
    """
    images, masks, labels = [], [], []
    for sample in ctx.samples:
        if sample.mask_path is None or sample.label not in class_names:
            continue
        image = decode_image(sample.image_path).image
        mask = decode_mask(sample.mask_path, image.shape[:2])
        images.append(model_tensor(image, size, resize)[0])  # (3, S, S)
        masks.append(mask_tensor(mask, size, resize)[0])  # (1, S, S)
        labels.append(class_names.index(sample.label))
    if not images:
        raise InputError("No bundled sample has both a mask and a class of this model.")
    return isnet.ImageSet(torch.stack(images), torch.stack(masks), torch.tensor(labels),
                    list(class_names))


def uploaded_set(ctx: AppContext, session: str | None, paths: list[str], size: int,
                 stop: threading.Event | None = None,
                 resize: str = "squeeze") -> tuple[isnet.ImageSet, list[str]]:
    """An ImageSet (and the importer's problem list) from an uploaded zip or loose files.

    Args:
        stop: the run's stop event; once set, the reading ends before the next file.
        resize: "squeeze" or "crop" (:func:`explorer.media.tensors.resize_mode`).

    Raises:
        InputError: nothing uploaded, badly named loose files, too many pixels to decode,
            or nothing usable.
        StoppedReading: (an InputError) ``stop`` was set while the files were read.
    """
    if not paths:
        raise InputError("Upload a zip (or the files of a folder), or choose the samples.")
    if len(paths) == 1 and str(paths[0]).lower().endswith(".zip"):
        source = Path(paths[0])
    else:
        source = _folder_from_loose_files(ctx.session_dir(session) / f"upload-{time.time_ns()}",
                                          paths)
    limits = UploadLimits(max_decoded_pixels=MAX_DECODED_PIXELS)
    try:
        image_set, problems = load_image_folder(
            source, size=size, limits=limits, resize=resize,
            should_stop=None if stop is None else stop.is_set)
    except ReadingStopped:
        raise StoppedReading("Stopped while reading the uploaded images; nothing was trained.") \
            from None
    except ValueError as error:
        raise InputError(f"Cannot use this set: {error}") from error
    return image_set, list(problems)


def _folder_from_loose_files(folder: Path, paths: list[str]) -> Path:
    """Lay loose uploads out as ``folder/<class>/<name>``: the class is the file name's part
    before the first underscore (``cat_01.png`` and ``cat_01.mask.png`` → class ``cat``).
    Every file stays inside ``folder``: a class part such as ``..`` is refused.

    Raises:
        InputError: a file name without an underscore, or whose class part is ``.``, ``..``
            or starts with a dot.
    """
    for path in paths:
        name = Path(path).name
        class_name = name.split("_", 1)[0]
        if "_" not in name.strip("_") or class_name.strip(".") == "" or \
                class_name.startswith(".") or Path(class_name).name != class_name:
            raise InputError(f"{name}: loose files must be named <class>_<name>.png with masks "
                             f"<class>_<name>.mask.png, the class a plain name (not starting "
                             f"with a dot), or upload a zip of class folders.")
        target = folder / class_name
        target.mkdir(parents=True, exist_ok=True)
        write_with(target / name, lambda temporary, source=path: shutil.copyfile(source,
                                                                                 temporary))
    return folder


def check_set(image_set: isnet.ImageSet, limit: int) -> None:
    """Refuse sets a fine-tune cannot learn from (one class, too many images, no foreground)."""
    labels = image_set.labels
    if len(labels) == 0:
        raise InputError("The set is empty.")
    if len(labels) > limit:
        raise InputError(f"The set has {len(labels)} images; the limit here is {limit}.")
    if len(torch.unique(labels)) < 2:
        raise InputError("The set has only one class; a classifier needs at least two.")
    if float(image_set.masks.sum()) == 0:
        raise InputError("Every mask in the set is empty.")


def split(image_set: isnet.ImageSet, seed: int = 0,
          val_fraction: float = 0.2) -> tuple[isnet.ImageSet, isnet.ImageSet]:
    """(train, val) ImageSets; a set of fewer than 5 images is used for both."""
    n = len(image_set.labels)
    if n < 5:
        return image_set, image_set
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    cut = max(1, int(round(n * val_fraction)))

    def take(index):
        return isnet.ImageSet(image_set.images[index], image_set.masks[index],
                              image_set.labels[index], list(image_set.class_names))

    return take(order[cut:]), take(order[:cut])
