"""Class folders ↔ a model's class names, matched forgivingly, and the match said out loud.

A folder cannot be called ``T-shirt/top`` (``/`` separates folders), and people write
``t-shirt_top``, ``T-Shirt Top`` or ``tshirt-top``. A folder matches a class when both read the
same after :func:`spelling_key`: lower case, and every run of ``/``, ``-``, ``_``, ``.`` and
white space turned into one space. An optional ``classes.csv`` at the set's root (rows
``folder,class``, a header row ``folder,class`` allowed) names the class of any folder outright;
it wins over the spelling rule.

:func:`match_classes` returns a :class:`ClassMatch`: which folder became which class, which
folders match none (their images are left out) and which classes have no folder. Both the layout
reader (:func:`isnet.data.layouts.class_folders.read_class_folders`) and the explorer's audit
and fine-tune use it, so a spelling difference never silently drops a folder or, in a
fine-tune, silently trains a new classifier head.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from isnet.data.image_set import ImageSet

MAPPING_FILE = "classes.csv"
"""The optional ``folder,class`` mapping at a set's root."""
_SEPARATORS = re.compile(r"[\s/\-_.]+")


def spelling_key(name: str) -> str:
    """``name`` as the matching compares it: ``"T-shirt/top"`` → ``"t shirt top"``."""
    return _SEPARATORS.sub(" ", str(name)).strip().casefold()


@dataclass(frozen=True)
class ClassMatch:
    """How a set's folders map onto a model's classes.

    Attributes:
        class_names: the model's classes, in logit order.
        matched: folder → class name, for every folder that matched.
        unmatched: folders matching no class (their images are left out).
        missing: classes no folder matched.
        mapped: folders named by ``classes.csv`` (the rest matched by spelling).
    """

    class_names: tuple[str, ...]
    matched: dict[str, str] = field(default_factory=dict)
    unmatched: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    mapped: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        """Every folder found a class."""
        return not self.unmatched

    @property
    def any(self) -> bool:
        """At least one folder found a class."""
        return bool(self.matched)

    def lines(self) -> list[str]:
        """Plain sentences: what matched (spelling differences shown), what did not."""
        renamed = [f"{folder} → {name}" + (" (classes.csv)" if folder in self.mapped else "")
                   for folder, name in self.matched.items() if folder != name]
        lines = [f"{len(self.matched)} of {len(self.matched) + len(self.unmatched)} folder(s) "
                 f"match the model's classes" + (f": {'; '.join(renamed)}" if renamed else ".")]
        if self.unmatched:
            known = ", ".join(self.class_names[:20]) + (", …" if len(self.class_names) > 20
                                                       else "")
            lines.append(f"No class for folder(s) {', '.join(self.unmatched)}: their images are "
                         f"left out. The model knows {known}; rename the folder or add a "
                         f"{MAPPING_FILE} (folder,class) at the set's root.")
        if self.missing:
            lines.append(f"No folder for class(es) {', '.join(self.missing)}.")
        return lines

    def record(self) -> dict:
        """JSON-ready: ``{"matched": {folder: class}, "unmatched": [...], "missing": [...]}``."""
        return {"matched": dict(self.matched), "unmatched": list(self.unmatched),
                "missing": list(self.missing), "mapped": list(self.mapped)}


def match_classes(folders: Sequence[str], class_names: Sequence[str],
                  mapping: Mapping[str, str] | None = None) -> ClassMatch:
    """Match folder names to ``class_names`` (see the module docstring).

    Args:
        folders: the set's class folder names.
        class_names: the model's classes, in logit order.
        mapping: folder → class (a ``classes.csv``); its classes are matched by spelling too.

    Raises:
        ValueError: the mapping names a class the model does not have.

    Classes that read the same under :func:`spelling_key` (ImageNet's "Cardigan" and
    "cardigan") match only a folder of their exact name.
    """
    by_key: dict[str, str | None] = {}
    for name in class_names:
        by_key[spelling_key(name)] = None if spelling_key(name) in by_key else name
    exact = set(class_names)
    mapping = {spelling_key(k): v for k, v in (mapping or {}).items()}
    matched, unmatched, mapped = {}, [], []
    for folder in folders:
        wanted = mapping.get(spelling_key(folder))
        if wanted is not None:
            found = wanted if wanted in exact else by_key.get(spelling_key(wanted))
            if found is None:
                raise ValueError(f"{MAPPING_FILE}: folder {folder!r} is mapped to {wanted!r}, "
                                 f"which is not one of the model's classes "
                                 f"({', '.join(class_names[:20])}"
                                 f"{', …' if len(class_names) > 20 else ''})")
            matched[folder] = found
            mapped.append(folder)
            continue
        found = folder if folder in exact else by_key.get(spelling_key(folder))
        if found is None:
            unmatched.append(folder)
        else:
            matched[folder] = found
    taken = set(matched.values())
    return ClassMatch(tuple(class_names), matched, tuple(unmatched),
                      tuple(n for n in class_names if n not in taken), tuple(mapped))


def read_mapping(source: str | Path) -> dict[str, str]:
    """The ``classes.csv`` (folder,class) at the root of a folder or a zip; {} when absent.

    A zip holding a single top folder may keep it there too. Raises ValueError for a row that
    is not two non-empty fields.
    """
    source = Path(source)
    text = None
    if source.is_dir() and (source / MAPPING_FILE).is_file():
        text = (source / MAPPING_FILE).read_text(encoding="utf-8-sig")
    elif source.is_file() and zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as archive:
            names = [n for n in archive.namelist()
                     if n.split("/")[-1] == MAPPING_FILE and n.count("/") <= 1]
            if names:
                text = archive.read(min(names, key=len)).decode("utf-8-sig")
    if text is None:
        return {}
    mapping = {}
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or not any(cell.strip() for cell in row):
            continue
        if len(row) != 2 or not row[0].strip() or not row[1].strip():
            raise ValueError(f"{MAPPING_FILE} row {number}: expected folder,class, got {row}")
        if number == 1 and [c.strip().lower() for c in row] == ["folder", "class"]:
            continue
        mapping[row[0].strip()] = row[1].strip()
    return mapping


def in_model_classes(image_set: ImageSet, match: ClassMatch) -> ImageSet:
    """The set relabelled into the model's classes (logit order); images of unmatched folders
    are left out. ``image_set.class_names`` are the folder names.

    Shapes: images (N, 3, S, S), masks (N, 1, S, S) → the M ≤ N kept images.
    """
    index = {name: position for position, name in enumerate(match.class_names)}
    new_label = torch.tensor([index.get(match.matched.get(folder, ""), -1)
                              for folder in image_set.class_names], dtype=torch.long)
    labels = new_label[image_set.labels.long()]
    keep = labels >= 0
    return ImageSet(image_set.images[keep], image_set.masks[keep], labels[keep],
                    list(match.class_names))
