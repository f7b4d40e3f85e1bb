"""Bounds on untrusted input, checked before (or while) the work is done.

Everything a user can upload is bounded here, with defaults a caller can override:

* :class:`UploadLimits` — an image set (a zip or a folder): bytes per file (declared *and*
  actually decompressed), total bytes, number of files, zip compression ratio, pixels per image
  (read from the header, before decoding) and pixels kept in the whole set;
* :class:`CheckpointLimits` — a checkpoint file: its size, the safetensors header, the metadata
  and the nesting depth of their JSON, and the network its tensors declare (parameters, also
  against the file's size, weight layers, channels), before the network is built;
* :func:`check_image_header` — an image's pixel count (and frames, EXIF orientation) from its
  header alone, so a 30000×30000 PNG of a few hundred bytes is refused in microseconds;
* :func:`read_zip_members` — a zip read under :class:`UploadLimits`: its central directory is
  counted record by record up to the limit before ``zipfile`` parses it
  (:func:`isnet.io.zip_directory.count_entries`), and each member is streamed with a cap, so a
  member whose header understates its size is caught while it is read;
* :func:`check_json_depth` — JSON nesting depth counted without recursion.

Every refusal is a :class:`LimitError` (a ``ValueError``) whose message says what was too large,
by how much, and what the limit is. Messages name only a file's base name (or a zip member's name),
never a server path.
"""

from __future__ import annotations

import io
import os
import re
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from isnet.io.zip_directory import ZipCountError, count_entries

MIB = 1 << 20
DEFAULT_MAX_PIXELS = 40_000_000
"""Pixels per image (about 6300 × 6300): beyond it an image is refused before decoding."""
IMAGE_FORMATS = frozenset({"PNG", "JPEG", "MPO", "WEBP", "BMP", "DIB", "TIFF", "GIF"})
"""The image formats read (PIL's names; MPO is a phone's multi-picture JPEG, DIB a headerless BMP,
GIF only for its first frame): PPM, ICO, PCX, TGA, SGI and PIL's other formats are refused."""
FORMATS_TEXT = "PNG, JPEG, WebP, BMP or TIFF"

_ORIENTATION_TAG = 0x0112
_READ_CHUNK = 1 << 16
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)  # unrolled: linear and fast
_BOMB_PIXELS = re.compile(r"\((\d+) pixels\)")


class LimitError(ValueError):
    """An input exceeds a stated bound. The message is written for people and names no path."""


class FormatError(ValueError):
    """An image in a format outside :data:`IMAGE_FORMATS`; the message names the format."""


@dataclass(frozen=True)
class UploadLimits:
    """Bounds for an uploaded image set (a zip of class folders, or a folder).

    Attributes:
        max_file_bytes: bytes per file or zip member, declared and actually decompressed.
        max_total_bytes: uncompressed bytes of all files read.
        max_files: files (zip members, folders included) in the upload.
        max_ratio: uncompressed / compressed size of a zip member above ``ratio_min_bytes``.
        ratio_min_bytes: members smaller than this are not ratio-checked (tiny files compress
            well without being bombs).
        max_pixels: pixels per image, read from its header before decoding.
        max_total_pixels: pixels of all images kept in the set (after resizing).
        max_decoded_pixels: pixels of all images and masks to decode, summed from their headers
            before the first is decoded (ten 40-megapixel PNG pairs took 115 s to decode).
    """

    max_file_bytes: int = 64 * MIB
    max_total_bytes: int = 256 * MIB
    max_files: int = 2_000
    max_ratio: float = 100.0
    ratio_min_bytes: int = 1 * MIB
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_total_pixels: int = 50_000_000
    max_decoded_pixels: int = 1_000_000_000


