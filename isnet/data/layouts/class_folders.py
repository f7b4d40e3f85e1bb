"""Layout ``class-folders``: ``root/<class>/x.png`` with its mask ``root/<class>/x.mask.png``.

The folder name is the class name; given a model's class names, folders match them forgivingly
(case, ``/`` ↔ ``-`` ``_`` and spaces, or a ``classes.csv`` of ``folder,class`` rows at the root:
:mod:`isnet.data.layouts.class_matching`). An image without a mask is kept with no mask (its heatmap
loss is then not computed; evaluation and audit sets need none); a mask without an image, and a
file outside a class folder, are reported and left out.
"""

from __future__ import annotations

from pathlib import Path

from isnet.data.catalogue import Catalogue, from_rows
from isnet.data.layouts.class_matching import MAPPING_FILE, match_classes, read_mapping
from isnet.data.layouts.listing import MASK_SUFFIX, is_image, list_files


def read_class_folders(root: Path, class_names: list[str] | None = None) -> Catalogue:
    """List ``root/<class>/<name>.<ext>`` images and their ``<name>.mask.png`` masks; with
    ``class_names``, each folder stands for the class it matches (see the module docstring).

    Raises:
        ValueError: no usable image, or a bad ``classes.csv``.
    """
    files = [name for name in list_files(root) if name != MAPPING_FILE]
    masks = {name[: -len(MASK_SUFFIX)]: name for name in files
             if name.lower().endswith(MASK_SUFFIX)}  # stem → mask file (any case of suffix)
    image_stems = {name[: name.rindex(".")] for name in files if is_image(name)}
    problems: list[str] = []
    rows = []
    for name in files:
        parts = name.split("/")
        if name.lower().endswith(MASK_SUFFIX):
            if name[: -len(MASK_SUFFIX)] not in image_stems:
                problems.append(f"{name}: mask without an image next to it - left out")
            continue
        if not is_image(name):
            problems.append(f"{name}: not an image (.png, .jpg, .jpeg, .bmp, .tif) - left out")
            continue
        if len(parts) != 2:
            problems.append(f"{name}: not inside a class folder (expected <class>/<name>.png) - "
                            "left out")
            continue
        rows.append((name, masks.get(name[: name.rindex(".")], ""), parts[0], "", name))
    if class_names is not None:
        match = match_classes(sorted({row[2] for row in rows}), class_names, read_mapping(root))
        rows = [row[:2] + (match.matched.get(row[2], row[2]),) + row[3:] for row in rows]
    return from_rows(root, "class-folders", rows, problems, root, class_names)
