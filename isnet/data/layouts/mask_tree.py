"""Layout ``mask-tree``: an ImageFolder tree and a parallel mask tree.

::

    root/images/<class>/x.png     the image (any of .png, .jpg, .jpeg, .bmp, .tif)
    root/masks/<class>/x.png      its mask: same relative path; any image suffix (x.jpg's mask
                                  may be x.png)

Optional split level: ``root/images/<split>/<class>/x.png`` with ``<split>`` one of ``train``,
``val``, ``test`` (and the same under ``masks/``) sets each image's split.
"""

from __future__ import annotations

from pathlib import Path

from isnet.data.catalogue import Catalogue, from_rows
from isnet.data.layouts.listing import is_image, list_files

SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test")


def read_mask_tree(root: Path, class_names: list[str] | None = None) -> Catalogue:
    """List ``root/images/[<split>/]<class>/*`` and their masks under ``root/masks/``.

    Raises:
        ValueError: no usable image.
    """
    masks_by_stem: dict[str, str] = {}
    for name in list_files(root / "masks"):
        masks_by_stem.setdefault(name[: name.rindex(".")] if "." in name else name,
                                 f"masks/{name}")
    problems: list[str] = []
    rows, used = [], set()
    for name in list_files(root / "images"):
        shown = f"images/{name}"
        parts = name.split("/")
        if not is_image(name):
            problems.append(f"{shown}: not an image (.png, .jpg, .jpeg, .bmp, .tif) - left out")
            continue
        split = parts[0] if len(parts) == 3 and parts[0] in SPLIT_NAMES else ""
        if len(parts) != (3 if split else 2):
            problems.append(f"{shown}: expected images/<class>/<name> or "
                            "images/<split>/<class>/<name> - left out")
            continue
        stem = name[: name.rindex(".")]
        mask = masks_by_stem.get(stem, "")
        used.add(stem)
        rows.append((shown, mask, parts[-2], split, shown))
    for stem, mask in masks_by_stem.items():
        if stem not in used:
            problems.append(f"{mask}: mask without an image at the same path under images/ - "
                            "left out")
    return from_rows(root, "mask-tree", rows, problems, root, class_names)