@dataclass(frozen=True)
class CheckpointLimits:
    """Bounds for a checkpoint file, checked before any tensor is read or model built.

    Attributes:
        max_file_bytes: size of the file.
        max_header_bytes: size of the safetensors JSON header (tensor table + metadata); a
            DenseNet-121 header is about 90 KB.
        max_metadata_bytes: size of the header's string metadata (ours is about 7 KB).
        max_json_depth: nesting depth of the header and metadata JSON (ours is 4).
        max_parameters: values in all the tensors a file declares (a VGG19 has 144 million).
            A file must also be large enough to hold them at 2 bytes each (float16): a
            ``torch.save`` file of stride-0 (``expand``-ed) tensors declares far more values
            than it stores.
        max_weight_layers: tensors of two or more dimensions (convolutions, linear layers;
            DenseNet-201 has 201): an explanation's memory grows with the square of a
            DenseNet's depth.
        max_channels: input or output channels of one convolution (DenseNet-161 reaches 2208).
    """

    max_file_bytes: int = 1024 * MIB
    max_header_bytes: int = 8 * MIB
    max_metadata_bytes: int = 1 * MIB
    max_json_depth: int = 32
    max_parameters: int = 200_000_000
    max_weight_layers: int = 300
    max_channels: int = 4096


@dataclass(frozen=True)
class ImageHeader:
    """What an image's header says, read without decoding its pixels.

    Attributes:
        width, height: size in pixels (before EXIF orientation).
        format: PIL's format name (``"PNG"``, ``"JPEG"``, …).
        frames: number of frames (more than 1 for animated GIF/PNG/WebP and multi-page TIFF).
        orientation: EXIF orientation 1–8 (1 = as stored).
    """

    width: int
    height: int
    format: str
    frames: int = 1
    orientation: int = 1

    @property
    def notice(self) -> str | None:
        """A sentence for the user when only the first of several frames is used, else None."""
        if self.frames <= 1:
            return None
        return f"has {self.frames} frames (animated or multi-page); only the first is used"


def size_text(count: int) -> str:
    """Bytes in words: ``"64 MB"``, ``"1.2 GB"``, ``"512 bytes"`` (binary multiples)."""
    for unit, scale in (("GB", 1 << 30), ("MB", MIB), ("KB", 1 << 10)):
        if count >= scale:
            return f"{count / scale:.3g} {unit}"
    return f"{count} bytes"


def display_name(source: object, default: str = "the file") -> str:
    """The base name of a path (never the folders above it); ``default`` for anything else."""
    if isinstance(source, (str, os.PathLike)):
        return Path(source).name or default
    return default


def check_json_depth(text: str | bytes, max_depth: int, what: str) -> None:
    """Refuse JSON nested deeper than ``max_depth``, counted without recursion or parsing.

    Args:
        text: the JSON document.
        max_depth: deepest allowed nesting of ``[`` and ``{``.
        what: names the document in the message (e.g. ``"m.safetensors: metadata"``).

    Raises:
        LimitError: the document nests deeper.
    """
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    codes = np.frombuffer(_STRING.sub(b"", raw), np.uint8)  # brackets inside strings removed
    steps = (np.isin(codes, (ord("["), ord("{"))).astype(np.int64)
             - np.isin(codes, (ord("]"), ord("}"))).astype(np.int64))
    depth = int(np.cumsum(steps).max()) if steps.size else 0
    if depth > max_depth:
        raise LimitError(f"{what}: JSON nested {depth} levels deep; the limit is {max_depth}")


