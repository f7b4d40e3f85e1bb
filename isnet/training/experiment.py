"""The background-bias experiment: which images a run trains, validates and is tested on.

An :class:`ExperimentData` is a small, JSON-ready description (saved in every checkpoint's
``data`` field) from which the same images are rebuilt bit for bit:

* training and validation images come from disjoint, seeded subsets of the Fashion-MNIST
  *train* file, both in the run's training condition (``"biased"`` with the class-tied mark, as
  the paper's i.i.d. validation, or ``"unbiased"`` for the ceiling model);
* test images come from the Fashion-MNIST *test* file, in any of the three conditions of
  :mod:`isnet.data.bias.splits` (biased, unbiased, confounding).

The demo shortcut (:data:`DEMO_BIAS`) is an 8-pixel class-coded shape (type and colour) in the
top-left background corner of every image, perfectly tied to the label (strength 1).
Fashion-MNIST objects fill ~70 % of the frame, so a few images (~4 %) have no room for the mark
and stay unmarked.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from isnet.data.bias.config import BiasConfig
from isnet.data.bias.splits import SPLITS, make_split
from isnet.data.fashion_mnist import load_fashion_mnist
from isnet.data.image_set import ImageSet
from isnet.training.config import json_ready

DEMO_BIAS = BiasConfig(kind="shape", position="corner", corner="top_left", size=8, margin=1,
                       strength=1.0, on_no_room="skip")


@dataclass(frozen=True)
class ExperimentData:
    """How a run's images are made (see the module docstring).

    Attributes:
        size: image side in pixels.
        train_limit: training images (seeded subset of the train file).
        val_limit: validation images (disjoint from the training images).
        test_limit: test images per split (seeded subset of the test file).
        train_split: ``"biased"`` or ``"unbiased"``: condition of training and validation.
        bias: the background mark.
        seed: seeds the subsets and the marks.
        root: folder of the Fashion-MNIST IDX files (None = the system default).
    """

    size: int = 64
    train_limit: int = 4000
    val_limit: int = 500
    test_limit: int = 2000
    train_split: str = "biased"
    bias: BiasConfig = field(default_factory=lambda: DEMO_BIAS)
    seed: int = 0
    root: str | None = None

    def __post_init__(self) -> None:
        """Reject conditions and sizes that cannot be built."""
        if self.train_split not in ("biased", "unbiased"):
            raise ValueError(f"ExperimentData.train_split must be 'biased' or 'unbiased', got "
                             f"{self.train_split!r}")
        if min(self.train_limit, self.val_limit, self.test_limit) < 1:
            raise ValueError("ExperimentData limits must be at least 1")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (tuples become lists), with ``"dataset": "fashion-mnist"``."""
        return {"dataset": "fashion-mnist", **json_ready(asdict(self))}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ExperimentData:
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: for another dataset or unknown keys.
        """
        values = dict(values)
        dataset = values.pop("dataset", "fashion-mnist")
        if dataset != "fashion-mnist":
            raise ValueError(f"ExperimentData: only 'fashion-mnist' can be rebuilt, got "
                             f"{dataset!r}")
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"ExperimentData: unknown keys {unknown}")
        bias = values.pop("bias", None)
        if isinstance(bias, dict):
            bias = BiasConfig(**{k: tuple(v) if isinstance(v, list) else v
                                 for k, v in bias.items()})
        return cls(**values, **({"bias": bias} if bias is not None else {}))


def training_sets(data: ExperimentData) -> tuple[ImageSet, ImageSet]:
    """(train, validation) image sets in the training condition; disjoint and seeded.

    Shapes: images (N, 3, size, size) float32 in [0, 1]; masks (N, 1, size, size).
    """
    pool = load_fashion_mnist(data.root, split="train", size=data.size,
                              limit=data.train_limit + data.val_limit, seed=data.seed)
    images = make_split(pool.images, pool.masks, pool.labels, pool.num_classes,
                        split=data.train_split, bias=data.bias, seed=data.seed).images
    marked = ImageSet(images, pool.masks, pool.labels, list(pool.class_names))
    train = marked.subset(list(range(data.train_limit)))
    val = marked.subset(list(range(data.train_limit, len(marked))))
    return train, val


def evaluation_set(data: ExperimentData, split: str, limit: int | None = None) -> ImageSet:
    """Test images (from the test file) in one condition: biased, unbiased or confounding.

    Args:
        data: the experiment description.
        split: one of ``isnet.data.bias.SPLITS``.
        limit: overrides ``data.test_limit``.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    base = load_fashion_mnist(data.root, split="test", size=data.size,
                              limit=limit or data.test_limit, seed=data.seed)
    images = make_split(base.images, base.masks, base.labels, base.num_classes, split=split,
                        bias=data.bias, seed=data.seed + 1).images
    return ImageSet(images, base.masks, base.labels, list(base.class_names))


def checkpoint_data(metadata: dict[str, Any], source: Any, seed: int | None = None,
                    root: str | Path | None = None) -> ExperimentData:
    """The data description saved in a checkpoint's metadata (``source`` names the file in the
    error), with its seed replaced by ``seed`` when given (the test images of another draw).

    The recorded data folder is a hint, never a requirement: it names a folder on the machine
    that trained the model. ``root`` replaces it when given; otherwise it is kept only when it
    holds the Fashion-MNIST test files, and the loader's default (Debian's package) is used
    instead.

    Raises:
        ValueError: the checkpoint has no data description, so its test images cannot be rebuilt.
    """
    if not metadata.get("data"):
        raise ValueError(f"{source}: the checkpoint has no 'data' description, so its test images "
                         "cannot be rebuilt; measure it on your own images instead "
                         "(isnet.measure(model, image_set), isnet.training.robustness.robustness"
                         "(model, data))")
    data = ExperimentData.from_dict(metadata["data"])
    if root is not None or (data.root is not None
                            and not any(Path(data.root).glob("t10k-images*"))):
        data = replace(data, root=None if root is None else str(root))
    return data if seed is None else replace(data, seed=int(seed))
