"""A dataset on disk opened for a run: its training, validation and test splits, streamed.

:func:`open_splits` reads the layout (:mod:`isnet.data.layouts`), takes the splits from the
source or a seeded stratified ratio (:mod:`isnet.data.splits`), or from separate validation and
test sources, and wraps each in a :class:`isnet.data.streaming.StreamingDataset` with the
training or evaluation transform (:mod:`isnet.data.transforms`). :meth:`DatasetSplits.describe`
is what a checkpoint records: each split's path, layout, counts and file-list hash, the
transforms, and every file left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from isnet.data.catalogue import Catalogue
from isnet.data.layouts import read_layout
from isnet.data.splits import split_catalogue
from isnet.data.streaming import StreamingDataset
from isnet.data.transforms import Preprocessing


@dataclass
class DatasetSplits:
    """The streamed splits of one run.

    Attributes:
        train: training images (with masks; augmented), or None when only evaluating.
        val, test: evaluation images, or None.
        class_names: K names, in logit order.
        preprocessing: input size, normalisation and augmentation.
        problems: every file or row left out while listing, naming it.
    """

    train: StreamingDataset | None
    val: StreamingDataset | None
    test: StreamingDataset | None
    class_names: list[str]
    preprocessing: Preprocessing
    problems: list[str] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        """JSON-ready record for a checkpoint's ``data`` entry."""
        splits = {name: part.catalogue.describe() for name, part in
                  (("train", self.train), ("val", self.val), ("test", self.test))
                  if part is not None}
        return {"dataset": "files", "class_names": list(self.class_names), "splits": splits,
                "transforms": self.preprocessing.describe(),
                "left_out_while_listing": len(self.problems),
                "left_out_examples": self.problems[:20]}


def open_splits(data: str | Path, preprocessing: Preprocessing, val_data: str | Path | None = None,
                test_data: str | Path | None = None, val_ratio: float = 0.1,
                test_ratio: float = 0.1, seed: int = 0, layout: str = "auto",
                class_names: list[str] | None = None, train_masks: bool = True) -> DatasetSplits:
    """Open a dataset for training (see the module docstring).

    Args:
        data: the training source (folder or manifest), which may also hold val and test.
        preprocessing: size, normalisation, augmentation.
        val_data, test_data: separate sources for those splits (their classes must be the
            training classes; other classes are left out with a problem each).
        val_ratio, test_ratio: when neither the source nor a separate source gives a split,
            these shares of each class (seeded, stratified) form it; 0 = none.
        seed: the split and the augmentation.
        layout: ``"auto"`` or one of :data:`isnet.data.layouts.LAYOUTS`.
        class_names: keep these classes in this order (e.g. the model's); None = all found.
        train_masks: leave out training images without a mask, with a problem each (the
            heatmap loss needs one).

    Raises:
        ValueError: no usable file, fewer than two classes, or an empty training split.
    """
    catalogue = read_layout(data, layout, class_names)
    if catalogue.num_classes < 2:
        raise ValueError(f"{Path(data).name}: found {catalogue.num_classes} class "
                         f"({catalogue.class_names}); a classifier needs at least two")
    parts = split_catalogue(catalogue, 0.0 if val_data else val_ratio,
                            0.0 if test_data else test_ratio, seed)
    problems = list(catalogue.problems)
    train = parts["train"]
    if train_masks and (train.masks == "").any():
        missing = np.flatnonzero(train.masks == "")
        problems += [f"{train.names[i]}: no mask - left out of training (the heatmap loss "
                     "needs one)" for i in missing]
        train = train.subset(np.flatnonzero(train.masks != ""), problems=[])
    if len(train) == 0:
        raise ValueError(f"{Path(data).name}: no training image with a mask is left; "
                         f"first problems: {problems[:3]}")
    others = {}
    for name, source in (("val", val_data), ("test", test_data)):
        part = parts[name]
        if source is not None:
            part = read_layout(source, layout, catalogue.class_names)
            problems += part.problems
        others[name] = _evaluation(part, preprocessing, seed) if len(part) else None
    return DatasetSplits(StreamingDataset(train, preprocessing.training(), seed),
                         others["val"], others["test"], list(catalogue.class_names),
                         preprocessing, problems)


def open_evaluation(data: str | Path, preprocessing: Preprocessing,
                    class_names: list[str] | None = None, layout: str = "auto",
                    seed: int = 0) -> tuple[StreamingDataset, list[str]]:
    """Every image of a source for evaluation or audit (masks optional), with the problems
    found while listing.

    Raises:
        ValueError: no usable file.
    """
    catalogue = read_layout(data, layout, class_names)
    return _evaluation(catalogue, preprocessing, seed), list(catalogue.problems)


def _evaluation(catalogue: Catalogue, preprocessing: Preprocessing,
                seed: int) -> StreamingDataset:
    return StreamingDataset(catalogue, preprocessing.evaluation(), seed)
