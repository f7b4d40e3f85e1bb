"""A dataset of any size, decoded from disk in DataLoader workers, one image at a time.

:class:`StreamingDataset` reads the entries of a :class:`isnet.data.catalogue.Catalogue`: each
``__getitem__`` reads one image file and its mask, checks them (the upload limits: bytes per
file, pixels per image from the header before decoding; the mask's size against the image's)
and applies the joint transform (:mod:`isnet.data.transforms`). Nothing is decoded ahead, so the
memory a run needs does not grow with the dataset, and the first batch of a 50,000-file folder
is ready as soon as its own files are read.

A file that cannot be used does not stop the run: ``__getitem__`` returns a :class:`Skipped`
naming it and saying why, :func:`collate` leaves it out of its batch and passes the reason on in
:attr:`StreamBatch.skipped`, and the consumer keeps a :class:`SkipLog`, whose summary says how
many were left out and why. An entry without a mask file gets an all-foreground mask and
``has_mask`` False: fine for evaluation and audit (training sets need masks; the training
command leaves unmasked images out and says so).

Training augmentation is random but reproducible: each image's draw is seeded by
``(seed, epoch, index)`` (:meth:`StreamingDataset.set_epoch`), so the batches do not depend on
how many workers decode them, or on which DDP rank does.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from isnet.data.catalogue import Catalogue
from isnet.data.decode import DecodeError, binary_mask, decode_image, to_rgb
from isnet.data.transforms import PairTransform
from isnet.io.limits import LimitError, UploadLimits, size_text

LOCAL_LIMITS = UploadLimits(max_file_bytes=512 << 20, max_pixels=200_000_000)
"""Per-file bounds for a local dataset: a 512 MB file, 200 megapixels (a large X-ray is about
9 megapixels). Uploads keep :class:`isnet.io.limits.UploadLimits`' tighter defaults."""


class Skipped(NamedTuple):
    """An entry that could not be used: its display name and why (a NamedTuple of strings, so
    that it travels through worker queues and Lightning's batch transfer unchanged)."""

    name: str
    reason: str

    def __str__(self) -> str:
        return f"{self.name}: {self.reason}"


class StreamBatch(NamedTuple):
    """A batch from :func:`collate` (B usable images of those asked for).

    Attributes:
        images: (B, 3, S, S) float32.
        masks: (B, 1, S, S) float32 in {0, 1} (all ones where ``has_mask`` is False).
        labels: (B,) int64.
        indices: (B,) int64, each image's entry in the dataset.
        has_mask: (B,) bool, whether a mask file was read.
        skipped: the entries of this batch that were left out.
    """

    images: Tensor
    masks: Tensor
    labels: Tensor
    indices: Tensor
    has_mask: Tensor
    skipped: tuple[Skipped, ...]


class StreamingDataset(Dataset):
    """The entries of a catalogue, decoded and transformed on demand.

    Args:
        catalogue: the files.
        transform: :meth:`Preprocessing.training` or :meth:`Preprocessing.evaluation`.
        seed: seeds the random transform of each image with the epoch and its index.
        limits: ``max_file_bytes`` and ``max_pixels`` bound each file (default
            :data:`LOCAL_LIMITS`).

    Items: ``(image (3, S, S), mask (1, S, S), label (), index (), has_mask ())`` or a
    :class:`Skipped`.
    """

    def __init__(self, catalogue: Catalogue, transform: PairTransform, seed: int = 0,
                 limits: UploadLimits = LOCAL_LIMITS) -> None:
        self.catalogue, self.transform, self.seed, self.limits = catalogue, transform, seed, limits
        self.epoch = 0
        self.root = str(catalogue.root)

    def __len__(self) -> int:
        """Number of entries N."""
        return len(self.catalogue)

    @property
    def class_names(self) -> list[str]:
        """The catalogue's class names."""
        return self.catalogue.class_names

    def set_epoch(self, epoch: int) -> None:
        """Draw epoch ``epoch``'s augmentation (call before the loader is iterated; workers
        are started per epoch and take this value with them)."""
        self.epoch = epoch

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor] | Skipped:
        """Entry ``index`` decoded and transformed, or why it cannot be."""
        entry = self.catalogue
        name, mask_path = str(entry.names[index]), str(entry.masks[index])
        try:
            image = to_rgb(self._read(str(entry.images[index]), name, grey=False))
            if mask_path:
                mask, _ = binary_mask(self._read(mask_path, f"{name} (mask {mask_path})", True))
                if mask.shape != image.shape[:2]:
                    return Skipped(name, f"mask is {mask.shape[1]}x{mask.shape[0]}, its image "
                                         f"{image.shape[1]}x{image.shape[0]}; they must match")
            else:
                mask = np.ones(image.shape[:2], bool)
        except (DecodeError, LimitError, OSError) as error:
            return Skipped(name, _reason(error, name))
        if self.transform.training:
            with torch.random.fork_rng(devices=[]):  # the caller's random state is untouched
                torch.manual_seed(hash((self.seed, self.epoch, int(index))) & 0x7FFF_FFFF)
                picture, region = self.transform(image, mask)
        else:
            picture, region = self.transform(image, mask)
        return (picture, region, torch.tensor(int(entry.labels[index])), torch.tensor(int(index)),
                torch.tensor(bool(mask_path)))

    def _read(self, relative: str, name: str, grey: bool) -> np.ndarray:
        path = os.path.join(self.root, relative)
        size = os.path.getsize(path)
        if size > self.limits.max_file_bytes:
            raise LimitError(f"{size_text(size)}, over the {size_text(self.limits.max_file_bytes)}"
                             " limit per file")
        with open(path, "rb") as handle:
            raw = handle.read()
        return decode_image(raw, name, grey, self.limits.max_pixels)[0]


