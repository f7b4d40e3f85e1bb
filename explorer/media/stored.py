"""Files named by their content: each distinct picture or array is written once, atomically.

:func:`stored_png` and :func:`stored_npy` name a file by a hash of the array's shape, dtype and
bytes, so the same pixels always give the same path:

* a repeat costs a hash and a ``stat`` — no encoding, no write (the colour bar, identical in
  every answer; the same overlay asked for twice; the same view recorded again);
* a file is never rewritten while a concurrent client reads it (the stock ``gr.Image`` rewrote
  the same cache file on every answer, and a reader could see it half written);
* the first write goes to a temporary name and is renamed into place
  (:func:`isnet.io.atomic.write_atomically`); these are scratch files that can be made again,
  so the write skips the fsync.

PNGs are encoded by OpenCV at compression level 1: about 4× faster than Pillow's default for a
slightly larger file (these pictures travel over a local link or stay on disk).

A repeated file is touched (its time updated), so a cache cleaner that removes files by age
keeps the ones still handed out.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

import cv2
import numpy as np

from isnet.io.atomic import write_atomically
from isnet.io.export import write_npy

PNG_COMPRESSION = 1
"""OpenCV's PNG compression level (0–9) for stored pictures."""


def content_digest(array: np.ndarray) -> str:
    """A 40-hex-digit hash of an array's shape, dtype and bytes (a file name)."""
    array = np.ascontiguousarray(array)
    digest = hashlib.sha1(f"{array.shape}{array.dtype}".encode())
    digest.update(array.data)
    return digest.hexdigest()


def _existing(path: Path) -> bool:
    """True when ``path`` exists (and is touched, so age-based cleaners keep it)."""
    try:
        os.utime(path)
    except FileNotFoundError:  # never written, or removed by a cleaner just now
        return False
    return True


def _write_once(path: Path, data: bytes) -> str:
    with contextlib.suppress(FileExistsError):  # a concurrent caller wrote the same first
        write_atomically(path, data, durable=False)
    return str(path)


def png_pixels(array: np.ndarray) -> np.ndarray:
    """(H, W[, 3|4]) as contiguous ``uint8`` (other dtypes are clipped to [0, 255])."""
    return np.ascontiguousarray(array if array.dtype == np.uint8
                                else np.clip(array, 0, 255).astype(np.uint8))


def encode_png(pixels: np.ndarray) -> bytes:
    """PNG bytes of an (H, W[, 3|4]) ``uint8`` RGB(A) or grey array (fast, lossless)."""
    if pixels.ndim == 3 and pixels.shape[2] == 3:
        pixels = pixels[..., ::-1]  # OpenCV writes BGR
    elif pixels.ndim == 3 and pixels.shape[2] == 4:
        pixels = pixels[..., [2, 1, 0, 3]]
    ok, encoded = cv2.imencode(".png", pixels, [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])
    if not ok:
        raise ValueError(f"cannot encode an image of shape {pixels.shape} as PNG")
    return encoded.tobytes()


def stored_png(array: np.ndarray, folder: str | os.PathLike) -> str:
    """The path of a PNG of ``array`` in ``folder``, written the first time these pixels are
    seen.

    Args:
        array: (H, W, 3|4) or (H, W) uint8 (other dtypes are clipped to [0, 255]).
        folder: where the files live (created if missing).
    """
    pixels = png_pixels(array)
    path = Path(folder) / f"{content_digest(pixels)}.png"
    if _existing(path):
        return str(path)
    return _write_once(path, encode_png(pixels))


def stored_npy(array: np.ndarray, folder: str | os.PathLike) -> str:
    """The path of an ``.npy`` of ``array`` in ``folder`` (``numpy.load`` reads it back, no
    pickles), written the first time this content is seen."""
    array = np.ascontiguousarray(array)
    path = Path(folder) / f"{content_digest(array)}.npy"
    if not _existing(path):
        with contextlib.suppress(FileExistsError):  # a concurrent caller wrote the same first
            write_npy(path, array, durable=False)
    return str(path)
