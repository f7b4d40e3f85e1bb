"""Your own images with masks: a folder (or a .zip of it) in one documented layout.

Layout (one sub-folder per class; the folder name is the class name)::

    root/
      cat/
        img001.png          the image (.png, .jpg, .jpeg, .bmp; grey, RGB or RGBA)
        img001.mask.png     its foreground mask: white (or 1) = object, black (0) = background
      dog/
        ...

A zip file of that tree is read directly (a single top-level folder inside the zip is allowed,
as made by zipping the ``root`` folder itself). Files and folders starting with ``.`` or
``__MACOSX`` are ignored.

:func:`load_image_folder` loads everything it can and returns the list of problems, each naming
the file: a missing mask, an unreadable file, an image whose size differs from its mask or from
the others (pass ``size=``), a mask that is not binary (it is thresholded at half its range and
still used), a mask or a file in the wrong place, an image too large to decode, an animated image
(its first frame is used), an absolute or climbing zip member name. Only a folder with fewer
than two usable classes is an error (:class:`ValueError`): a classifier needs at least two.

Uploads are untrusted: :class:`isnet.io.limits.UploadLimits` bounds the number of files, their
bytes (a zip member's declared *and* decompressed size), the zip compression ratio, each image's
pixels (read from its header before decoding), the pixels of the whole set to decode (summed from
the headers before the first is decoded) and the pixels kept in the set; exceeding one is a
:class:`isnet.io.limits.LimitError`. With ``size=`` a large image is decoded reduced (a half to
an eighth, never below ``size``: :func:`isnet.data.decode.reduction_factor`) and its mask
resized to it. Images are decoded with OpenCV and turned upright by their
EXIF orientation (:func:`isnet.data.decode.orient`), as ``PIL.ImageOps.exif_transpose`` would.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import cv2
import numpy as np
import torch

from isnet.data.decode import DecodeError, binary_mask, decode_image, to_rgb
from isnet.data.image_set import ImageSet
from isnet.data.transforms import CROP_RATIO, crop_pixels
from isnet.io.atomic import write_atomically
from isnet.io.limits import (
    LimitError,
    UploadLimits,
    check_image_header,
    read_zip_members,
    size_text,
)

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp")
MASK_SUFFIX = ".mask.png"


class ReadingStopped(Exception):
    """:func:`load_image_folder` was asked to stop (its ``should_stop`` said so) between files."""


def _ignored(parts: tuple[str, ...]) -> bool:
    """Hidden files and macOS zip debris."""
    return any(part.startswith(".") or part == "__MACOSX" for part in parts)


def _unsafe(name: str) -> bool:
    """A zip member name that is absolute, climbs out (``..``) or uses backslashes."""
    path = PurePosixPath(name)
    return (path.is_absolute() or ".." in path.parts or "\\" in name
            or any(":" in part for part in path.parts[:1]))


def _list_files(source: Path, limits: UploadLimits, problems: list[str]
                ) -> dict[PurePosixPath, bytes | Path]:
    """Relative path -> content (zip) or absolute path (folder), for every regular file.

    Raises:
        LimitError: the upload exceeds ``limits`` (files, bytes, compression ratio).
        ValueError: neither a folder nor a readable zip.
    """
    if source.is_dir():
        return _list_folder(source, limits)
    members = read_zip_members(source, limits, select=lambda name: not _unsafe(name) and
                               not _ignored(PurePosixPath(name).parts))
    with zipfile.ZipFile(source) as archive:  # already opened once: the directory is sane
        for name in sorted(archive.namelist()):
            if _unsafe(name):
                problems.append(f"{name}: an absolute or climbing path inside the zip - ignored")
    found = {PurePosixPath(name): data for name, data in members.items()}
    tops = {path.parts[0] for path in found}
    wrapped = all(len(path.parts) >= 3 or (len(path.parts) == 2 and
                                            not path.name.lower().endswith(IMAGE_SUFFIXES))
                  for path in found)
    if len(tops) == 1 and wrapped:  # the zip holds the root folder itself: strip that level
        found = {PurePosixPath(*path.parts[1:]): data for path, data in found.items()}
    return found


def _list_folder(source: Path, limits: UploadLimits) -> dict[PurePosixPath, bytes | Path]:
    """Every regular file under ``source`` (symbolic links not followed), within ``limits``."""
    found: dict[PurePosixPath, bytes | Path] = {}
    total, count = 0, 0
    for path in sorted(source.rglob("*")):
        count += 1
        if count > limits.max_files:
            raise LimitError(f"{source.name} holds more than {limits.max_files:,} entries "
                             f"(the limit)")
        relative = PurePosixPath(path.relative_to(source).as_posix())
        if path.is_symlink() or not path.is_file() or _ignored(relative.parts):
            continue
        size = path.stat().st_size
        if size > limits.max_file_bytes:
            raise LimitError(f"{relative} is {size_text(size)}; the limit per file is "
                             f"{size_text(limits.max_file_bytes)}")
        total += size
        if total > limits.max_total_bytes:
            raise LimitError(f"{source.name} holds more than "
                             f"{size_text(limits.max_total_bytes)} (the limit), counting up to "
                             f"{relative}")
        found[relative] = path
    return found


def _decode(name: PurePosixPath, content: bytes | Path, grey: bool, max_pixels: int,
            problems: list[str], skipped: str, reduce_to: int | None = None
            ) -> np.ndarray | None:
    """Decode an image file (:func:`isnet.data.decode.decode_image`, reduced towards
    ``reduce_to`` when given); None, with a problem ending in ``skipped``, if it cannot be used.
    Notices (extra frames) become problems too."""
    raw = content if isinstance(content, bytes) else content.read_bytes()
    try:
        image, notice = decode_image(raw, str(name), grey, max_pixels, reduce_to)
    except (LimitError, DecodeError) as error:
        problems.append(f"{error} - {skipped}")
        return None
    if notice:
        problems.append(notice)
    return image


def _load_pair(name: PurePosixPath, image_content: bytes | Path,
               mask_content: bytes | Path | None, size: int | None, max_pixels: int,
               problems: list[str], require_mask: bool = True, resize: str = "squeeze"
               ) -> tuple[np.ndarray, np.ndarray] | None:
    """Read one image and its mask, resized when ``size`` is given (``resize``: "squeeze" the
    whole picture, or torchvision's "crop", :func:`isnet.data.transforms.crop_pixels`); append
    problems.

    Without a mask file the image is skipped, or (``require_mask=False``) kept with an
    all-foreground mask.
    """
    mask_name = name.with_name(name.name[: -len(name.suffix)] + MASK_SUFFIX)
    if mask_content is None and require_mask:
        problems.append(f"{name}: no mask; add {mask_name} (white = object) - image skipped")
        return None
    full = image_content if isinstance(image_content, bytes) else image_content.read_bytes()
    reduce_to = None if size is None else round(size / CROP_RATIO) if resize == "crop" else size
    image = _decode(name, full, False, max_pixels, problems, "skipped", reduce_to)
    if image is None:
        return None
    if mask_content is None:  # kept without a mask: all foreground
        mask = np.full(image.shape[:2], 255, np.uint8)
    else:
        mask = _decode(mask_name, mask_content, True, max_pixels, problems, f"{name} skipped")
    if mask is None:
        return None
    if size is not None and mask.shape != image.shape[:2]:  # the image may have been reduced
        header = check_image_header(full, max_pixels)
        if mask.shape == (header.height, header.width) or \
                mask.shape == (header.width, header.height):
            mask = cv2.resize(mask, (image.shape[1], image.shape[0]),
                              interpolation=cv2.INTER_NEAREST)
    if mask.shape != image.shape[:2]:
        problems.append(f"{mask_name}: size {mask.shape[1]}x{mask.shape[0]} differs from its "
                        f"image {image.shape[1]}x{image.shape[0]} - {name} skipped")
        return None
    binary, notice = binary_mask(mask)
    if notice:
        problems.append(f"{mask_name}: {notice}")
    rgb = to_rgb(image)
    if size is not None and resize == "crop":
        pixels = (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        cropped, cropped_mask = crop_pixels(pixels, binary, size)
        return cropped.astype(np.float32) / 255.0, np.asarray(cropped_mask, np.float32)
    if size is not None:
        rgb = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)
        binary = cv2.resize(binary.astype(np.uint8), (size, size),
                            interpolation=cv2.INTER_NEAREST) > 0
    return np.clip(rgb, 0.0, 1.0), binary.astype(np.float32)


def _check_decoded_pixels(files: dict[PurePosixPath, bytes | Path],
                          limits: UploadLimits) -> None:
    """Refuse a set whose images and masks hold more than ``limits.max_decoded_pixels`` pixels
    in all, summed from their headers before any is decoded (unreadable files count 0: they
    are reported when decoded).

    Raises:
        LimitError: too many pixels to decode.
    """
    total = 0
    for path, content in files.items():
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        try:
            header = check_image_header(content if isinstance(content, bytes) else str(content),
                                        limits.max_pixels, name=str(path))
        except ValueError:  # too large or unreadable: skipped with a problem later
            continue
        total += header.width * header.height
        if total > limits.max_decoded_pixels:
            raise LimitError(f"the images and masks hold more than "
                             f"{limits.max_decoded_pixels:,} pixels to decode in all (the "
                             f"limit), counting up to {path}; upload smaller or fewer images")


def _collect_samples(files: dict[PurePosixPath, bytes | Path], size: int | None,
                     limits: UploadLimits, problems: list[str], require_masks: bool = True,
                     should_stop: Callable[[], bool] | None = None, resize: str = "squeeze"
                     ) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """Class name -> (image (H, W, 3), mask (H, W)) pairs; problems appended.

    Raises:
        LimitError: the images hold more than ``limits.max_decoded_pixels`` pixels before
            decoding, or the kept ones more than ``limits.max_total_pixels`` after resizing.
        ReadingStopped: ``should_stop()`` said so before a file.
    """
    _check_decoded_pixels(files, limits)
    masks = {path for path in files if path.name.lower().endswith(MASK_SUFFIX)}
    samples: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    pixels = 0
    for path, content in files.items():
        if should_stop is not None and should_stop():
            raise ReadingStopped("stopped while reading the images")
        if path in masks:
            stem = path.with_name(path.name[: -len(MASK_SUFFIX)])
            if not any(stem.with_name(stem.name + suffix) in files for suffix in IMAGE_SUFFIXES):
                problems.append(f"{path}: mask without an image next to it - ignored")
            continue
        if len(path.parts) != 2 or path.suffix.lower() not in IMAGE_SUFFIXES:
            problems.append(f"{path}: not an image inside a class folder (expected "
                            f"<class>/<name>.png) - ignored")
            continue
        mask_path = path.with_name(path.name[: -len(path.suffix)] + MASK_SUFFIX)
        pair = _load_pair(path, content, files.get(mask_path), size, limits.max_pixels, problems,
                          require_masks, resize)
        if pair is None:
            continue
        pixels += pair[1].size
        if pixels > limits.max_total_pixels:
            raise LimitError(f"the images hold more than {limits.max_total_pixels:,} pixels in "
                             f"all (the limit), counting up to {path}; resize them (size=) or "
                             f"upload fewer")
        samples.setdefault(path.parts[0], []).append(pair)
    return samples


def load_image_folder(root_or_zip: str | Path, size: int | None = None,
                      limits: UploadLimits = UploadLimits(),
                      require_masks: bool = True,
                      should_stop: Callable[[], bool] | None = None,
                      resize: str = "squeeze") -> tuple[ImageSet, list[str]]:
    """Load ``root/<class>/<name>.png`` images with ``<name>.mask.png`` masks (or a zip of it).

    Args:
        root_or_zip: The folder, or a ``.zip`` file of it.
        size: Resize every image to (size, size) (area for images, nearest for masks); None
            keeps the original size, which must then be the same for all images.
        limits: bounds on files, bytes, zip compression and pixels
            (:class:`isnet.io.limits.UploadLimits`), checked before reading or decoding.
            An image over ``limits.max_pixels`` is skipped with a problem; every other bound
            refuses the whole upload.
        require_masks: skip (with a problem) images that have no mask file; False keeps them
            with an all-foreground mask, silently, for callers that make or need no masks
            (the audit's automatic masks). Mask files that exist are read either way.
        should_stop: asked before each file; once it returns True the reading ends with
            :class:`ReadingStopped` (a fine-tune's Stop button).
        resize: with ``size``: "squeeze" the whole picture to size × size, or "crop" as
            torchvision's ImageNet preset (short side to size / 0.875, centre crop).

    Returns:
        The :class:`ImageSet` (classes in alphabetical order of folder names) and the list of
        problems, one human-readable line per skipped or repaired file, naming it.

    Raises:
        LimitError: (a ValueError) the upload exceeds ``limits``.
        ReadingStopped: ``should_stop()`` returned True.
        ValueError: The path does not exist, is not a readable zip, or fewer than two classes
            have a usable image. Messages name only the upload's base name.
    """
    source = Path(root_or_zip)
    if not source.exists():
        raise ValueError(f"image folder {source.name} does not exist; expected "
                         f"root/<class>/<name>.png with masks <name>.mask.png, or a .zip of "
                         f"that tree")
    if size is not None and size < 8:
        raise ValueError(f"size must be at least 8 px or None, got {size}")
    problems: list[str] = []
    files = _list_files(source, limits, problems)
    samples = _collect_samples(files, size, limits, problems, require_masks, should_stop, resize)
    if size is None and samples:
        first = next(iter(samples.values()))[0][0].shape[:2]
        for class_name, pairs in samples.items():
            keep = [pair for pair in pairs if pair[0].shape[:2] == first]
            if len(keep) < len(pairs):
                problems.append(f"{class_name}/: {len(pairs) - len(keep)} image(s) not "
                                f"{first[1]}x{first[0]} like the first one - skipped; pass "
                                f"size= to resize everything")
            samples[class_name] = keep
    class_names = sorted(name for name, pairs in samples.items() if pairs)
    if len(class_names) < 2:
        raise ValueError(f"{source.name}: found {len(class_names)} class folder(s) with usable "
                         f"images ({class_names}); need at least two, laid out as "
                         f"root/<class>/<name>.png with <name>.mask.png. Problems: "
                         f"{problems[:5]}")
    images, mask_list, labels = [], [], []
    for label, class_name in enumerate(class_names):
        for image, mask in samples[class_name]:
            images.append(image)
            mask_list.append(mask)
            labels.append(label)
    image_set = ImageSet(
        images=torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous(),  # (N, 3, H, W)
        masks=torch.from_numpy(np.stack(mask_list))[:, None],  # (N, 1, H, W)
        labels=torch.tensor(labels, dtype=torch.int64),
        class_names=class_names,
    )
    return image_set, problems


def write_png(path: str | Path, image: np.ndarray, overwrite: bool = False) -> Path:
    """Write a uint8 image (H, W) or RGB (H, W, 3) as PNG, atomically (temp file + rename).

    Args:
        path: Destination file.
        image: uint8 array; RGB order for colour.
        overwrite: Replace an existing file; otherwise an existing file raises.

    Returns:
        The path written.

    Raises:
        ValueError: The file exists and ``overwrite`` is False, or the array is not uint8.
    """
    path = Path(path)
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(f"write_png needs a uint8 (H, W) or (H, W, 3) array, got {image.dtype} "
                         f"{image.shape}")
    if path.exists() and not overwrite:
        raise ValueError(f"{path} exists; pass overwrite=True (or --force) to replace it")
    data = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".png", data)
    if not ok:
        raise ValueError(f"could not encode {path} as PNG")
    write_atomically(path, encoded.tobytes(), overwrite=overwrite)
    return path


def save_image_folder(image_set: ImageSet, root: str | Path, overwrite: bool = False) -> list[Path]:
    """Write an :class:`ImageSet` in the layout :func:`load_image_folder` reads.

    Class names become folder names (``/`` replaced by ``_``); files are ``<class>_<i>.png`` and
    ``<class>_<i>.mask.png``.

    Args:
        image_set: Images in [0, 1] and masks in {0, 1}.
        root: Destination folder.
        overwrite: Replace existing files.

    Returns:
        The image paths written (masks next to them).
    """
    folders = [name.replace("/", "_").replace(" ", "_") for name in image_set.class_names]
    written = []
    for index in range(len(image_set)):
        label = int(image_set.labels[index])
        image = image_set.images[index].permute(1, 2, 0).clamp(0, 1).numpy()  # (H, W, C)
        pixels = np.round(image * 255).astype(np.uint8)
        if pixels.shape[2] == 1:
            pixels = pixels[..., 0]
        mask = (image_set.masks[index, 0].numpy() > 0.5).astype(np.uint8) * 255
        stem = Path(root) / folders[label] / f"{folders[label]}_{index}"
        written.append(write_png(stem.with_suffix(".png"), pixels, overwrite))
        write_png(stem.with_name(stem.name + MASK_SUFFIX), mask, overwrite)
    return written
