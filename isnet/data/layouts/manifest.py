"""Layout ``manifest``: a CSV file, one row per image: ``image, mask, label[, split]``.

The header row names the columns (any order; ``mask`` and ``split`` may be missing or empty in
a row). Paths are relative to the manifest's folder (absolute paths are refused: a manifest must
stay valid when its folder moves). ``split`` is ``train``, ``val`` or ``test``. A row with a
missing image, a missing mask file, an empty or unknown label, a path that climbs out of the
manifest's folder, or an unknown split is reported by its row number and left out; the other
rows load. Sizes and contents are checked later, when each image is decoded.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path, PurePosixPath

from isnet.data.catalogue import Catalogue, from_rows

REQUIRED_COLUMNS: tuple[str, ...] = ("image", "label")
SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test")


def read_manifest(path: Path, class_names: list[str] | None = None) -> Catalogue:
    """Read a CSV manifest (see the module docstring).

    Raises:
        ValueError: unreadable file, a missing ``image`` or ``label`` column, or no usable row.
    """
    root = path.parent
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = [name.strip().lower() for name in reader.fieldnames or []]
            missing = [name for name in REQUIRED_COLUMNS if name not in columns]
            if missing:
                raise ValueError(f"{path.name}: the header row must name the columns image, "
                                 f"mask, label[, split]; missing {', '.join(missing)} (found "
                                 f"{', '.join(columns) or 'nothing'})")
            raw_rows = [{key.strip().lower(): (value or "").strip() for key, value in row.items()
                         if key is not None} for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise ValueError(f"{path.name}: cannot be read as a CSV manifest "
                         f"({type(error).__name__}: {error})") from None
    problems: list[str] = []
    rows = []
    for number, row in enumerate(raw_rows, start=2):  # row 1 is the header
        where = f"{path.name} row {number}"
        checked = _checked_row(root, row, where, problems)
        if checked is not None:
            rows.append(checked)
    return from_rows(root, "manifest", rows, problems, path, class_names)


def _checked_row(root: Path, row: dict[str, str], where: str, problems: list[str]
                 ) -> tuple[str, str, str, str, str] | None:
    image, mask = row.get("image", ""), row.get("mask", "")
    label, split = row.get("label", ""), row.get("split", "").lower()
    if not image:
        problems.append(f"{where}: no image path - left out")
        return None
    shown = f"{where} ({image})"
    if not label:
        problems.append(f"{shown}: no label - left out")
        return None
    if split and split not in SPLIT_NAMES:
        problems.append(f"{shown}: split {split!r} is not one of train, val, test - left out")
        return None
    for kind, relative in (("image", image), ("mask", mask)):
        if not relative:
            continue
        if _climbs(relative):
            problems.append(f"{shown}: the {kind} path must be relative to the manifest's "
                            "folder and stay inside it - left out")
            return None
        if not os.path.isfile(root / relative):
            problems.append(f"{shown}: {kind} file {relative} not found - left out")
            return None
    return image, mask, label, split, shown


def _climbs(relative: str) -> bool:
    posix = PurePosixPath(relative.replace("\\", "/"))
    return posix.is_absolute() or ".." in posix.parts or (len(relative) > 1 and relative[1] == ":")