def _reason(error: Exception, name: str) -> str:
    """The error's message without the entry's name in front (the Skipped names it)."""
    text = str(error) if not isinstance(error, OSError) else \
        f"cannot be opened ({type(error).__name__}: {error.strerror or error})"
    return text[len(name) + 2:] if text.startswith(f"{name}: ") else text


def collate(items: list[Any]) -> StreamBatch:
    """Stack the usable items of a batch; :class:`Skipped` ones go to ``skipped``."""
    usable = [item for item in items if not isinstance(item, Skipped)]
    skipped = tuple(item for item in items if isinstance(item, Skipped))
    if not usable:
        return StreamBatch(torch.zeros(0, 3, 1, 1), torch.zeros(0, 1, 1, 1),
                           torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64),
                           torch.zeros(0, dtype=torch.bool), skipped)
    images, masks, labels, indices, has_mask = (torch.stack(column)
                                                for column in zip(*usable, strict=True))
    return StreamBatch(images, masks, labels, indices, has_mask, skipped)


@dataclass
class SkipLog:
    """Every entry left out during a run, once each, and a summary by reason."""

    skipped: dict[str, str] = field(default_factory=dict)

    def add(self, items: Iterable[Skipped]) -> list[Skipped]:
        """Record ``items``; returns those not seen before (to report each once)."""
        new = [item for item in items if item.name not in self.skipped]
        for item in new:
            self.skipped[item.name] = item.reason
        return new

    def __len__(self) -> int:
        return len(self.skipped)

    def summary(self) -> str:
        """E.g. ``"3 images skipped: 2 cannot be read as an image, 1 mask is 5x5, …"``;
        ``"no image skipped"`` when there were none."""
        if not self.skipped:
            return "no image skipped"
        kinds = Counter(_kind(reason) for reason in self.skipped.values())
        parts = ", ".join(f"{count} {kind}" for kind, count in kinds.most_common())
        return f"{len(self.skipped)} image(s) skipped: {parts}"


def _kind(reason: str) -> str:
    """A reason without its specific numbers, to count alike ones together."""
    return reason.split(";")[0].split(" (")[0]


def stream_loader(dataset: Dataset, batch_size: int, workers: int = 0,
                  sampler: Sampler | None = None, pin_memory: bool = False,
                  shuffle: bool = False) -> DataLoader:
    """A DataLoader over ``dataset`` with ``workers`` decoding processes.

    A :class:`StreamingDataset` gets :func:`collate` (batches are :class:`StreamBatch`), two
    batches prefetched per worker; any other dataset (an in-memory ``ImageSet``) is loaded as
    before, in the calling process.
    """
    streaming = isinstance(dataset, StreamingDataset)
    options: dict[str, Any] = {}
    if streaming and workers > 0:
        options = {"num_workers": workers, "prefetch_factor": 2,
                   "multiprocessing_context": _context()}
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, shuffle=shuffle,
                      collate_fn=collate if streaming else None, pin_memory=pin_memory,
                      **options)


def _context() -> str | None:
    """``fork`` where it exists (workers start in milliseconds and share the catalogue's
    arrays); elsewhere the platform's default."""
    return "fork" if "fork" in torch.multiprocessing.get_all_start_methods() else None


def batch_parts(batch: Any) -> tuple[Tensor, Tensor, Tensor, tuple[Skipped, ...]]:
    """(images, masks, labels, skipped) of a :class:`StreamBatch` or a plain
    ``(images, masks, labels)`` batch (nothing skipped)."""
    if isinstance(batch, StreamBatch):
        return batch.images, batch.masks, batch.labels, batch.skipped
    images, masks, labels = batch[:3]
    return images, masks, labels, ()
