"""The README picture: every bias kind on real samples, in the paper's three test conditions.

Run ``python -m scripts.bias_grid --out docs/bias_grid.png`` (``--force`` replaces the file).
Columns: for each kind of :data:`isnet.data.bias.BIAS_KINDS`, one Fashion-MNIST and one synthetic
image; rows: biased (mark of the image's own class), unbiased (no mark) and confounding (mark
of another class, :func:`isnet.data.bias.confounding_class`). Each panel says which class the mark
shows.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

from isnet.data.bias.config import BIAS_KINDS, BiasConfig  # noqa: E402
from isnet.data.bias.splits import SPLITS, make_split  # noqa: E402
from isnet.data.fashion_mnist import load_fashion_mnist
from isnet.data.image_set import ImageSet  # noqa: E402
from isnet.data.synthetic import synthetic_shapes  # noqa: E402
from isnet.io.atomic import write_with  # noqa: E402

GRID_SIZE = 96
KIND_OPTIONS: dict[str, dict[str, object]] = {
    "shape": {},
    "decoy": {},
    "text": {},
    "tint": {"opacity": 0.45},
    "texture": {"opacity": 0.5},
}
"""Per-kind options used in the picture (tints and textures half transparent)."""


def grid_samples(fashion_root: str | Path | None = None) -> list[ImageSet]:
    """The two one-image sets shown per kind: a Fashion-MNIST sneaker and a synthetic object."""
    fashion = load_fashion_mnist(fashion_root, split="test", size=GRID_SIZE, indices=[9])
    synthetic = synthetic_shapes(8, size=GRID_SIZE, num_classes=4, seed=0)
    return [fashion, synthetic.subset([_most_contrasted(synthetic)])]


def _most_contrasted(image_set: ImageSet) -> int:
    """Index of the image whose object colour differs most from its background colour."""
    masks = image_set.masks  # (N, 1, H, W)
    inside = (image_set.images * masks).sum((2, 3)) / masks.sum((2, 3)).clamp_min(1)  # (N, C)
    outside = (image_set.images * (1 - masks)).sum((2, 3)) / (1 - masks).sum((2, 3)).clamp_min(1)
    return int((inside - outside).norm(dim=1).argmax())


def bias_grid_figure(samples: list[ImageSet], seed: int = 0) -> plt.Figure:
    """Draw the grid.

    Args:
        samples: Image sets whose first image is shown (each with its own class names).
        seed: Seeds the marks.

    Returns:
        The matplotlib figure (3 rows x len(BIAS_KINDS) * len(samples) columns).
    """
    columns = len(BIAS_KINDS) * len(samples)
    figure, axes = plt.subplots(len(SPLITS), columns, figsize=(1.45 * columns, 1.75 * len(SPLITS)),
                                squeeze=False)
    for kind_index, kind in enumerate(BIAS_KINDS):
        config = BiasConfig(kind=kind, on_no_room="skip", **KIND_OPTIONS[kind])
        for sample_index, sample in enumerate(samples):
            column = kind_index * len(samples) + sample_index
            for row, split in enumerate(SPLITS):
                result = make_split(sample.images[:1], sample.masks[:1], sample.labels[:1],
                                           sample.num_classes, split, config, seed)
                axis = axes[row, column]
                axis.imshow(result.images[0].permute(1, 2, 0).clamp(0, 1).numpy())
                axis.set_xticks([])
                axis.set_yticks([])
                mark = int(result.mark_classes[0])
                caption = "no mark" if mark < 0 else f"mark: {sample.class_names[mark]}"
                axis.set_xlabel(caption, fontsize=7)
                if row == 0:
                    label = sample.class_names[int(sample.labels[0])]
                    axis.set_title(f"{kind}\n({label})", fontsize=8)
                if column == 0:
                    axis.set_ylabel(split, fontsize=9)
    figure.suptitle("Synthetic background bias: biased / unbiased / confounding", fontsize=10)
    figure.tight_layout()
    return figure


def save_bias_grid(out: str | Path, force: bool = False, seed: int = 0,
                   fashion_root: str | Path | None = None) -> Path:
    """Render the grid to a PNG file, atomically; refuse to replace a file unless ``force``."""
    out = Path(out)
    if out.exists() and not force:
        raise ValueError(f"{out} exists; pass --force to replace it")
    figure = bias_grid_figure(grid_samples(fashion_root), seed)
    try:
        write_with(out, lambda temporary: figure.savefig(temporary, dpi=110, format="png"),
                   overwrite=True)
    finally:
        plt.close(figure)
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description="Draw every bias kind on sample images.")
    parser.add_argument("--out", default="docs/bias_grid.png")
    parser.add_argument("--force", action="store_true", help="replace an existing file")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fashion-root", default=None)
    args = parser.parse_args(argv)
    try:
        print(save_bias_grid(args.out, args.force, args.seed, args.fashion_root))
    except ValueError as error:
        print(f"bias_grid: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
