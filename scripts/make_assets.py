"""Regenerate the sample images and masks the explorer offers (``assets/images``, ``assets/masks``).

Run ``python -m scripts.make_assets`` (``--force`` to replace existing files, ``--out`` for
another folder). It writes, under the same file name in both folders (mask: white = object):

* ``fashion_<class>_<index>.png``: the first Fashion-MNIST *test* image of six classes
  (``<index>`` = its position in ``t10k-images-idx3-ubyte``), upscaled from 28 px (plus the
  loader's 6 px black border) to 128 px, grey in three channels;
* ``synthetic_<class>_<i>.png``: the first image of each of four classes of
  ``synthetic_shapes(8, size=128, num_classes=4, seed=0)``.

Provenance and licences are in ``assets/README.md``. Every file is written atomically and an
existing file is never replaced without ``--force``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from isnet.data.fashion_mnist import (
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_ROOT,
    load_fashion_mnist,
    read_idx,
)
from isnet.data.folders import write_png
from isnet.data.synthetic import synthetic_shapes

ASSET_SIZE = 128
FASHION_SAMPLE_CLASSES: tuple[str, ...] = ("T-shirt/top", "Trouser", "Dress", "Sneaker", "Bag",
                                           "Ankle boot")


def slug(class_name: str) -> str:
    """File-name form of a class name: ``"T-shirt/top"`` -> ``"tshirt_top"``."""
    cleaned = class_name.lower().replace("-", "").replace("/", "_").replace(" ", "_")
    return "".join(ch for ch in cleaned if ch.isalnum() or ch == "_")


def _as_uint8(image: torch.Tensor, mask: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Image (3, H, W) in [0, 1] and mask (1, H, W) as uint8 RGB (H, W, 3) and (H, W) 0/255."""
    pixels = np.round(image.permute(1, 2, 0).clamp(0, 1).numpy() * 255).astype(np.uint8)
    return pixels, (mask[0].numpy() > 0.5).astype(np.uint8) * 255


def sample_assets(fashion_root: str | Path | None = None
                  ) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """The sample files as (file name, RGB uint8 (H, W, 3), mask uint8 (H, W) 0/255).

    Args:
        fashion_root: Folder of the Fashion-MNIST IDX files (default: Debian's location).

    Returns:
        Ten samples: six Fashion-MNIST, four synthetic, all 128 x 128.
    """
    root = Path(fashion_root) if fashion_root is not None else FASHION_MNIST_ROOT
    labels = read_idx(root / "t10k-labels-idx1-ubyte.gz") if (
        root / "t10k-labels-idx1-ubyte.gz").exists() else read_idx(root / "t10k-labels-idx1-ubyte")
    wanted = [FASHION_MNIST_CLASSES.index(name) for name in FASHION_SAMPLE_CLASSES]
    indices = [int(np.flatnonzero(labels == label)[0]) for label in wanted]
    fashion = load_fashion_mnist(root, split="test", size=ASSET_SIZE, indices=indices)
    samples = []
    for position, index in enumerate(indices):
        name = f"fashion_{slug(FASHION_SAMPLE_CLASSES[position])}_{index}.png"
        samples.append((name, *_as_uint8(fashion.images[position], fashion.masks[position])))
    synthetic = synthetic_shapes(8, size=ASSET_SIZE, num_classes=4, seed=0)
    for label, class_name in enumerate(synthetic.class_names):
        first = int(torch.nonzero(synthetic.labels == label)[0])
        samples.append((f"synthetic_{class_name}_{first}.png",
                        *_as_uint8(synthetic.images[first], synthetic.masks[first])))
    return samples


def write_assets(out: str | Path, force: bool = False,
                 fashion_root: str | Path | None = None) -> list[Path]:
    """Write every sample to ``out/images/<name>`` and its mask to ``out/masks/<name>``.

    Args:
        out: The assets folder.
        force: Replace existing files (otherwise an existing file raises ValueError first,
            before anything is written).
        fashion_root: Folder of the Fashion-MNIST IDX files.

    Returns:
        The image paths written.
    """
    out = Path(out)
    samples = sample_assets(fashion_root)
    targets = [(out / "images" / name, out / "masks" / name) for name, _, _ in samples]
    existing = [str(path) for pair in targets for path in pair if path.exists()]
    if existing and not force:
        raise ValueError(f"{len(existing)} asset file(s) exist (e.g. {existing[0]}); pass --force "
                         f"to regenerate them")
    for (image_path, mask_path), (_, image, mask) in zip(targets, samples, strict=False):
        write_png(image_path, image, overwrite=force)
        write_png(mask_path, mask, overwrite=force)
    return [image_path for image_path, _ in targets]


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description="Regenerate assets/images and assets/masks.")
    parser.add_argument("--out", default="assets", help="assets folder (default: assets)")
    parser.add_argument("--force", action="store_true", help="replace existing files")
    parser.add_argument("--fashion-root", default=None,
                        help="folder of the Fashion-MNIST IDX files")
    args = parser.parse_args(argv)
    try:
        written = write_assets(args.out, args.force, args.fashion_root)
    except ValueError as error:
        print(f"make_assets: {error}", file=sys.stderr)
        return 1
    print("\n".join(str(path) for path in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
