"""The Audit tab's image sets, each image named: a bundled split, an uploaded zip, or a folder.

:func:`read_set` returns an :class:`AuditSet`: the images at the first model's input size, and
for every image its file name (``"biased #73"`` for a bundled image, ``"coat/img_3.png"`` for a
file) and whether it carries the planted mark (bundled splits; unknown for files). So every
export, every gallery caption and the per-image CSV lead back to a file.

An upload is unpacked into the session's folder (within :class:`isnet.io.limits.UploadLimits`,
unsafe member names refused) and read like a local folder with
:func:`isnet.data.dataset_splits.open_evaluation` (class folders, ``images/`` + ``masks/`` or
a CSV manifest). Class folders are matched to the first model's class names forgivingly
(:mod:`isnet.data.layouts.class_matching`: case, ``/`` ↔ ``-`` ``_`` and spaces, an optional
``classes.csv``); the :class:`~isnet.data.layouts.class_matching.ClassMatch` says which folder
became which class. A set none of whose folders match keeps its own classes (no accuracy).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import torch
import torch.nn.functional as F

import isnet
from explorer.errors import InputError
from isnet.data.catalogue import Catalogue
from isnet.data.layouts import read_layout
from isnet.data.layouts.class_matching import (
    MAPPING_FILE,
    ClassMatch,
    match_classes,
    read_mapping,
)
from isnet.data.streaming import Skipped, StreamingDataset
from isnet.data.transforms import Preprocessing
from isnet.io.atomic import write_atomically
from isnet.io.limits import UploadLimits, check_image_header, read_zip_members
from isnet.training.experiment import ExperimentData, evaluation_set

UNKNOWN, CLEAN, MARKED = -1, 0, 1
"""Per-image mark flags: unknown (a file), clean, carries the planted class mark."""


@dataclass
class AuditSet:
    """An audit's images with their names.

    Attributes:
        images: the :class:`isnet.ImageSet` (N images at the first model's size).
        names: (N,) how each image is named (its file, or ``"<split> #<index>"``).
        marked: (N,) int8, :data:`MARKED`, :data:`CLEAN` or :data:`UNKNOWN`.
        problems: files left out, one line each.
        match: how the set's class folders matched the model's classes (None: bundled, or a
            set that keeps its own classes).
    """

    images: isnet.ImageSet
    names: list[str]
    marked: np.ndarray
    problems: list[str] = field(default_factory=list)
    match: ClassMatch | None = None

    def __len__(self) -> int:
        return len(self.images)


def bundled_set(split: str, limit: int) -> AuditSet:
    """``limit`` images of a bundled split ("mixed": the first half marked, the second the
    same images clean), named ``"<split> #<index in the test file>"``."""
    if split != "mixed":
        images = evaluation_set(ExperimentData(test_limit=limit), split)
        flag = CLEAN if split == "unbiased" else MARKED
        return AuditSet(images, [f"{split} #{i}" for i in range(len(images))],
                        np.full(len(images), flag, np.int8))
    half = max(1, limit // 2)
    marked = evaluation_set(ExperimentData(test_limit=half), "biased")
    clean = evaluation_set(ExperimentData(test_limit=half), "unbiased")
    images = isnet.ImageSet(torch.cat([marked.images, clean.images]),
                            torch.cat([marked.masks, clean.masks]),
                            torch.cat([marked.labels, clean.labels]), list(marked.class_names))
    names = ([f"biased #{i}" for i in range(len(marked))]
             + [f"unbiased #{i}" for i in range(len(clean))])
    return AuditSet(images, names, np.r_[np.full(len(marked), MARKED, np.int8),
                                         np.full(len(clean), CLEAN, np.int8)])


def at_size(image_set: isnet.ImageSet, size: int) -> isnet.ImageSet:
    """The set resized to ``size`` (area for images, nearest for masks); unchanged if equal."""
    if image_set.images.shape[-1] == size:
        return image_set
    images = F.interpolate(image_set.images.float(), size=(size, size), mode="area")
    masks = F.interpolate(image_set.masks.float(), size=(size, size), mode="nearest")
    return isnet.ImageSet(images, masks, image_set.labels, list(image_set.class_names))


def unpack_upload(source: Path, folder: Path, limits: UploadLimits = UploadLimits()) -> Path:
    """Unpack an uploaded zip into a fresh ``folder/upload-…`` (a zip holding one top folder
    is unwrapped); returns it.

    Raises:
        InputError: not a readable zip, over the limits, or a member that climbs out.
    """
    try:
        members = read_zip_members(source, limits, select=_wanted)
    except ValueError as error:
        raise InputError(f"Cannot use this zip: {error}") from error
    paths = {PurePosixPath(name): data for name, data in members.items()}
    tops = {path.parts[0] for path in paths}
    if len(tops) == 1 and all(len(path.parts) >= 2 for path in paths) \
            and not any(len(p.parts) == 2 and _is_image(p) for p in paths):
        paths = {PurePosixPath(*path.parts[1:]): data for path, data in paths.items()}
    target = folder / f"upload-{time.time_ns()}"
    for path, data in paths.items():
        if any(part == ".." for part in path.parts) or path.is_absolute() or "\\" in str(path):
            raise InputError(f"{path}: an absolute or climbing path inside the zip.")
        destination = target.joinpath(*path.parts)
        destination.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(destination, data)
    target.mkdir(parents=True, exist_ok=True)
    return target


def _wanted(name: str) -> bool:
    """Zip members worth unpacking: no hidden files or macOS debris, nothing unsafe."""
    path = PurePosixPath(name)
    return not (path.is_absolute() or ".." in path.parts or "\\" in name
                or any(part.startswith(".") or part == "__MACOSX" for part in path.parts))


def _is_image(path: PurePosixPath) -> bool:
    return path.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def catalogue_in_classes(root: Path, class_names: list[str]
                         ) -> tuple[Catalogue, ClassMatch | None]:
    """A folder's (or unpacked upload's) files with its classes matched to ``class_names``
    (:mod:`isnet.data.layouts.class_matching`); a set none of whose classes match keeps its
    own, with no match.

    Raises:
        InputError: nothing usable in it, or a bad ``classes.csv``.
    """
    try:
        own = read_layout(root)
        match = match_classes(own.class_names, class_names, read_mapping(root))
    except ValueError as error:
        raise InputError(f"Cannot use this set: {error}") from error
    if not match.any:
        return own, None
    index = {name: position for position, name in enumerate(class_names)}
    new_label = np.array([index.get(match.matched.get(c, ""), -1) for c in own.class_names])
    labels = new_label[own.labels]
    keep = np.flatnonzero(labels >= 0)
    left_out = [f"{own.names[i]}: folder {own.class_names[own.labels[i]]!r} matches no class "
                "of the model - left out" for i in np.flatnonzero(labels < 0)]
    catalogue = Catalogue(own.root, own.layout, own.images[keep], own.masks[keep],
                          labels[keep].astype(np.int64), list(class_names), own.splits[keep],
                          own.names[keep], list(own.problems) + left_out, own.source)
    return catalogue, match


def _check_pixels(catalogue: Catalogue, size: int, limits: UploadLimits) -> None:
    """Refuse an upload whose images hold more pixels than ``limits`` allow: summed from their
    headers before any is decoded, and kept at ``size`` × ``size``.

    Raises:
        InputError: over ``limits.max_decoded_pixels`` or ``limits.max_total_pixels``.
    """
    if len(catalogue) * size * size > limits.max_total_pixels:
        raise InputError(f"{len(catalogue)} images at {size} px hold more than "
                         f"{limits.max_total_pixels:,} pixels (the limit for an upload); "
                         "upload fewer.")
    total = 0
    for relative in catalogue.images:
        try:
            header = check_image_header(str(catalogue.root / str(relative)), limits.max_pixels)
        except ValueError:
            continue  # reported as skipped when it is read
        total += 2 * header.width * header.height  # the image and its mask
        if total > limits.max_decoded_pixels:
            raise InputError(f"The images hold more than {limits.max_decoded_pixels:,} pixels "
                             f"to decode (the limit for an upload), counting up to {relative}; "
                             "resize them or upload fewer.")


def read_files(root: Path, size: int, resize: str, class_names: list[str], masks: str,
               max_images: int, limits: UploadLimits | None = None) -> AuditSet:
    """Every image of a folder at ``size`` × ``size`` (raw pixels in [0, 1], cut by
    ``resize``), named by its file. ``masks == "set"`` keeps only images with a mask file.

    Raises:
        InputError: nothing usable, too many images, or too few masks for ``masks="set"``.
    """
    catalogue, match = catalogue_in_classes(root, class_names)
    problems = [line for line in catalogue.problems if MAPPING_FILE not in line]
    if masks == "set":
        has_mask = np.flatnonzero(catalogue.masks != "")
        if len(np.unique(catalogue.labels[has_mask])) < min(2, catalogue.num_classes):
            raise InputError(f"This set has too few masks (<class>/<name>.mask.png) to audit "
                             f"with its own masks ({len(has_mask)} of {len(catalogue)}). Under "
                             f"**Masks**, choose *automatic masks* or *no masks*.")
        problems += [f"{catalogue.names[i]}: no mask - left out (or choose automatic masks)"
                     for i in np.flatnonzero(catalogue.masks == "")]
        catalogue = catalogue.subset(has_mask)
    if len(catalogue) > max_images:
        raise InputError(f"The set has {len(catalogue)} images; the audit takes at most "
                         f"{max_images}.")
    if limits is not None:
        _check_pixels(catalogue, size, limits)
    dataset = StreamingDataset(catalogue, Preprocessing(size=size, resize=resize).evaluation(),
                               **({"limits": limits} if limits is not None else {}))
    images, masks_kept, labels, names = [], [], [], []
    for index in range(len(catalogue)):
        item = dataset[index]
        if isinstance(item, Skipped):
            problems.append(f"{item.name}: {item.reason} - left out")
            continue
        images.append(item[0])
        masks_kept.append(item[1])
        labels.append(int(item[2]))
        names.append(str(catalogue.names[index]))
    if not images:
        raise InputError(f"No image of this set could be read; first problems: {problems[:3]}")
    image_set = isnet.ImageSet(torch.stack(images), torch.stack(masks_kept),
                               torch.tensor(labels, dtype=torch.int64),
                               list(catalogue.class_names))
    return AuditSet(image_set, names, np.full(len(names), UNKNOWN, np.int8), problems, match)
