"""The three ways a dataset can lie on disk, and :func:`read_layout`, which tells them apart.

* ``class-folders`` (:mod:`.class_folders`): ``root/<class>/x.png`` with ``x.mask.png`` beside
  it, the layout the explorer's uploads use;
* ``mask-tree`` (:mod:`.mask_tree`): an ImageFolder tree and a parallel mask tree,
  ``root/images/<class>/x.png`` and ``root/masks/<class>/x.png``;
* ``manifest`` (:mod:`.manifest`): a CSV file with one row per image, ``image, mask, label[,
  split]``, paths relative to the manifest, the usual form of medical datasets.

Each reader lists files and checks what it can without decoding (a missing file, a mask without
an image, an unknown class), so that a folder of 50,000 images is ready in seconds. Each returns
a :class:`isnet.data.catalogue.Catalogue` whose ``problems`` name every file or row it left out.
"""

from __future__ import annotations

from pathlib import Path

from isnet.data.catalogue import Catalogue
from isnet.data.layouts.class_folders import read_class_folders
from isnet.data.layouts.manifest import read_manifest
from isnet.data.layouts.mask_tree import read_mask_tree

LAYOUTS: tuple[str, ...] = ("class-folders", "mask-tree", "manifest")


def detect_layout(path: str | Path) -> str:
    """The layout of ``path``: ``manifest`` for a ``.csv`` file, ``mask-tree`` for a folder with
    ``images/`` and ``masks/`` inside, else ``class-folders``.

    Raises:
        ValueError: ``path`` does not exist, or is a file that is not a CSV manifest.
    """
    source = Path(path)
    if source.is_file():
        if source.suffix.lower() == ".csv":
            return "manifest"
        raise ValueError(f"{source.name}: a dataset is a folder or a .csv manifest (image, mask, "
                         "label[, split])")
    if not source.is_dir():
        raise ValueError(f"{source}: no such folder or manifest")
    if (source / "images").is_dir() and (source / "masks").is_dir():
        return "mask-tree"
    return "class-folders"


def read_layout(path: str | Path, layout: str = "auto",
                class_names: list[str] | None = None) -> Catalogue:
    """List a dataset in any of :data:`LAYOUTS` (``"auto"``: :func:`detect_layout`).

    Args:
        path: the folder, or the manifest file.
        layout: one of :data:`LAYOUTS`, or ``"auto"``.
        class_names: the classes to keep, in logit order (e.g. a trained model's); None: every
            class found. Entries of other classes are left out with a problem each.

    Raises:
        ValueError: unknown layout, no such path, or nothing usable (the message says what was
            expected).
    """
    chosen = detect_layout(path) if layout == "auto" else layout
    readers = {"class-folders": read_class_folders, "mask-tree": read_mask_tree,
               "manifest": read_manifest}
    if chosen not in readers:
        raise ValueError(f"unknown layout {layout!r}; choose auto or one of {', '.join(LAYOUTS)}")
    return readers[chosen](Path(path), class_names)


__all__ = ["LAYOUTS", "detect_layout", "read_layout"]