def check_image_header(source: str | os.PathLike | bytes, max_pixels: int = DEFAULT_MAX_PIXELS,
                       name: str | None = None,
                       formats: frozenset[str] = IMAGE_FORMATS) -> ImageHeader:
    """Read an image's size, frames and EXIF orientation from its header; refuse large ones.

    No pixel data is decoded, so a file whose header claims 30000 × 30000 pixels is refused in
    microseconds, whatever PIL's own decompression-bomb threshold is.

    Args:
        source: a file path or the file's bytes.
        max_pixels: largest allowed ``width × height`` (PIL refuses beyond twice
            ``PIL.Image.MAX_IMAGE_PIXELS``, about 179 million, whatever this says).
        name: the name used in messages (default: the path's base name, or "the image").
        formats: the accepted formats (PIL's names).

    Returns:
        The :class:`ImageHeader`.

    Raises:
        LimitError: more than ``max_pixels`` pixels (the message says "too large").
        FormatError: a format outside ``formats`` (checked first).
        ValueError: not an image PIL can identify, or a damaged header.
    """
    label = name or display_name(source, "the image")
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, (bytes, bytearray))
                        else source) as image:
            if str(image.format) not in formats:
                raise FormatError(f"{label} is a {image.format} file; the formats read are "
                                  f"{FORMATS_TEXT}")
            width, height = image.size
            if width * height > max_pixels:
                raise _too_large(label, width * height, max_pixels, f"{width}×{height} = ")
            return ImageHeader(width, height, str(image.format), _frames(image),
                               _orientation(image))
    except Image.DecompressionBombError as error:  # PIL refused first: beyond 2 × its own limit
        found = _BOMB_PIXELS.search(str(error))
        pixels = int(found.group(1)) if found else 2 * (Image.MAX_IMAGE_PIXELS or 0)
        limit = min(max_pixels, 2 * (Image.MAX_IMAGE_PIXELS or max_pixels))
        raise _too_large(label, pixels, limit, "") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        if isinstance(error, LimitError | FormatError):
            raise
        raise ValueError(f"{label} is not an image that can be read "
                         f"({type(error).__name__})") from None


def _too_large(label: str, pixels: int, max_pixels: int, size: str) -> LimitError:
    return LimitError(f"{label} is too large: {size}{pixels:,} pixels; the limit is "
                      f"{max_pixels:,} pixels ({max_pixels / 1e6:g} megapixels)")


def _frames(image: Image.Image) -> int:
    try:
        return int(getattr(image, "n_frames", 1))
    except (OSError, EOFError, ValueError):  # a truncated animation: count what is there
        return 2


def _orientation(image: Image.Image) -> int:
    """EXIF orientation without decoding (PNG's getexif() would decode the whole image)."""
    try:
        if image.format == "TIFF":
            value = image.getexif().get(_ORIENTATION_TAG, 1)
        elif "exif" in image.info:
            exif = Image.Exif()
            exif.load(image.info["exif"])
            value = exif.get(_ORIENTATION_TAG, 1)
        else:
            return 1
    except (OSError, SyntaxError, ValueError, TypeError):
        return 1
    return int(value) if isinstance(value, int) and 1 <= value <= 8 else 1


def read_zip_members(source: str | os.PathLike, limits: UploadLimits = UploadLimits(),
                     select: Callable[[str], bool] | None = None) -> dict[str, bytes]:
    """Read a zip's member files into memory, within ``limits``.

    Before reading: the number of members (from the end record, before the directory is
    parsed), each selected member's declared size and compression ratio, their total, encryption
    and compression method (only stored and deflated members: both decompress with a bounded
    output per read). While reading: each member is streamed in 64 KB pieces and counted, so a
    member that holds more (or other) data than its header declares is refused as soon as that
    shows, with at most its declared size in memory.

    Args:
        source: the zip file.
        limits: the bounds (:class:`UploadLimits`; its pixel fields are not used here).
        select: ``select(member_name)`` says whether a file member is read; others (e.g. hidden
            files) are skipped but still count towards ``max_files``.

    Returns:
        ``{member name: content}`` for every selected file member (folders are left out).

    Raises:
        LimitError: a bound is exceeded; the message names the member and the limit.
        ValueError: not a readable zip, encrypted, or a member's data does not match its header.
    """
    label = display_name(source, "the zip")
    _check_declared_count(Path(source), label, limits)
    try:
        if count_entries(source, limits.max_files) > limits.max_files:
            raise LimitError(f"{label} holds more than {limits.max_files:,} entries (the limit); "
                             f"its end record understates that")
        with zipfile.ZipFile(source) as archive:
            infos = archive.infolist()
            if len(infos) > limits.max_files:
                raise LimitError(f"{label} holds {len(infos):,} entries; the limit is "
                                 f"{limits.max_files:,}")
            chosen = [info for info in infos if not info.is_dir()
                      and (select is None or select(info.filename))]
            _check_declared_sizes(chosen, label, limits)
            return {info.filename: _read_member(archive, info, label, limits)
                    for info in chosen}
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ZipCountError, OSError, EOFError) as error:
        raise ValueError(f"{label} is not a readable zip file ({type(error).__name__})") from None


