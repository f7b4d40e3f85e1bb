"""Training, validation and test splits of a :class:`isnet.data.catalogue.Catalogue`.

A source that names each entry's split (a manifest's ``split`` column, a mask tree's
``images/<split>/`` level) is followed. Otherwise the entries are divided by a seeded, stratified
ratio: within each class, a random permutation drawn from ``seed`` alone puts the first
``round(n·test)`` entries in the test split, the next ``round(n·val)`` in validation and the rest
in training, so each split keeps the classes' proportions and the same seed gives the same files.
"""

from __future__ import annotations

import numpy as np

from isnet.data.catalogue import Catalogue

SPLITS: tuple[str, ...] = ("train", "val", "test")


def split_catalogue(catalogue: Catalogue, val_ratio: float = 0.1, test_ratio: float = 0.1,
                    seed: int = 0) -> dict[str, Catalogue]:
    """The entries of each split: the source's own when it names them, else by ratio.

    Args:
        catalogue: the listed dataset.
        val_ratio, test_ratio: shares of each class for validation and test (ignored when the
            source names splits); 0 leaves that split empty.
        seed: draws the stratified permutation.

    Returns:
        ``{"train", "val", "test"}`` → Catalogue (an empty split has no entries). Entries whose
        source names no split while others do are training entries.

    Raises:
        ValueError: ratios outside [0, 1) or together ≥ 1.
    """
    if not (0 <= val_ratio < 1 and 0 <= test_ratio < 1 and val_ratio + test_ratio < 1):
        raise ValueError(f"split ratios must be in [0, 1) with val + test < 1, got val="
                         f"{val_ratio}, test={test_ratio}")
    if (catalogue.splits != "").any():
        chosen = np.where(catalogue.splits == "", "train", catalogue.splits)
    else:
        chosen = stratified_splits(catalogue.labels, val_ratio, test_ratio, seed)
    return {name: catalogue.subset(np.flatnonzero(chosen == name)) for name in SPLITS}


def stratified_splits(labels: np.ndarray, val_ratio: float, test_ratio: float,
                      seed: int) -> np.ndarray:
    """Each entry's split name, stratified by class (see the module docstring).

    Shapes: labels (N,) int → (N,) str.
    """
    chosen = np.full(len(labels), "train", dtype="<U5")
    generator = np.random.default_rng(seed)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        members = members[generator.permutation(len(members))]
        tests = int(round(len(members) * test_ratio))
        vals = int(round(len(members) * val_ratio))
        chosen[members[:tests]] = "test"
        chosen[members[tests:tests + vals]] = "val"
    return chosen
