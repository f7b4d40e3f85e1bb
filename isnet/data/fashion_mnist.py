"""Fashion-MNIST with foreground masks.

Fashion-MNIST (Xiao, Rasul & Vollgraf 2017, Zalando Research, MIT licence) is read from the
standard IDX files, by default where Debian's ``dataset-fashion-mnist`` package puts them. The
objects are photographed on black and fill their 28 px frame, so the loader adds a black border
(``padding``) to leave room for background marks; the mask is the object's pixels above
``threshold`` after resizing, made solid by a 3x3 morphological closing and by filling holes.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from isnet.data.image_set import ImageSet

FASHION_MNIST_ROOT = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
_IDX_PREFIX = {"train": "train", "test": "t10k"}



def _find_idx(root: Path, stem: str) -> Path:
    """Path of an IDX file (``.gz`` or raw, dash or dot before ``idx``) or a helpful ValueError."""
    for name in (stem, stem.replace("-idx", ".idx")):
        for suffix in (".gz", ""):
            candidate = root / (name + suffix)
            if candidate.is_file():
                return candidate
    raise ValueError(
        f"Fashion-MNIST file {stem}[.gz] not found in {root}. Install Debian's package "
        f"(apt-get install dataset-fashion-mnist) or pass root= a folder holding the four "
        f"standard IDX files (train-/t10k- images-idx3-ubyte and labels-idx1-ubyte, .gz or raw)")


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (unsigned bytes; ``.gz`` or raw) as a uint8 array.

    Args:
        path: The file.

    Returns:
        uint8 array with the shape stored in the header, e.g. (N, 28, 28) or (N,).

    Raises:
        ValueError: If the header is not an unsigned-byte IDX header or the size disagrees.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError) as error:
        raise ValueError(f"cannot read IDX file {path}: {error}") from error
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file (bad magic number)")
    dims = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    offset = 4 + 4 * dims
    if len(data) - offset != int(np.prod(shape)):
        raise ValueError(f"{path}: header says shape {shape} but the file holds "
                         f"{len(data) - offset} values (truncated or corrupt download?)")
    return np.frombuffer(data, np.uint8, offset=offset).reshape(shape)


def solid_mask(gray: np.ndarray, threshold: float) -> np.ndarray:
    """Foreground mask of a bright object on a dark background, closed and with holes filled.

    Args:
        gray: (H, W) float in [0, 1].
        threshold: Pixels above it are object.

    Returns:
        (H, W) uint8 in {0, 1}.
    """
    binary = (gray > threshold).astype(np.uint8)
    kernel = np.ones((3, 3), np.uint8)
    padded = cv2.copyMakeBorder(binary, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    closed = cv2.morphologyEx(padded, cv2.MORPH_CLOSE, kernel)
    outside = closed.copy()
    flood = np.zeros((outside.shape[0] + 2, outside.shape[1] + 2), np.uint8)
    cv2.floodFill(outside, flood, (0, 0), 2)  # background reachable from the border -> 2
    return (outside[1:-1, 1:-1] != 2).astype(np.uint8)


def load_fashion_mnist(root: str | Path | None = None, split: str = "train", size: int = 64,
                       limit: int | None = None, seed: int = 0,
                       threshold: float = 0.04, padding: int = 6,
                       indices: list[int] | None = None) -> ImageSet:
    """Fashion-MNIST as 3-channel images with solid foreground masks.

    Args:
        root: Folder with the IDX files; default ``/usr/share/datasets/fashion-mnist``.
        split: ``"train"`` (60,000 images) or ``"test"`` (10,000).
        size: Output side in pixels (bilinear resize of the 28 px originals; >= 8).
        limit: Keep this many images, a seeded random subset in file order (None = all).
        seed: Seeds the subset.
        threshold: Grey level in [0, 1) above which a pixel is object.
        padding: Black border (pixels of the 28 px original) added on every side before resizing,
            so the background has room for a bias mark: the originals fill their frame, and
            with ``padding=0`` about 30% of them have no room for a mark of 0.2 of the side.
        indices: Keep exactly these images (positions in the file, in this order); overrides
            ``limit``.

    Returns:
        An :class:`ImageSet` of size (N, 3, size, size) with the 10 Fashion-MNIST class names.

    Raises:
        ValueError: Missing/corrupt files (says how to install them) or bad arguments.
    """
    if split not in _IDX_PREFIX:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if size < 8:
        raise ValueError(f"size must be at least 8 px, got {size}")
    if padding < 0:
        raise ValueError(f"padding must be >= 0 px, got {padding}")
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"threshold must lie in [0, 1), got {threshold}")
    folder = Path(root) if root is not None else FASHION_MNIST_ROOT
    prefix = _IDX_PREFIX[split]
    raw = read_idx(_find_idx(folder, f"{prefix}-images-idx3-ubyte"))  # (N, 28, 28)
    labels = read_idx(_find_idx(folder, f"{prefix}-labels-idx1-ubyte"))  # (N,)
    if raw.ndim != 3 or labels.shape != raw.shape[:1]:
        raise ValueError(f"Fashion-MNIST files in {folder} disagree: images {raw.shape}, "
                         f"labels {labels.shape}")
    if indices is not None:
        keep = np.asarray(indices, np.int64)
        if keep.size and (keep.min() < 0 or keep.max() >= len(raw)):
            raise ValueError(f"indices must lie in [0, {len(raw)}) for the {split} split")
        raw, labels = raw[keep], labels[keep]
    elif limit is not None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1 or None, got {limit}")
        keep = np.sort(np.random.default_rng(seed).permutation(len(raw))[: min(limit, len(raw))])
        raw, labels = raw[keep], labels[keep]
    gray = torch.from_numpy(raw.astype(np.float32) / 255.0)[:, None]  # (N, 1, 28, 28)
    gray = F.pad(gray, (padding,) * 4)  # (N, 1, 28 + 2 padding, 28 + 2 padding)
    if size != gray.shape[-1]:
        gray = F.interpolate(gray, size=(size, size), mode="bilinear", align_corners=False,
                             antialias=size < gray.shape[-1]).clamp_(0.0, 1.0)
    gray_np = gray[:, 0].numpy()
    masks = np.stack([solid_mask(image, threshold) for image in gray_np]) if len(gray_np) else \
        np.zeros((0, size, size), np.uint8)
    return ImageSet(
        images=gray.expand(-1, 3, -1, -1).contiguous(),  # (N, 3, size, size)
        masks=torch.from_numpy(masks.astype(np.float32))[:, None],  # (N, 1, size, size)
        labels=torch.from_numpy(labels.astype(np.int64)),
        class_names=list(FASHION_MNIST_CLASSES),
    )
