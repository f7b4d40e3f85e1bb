"""A dataset on disk as a list of files: what to read, never the pixels themselves.

A :class:`Catalogue` is what a layout reader (:mod:`isnet.data.layouts`) finds: one entry per
image with its mask file (or none), its class and, where the source says so, its split. It holds
paths as compact NumPy string arrays, so that 100,000 entries cost a few megabytes and DataLoader
workers share them without copying (Python lists of objects would be copied page by page as
their reference counts change). Decoding happens later, one image at a time
(:class:`isnet.data.streaming.StreamingDataset`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Catalogue:
    """Files of a dataset, their classes and splits.

    Attributes:
        root: the folder every path is relative to.
        layout: the layout the files were found in (``"class-folders"``, ``"mask-tree"``,
            ``"manifest"``).
        images: (N,) str, image paths relative to ``root``.
        masks: (N,) str, mask paths relative to ``root``; ``""`` where there is no mask.
        labels: (N,) int64 in [0, K).
        class_names: K names; ``class_names[labels[i]]`` is entry i's class.
        splits: (N,) str, each entry's split from the source (``"train"``, ``"val"``,
            ``"test"``) or ``""`` where the source names none.
        names: (N,) str, how messages name each entry (a manifest's row number and path).
        problems: one line per file or row that was left out, naming it and saying why.
        source: the path the user named (a folder or a manifest file).
    """

    root: Path
    layout: str
    images: np.ndarray
    masks: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    splits: np.ndarray
    names: np.ndarray
    problems: list[str] = field(default_factory=list)
    source: Path | None = None

    def __post_init__(self) -> None:
        """Check that every per-entry array has one value per image."""
        count = len(self.images)
        for name in ("masks", "labels", "splits", "names"):
            if len(getattr(self, name)) != count:
                raise ValueError(f"Catalogue.{name} has {len(getattr(self, name))} entries for "
                                 f"{count} images")

    def __len__(self) -> int:
        """Number of images N."""
        return len(self.images)

    @property
    def num_classes(self) -> int:
        """Number of classes K."""
        return len(self.class_names)

    @property
    def masked(self) -> int:
        """How many entries have a mask file."""
        return int((self.masks != "").sum())

    def subset(self, indices: np.ndarray | list[int], problems: list[str] | None = None
               ) -> Catalogue:
        """The entries at ``indices``, same root, layout and class names."""
        index = np.asarray(indices, dtype=np.int64)
        return Catalogue(self.root, self.layout, self.images[index], self.masks[index],
                         self.labels[index], list(self.class_names), self.splits[index],
                         self.names[index], list(self.problems if problems is None else problems),
                         self.source)

    def class_counts(self) -> dict[str, int]:
        """Images per class name."""
        counts = np.bincount(self.labels, minlength=self.num_classes)
        return {name: int(count) for name, count in zip(self.class_names, counts, strict=True)}

    def fingerprint(self) -> str:
        """SHA-256 of the sorted (image, mask, class) list: names the exact file list (not the
        files' contents, which would mean reading every byte)."""
        digest = hashlib.sha256()
        order = np.argsort(self.images, kind="stable")
        for index in order:
            digest.update(f"{self.images[index]}\t{self.masks[index]}\t"
                          f"{self.class_names[self.labels[index]]}\n".encode())
        return digest.hexdigest()

    def describe(self) -> dict[str, Any]:
        """What a checkpoint records about this data: path, layout, counts and the file list's
        hash (JSON-ready)."""
        return {"path": str(self.source or self.root), "layout": self.layout,
                "count": len(self), "masked": self.masked, "classes": self.class_counts(),
                "file_list_sha256": self.fingerprint(), "left_out": len(self.problems)}


def class_order(labels: set[str]) -> list[str]:
    """Class names in a stable order: numerically when every name is an integer ("2" before
    "10"), else alphabetically."""
    if labels and all(label.lstrip("-").isdigit() for label in labels):
        return sorted(labels, key=int)
    return sorted(labels)


def from_rows(root: Path, layout: str, rows: list[tuple[str, str, str, str, str]],
              problems: list[str], source: Path | None = None,
              class_names: list[str] | None = None) -> Catalogue:
    """A Catalogue from (image, mask, class name, split, display name) rows.

    Args:
        class_names: the classes to use, in logit order (e.g. the training set's, for a test
            set); a row of another class is left out with a problem. None: the classes found.

    Raises:
        ValueError: no usable row.
    """
    names = list(class_names) if class_names is not None else class_order({r[2] for r in rows})
    index = {name: position for position, name in enumerate(names)}
    kept = []
    for row in rows:
        if row[2] not in index:
            problems.append(f"{row[4]}: class {row[2]!r} is not one of the model's classes "
                            f"({', '.join(names[:10])}{', …' if len(names) > 10 else ''}) - "
                            "left out")
            continue
        kept.append(row)
    if not kept:
        raise ValueError(f"{(source or root).name}: no usable image was found"
                         + (f"; first problems: {problems[:3]}" if problems else ""))
    columns = list(zip(*kept, strict=True))
    return Catalogue(root=root, layout=layout, images=np.array(columns[0]),
                     masks=np.array(columns[1]),
                     labels=np.array([index[label] for label in columns[2]], dtype=np.int64),
                     class_names=names, splits=np.array(columns[3]), names=np.array(columns[4]),
                     problems=problems, source=source)