def _check_declared_count(path: Path, label: str, limits: UploadLimits) -> None:
    """Refuse a zip whose end record declares too many entries, before the directory is read."""
    try:
        size = path.stat().st_size
        with path.open("rb") as stream:
            stream.seek(max(0, size - (1 << 16) - 22))
            tail = stream.read()
    except OSError as error:
        raise ValueError(f"{label} cannot be read ({type(error).__name__})") from None
    end = tail.rfind(b"PK\x05\x06")
    if end >= 0 and len(tail) >= end + 12:
        declared = int.from_bytes(tail[end + 10:end + 12], "little")
        if declared != 0xFFFF and declared > limits.max_files:  # 0xFFFF: zip64, counted later
            raise LimitError(f"{label} holds {declared:,} entries; the limit is "
                             f"{limits.max_files:,}")


def _check_declared_sizes(infos: list[zipfile.ZipInfo], label: str,
                          limits: UploadLimits) -> None:
    total = 0
    for info in infos:
        name = info.filename
        if info.flag_bits & 0x1:
            raise ValueError(f"{label}: {name} is encrypted; upload an unencrypted zip")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ValueError(f"{label}: {name} uses compression method {info.compress_type}; "
                             f"only stored and deflated (the usual zip) members are accepted")
        if info.file_size > limits.max_file_bytes:
            raise LimitError(f"{label}: {name} is {size_text(info.file_size)} uncompressed; "
                             f"the limit per file is {size_text(limits.max_file_bytes)}")
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > limits.ratio_min_bytes and ratio > limits.max_ratio:
            raise LimitError(f"{label}: {name} expands {ratio:,.0f}-fold "
                             f"({size_text(info.compress_size)} → {size_text(info.file_size)}); "
                             f"the limit is {limits.max_ratio:g}-fold (a zip bomb?)")
        total += info.file_size
        if total > limits.max_total_bytes:
            raise LimitError(f"{label} holds more than {size_text(limits.max_total_bytes)} "
                             f"uncompressed (the limit), counting up to {name}")


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, label: str,
                 limits: UploadLimits) -> bytes:
    """Stream one member, never holding more than its declared size (≤ the per-file limit)."""
    cap = min(info.file_size, limits.max_file_bytes)
    pieces, count = [], 0
    try:
        with archive.open(info) as stream:
            while piece := stream.read(_READ_CHUNK):
                count += len(piece)
                if count > cap:
                    raise LimitError(f"{label}: {info.filename} holds more data than its header "
                                     f"declares ({size_text(info.file_size)}); refused")
                pieces.append(piece)
    except (zipfile.BadZipFile, EOFError, zlib.error, OSError) as error:
        raise ValueError(f"{label}: {info.filename}: its data does not match its header "
                         f"(which declares {size_text(info.file_size)}): the zip is damaged or "
                         f"its sizes are forged ({type(error).__name__})") from None
    if count != info.file_size:
        raise ValueError(f"{label}: {info.filename} holds {size_text(count)}, not the "
                         f"{size_text(info.file_size)} its header declares; refused")
    return b"".join(pieces)
