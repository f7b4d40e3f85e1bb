"""Write the bundled Fashion-MNIST shortcut experiment to disk as an image dataset with masks.

``python -m scripts.export_folder_dataset --out DIR [--train N --val N --test N --size S]``

It writes the same images in the three layouts ``python -m isnet.train --data`` and
``python -m isnet.audit --data`` read (:mod:`isnet.data.layouts`), each with train, val and test
splits:

* ``DIR/class-folders/{train,val,test}/<class>/<name>.png`` with ``<name>.mask.png``;
* ``DIR/mask-tree/images/{train,val,test}/<class>/<name>.png`` and ``DIR/mask-tree/masks/…``;
* ``DIR/manifest/manifest.csv`` (image, mask, label, split) over ``DIR/manifest/files/…``.

Training and validation images carry the experiment's planted shortcut (a class-coloured shape
in the top-left corner, :data:`isnet.training.experiment.DEMO_BIAS`); test images are written in
the ``--test-condition`` (``unbiased`` by default: no mark, so a model that learned the shortcut
loses accuracy there). ``--grey`` writes single-channel PNGs, like X-rays. The folder must not
exist unless ``--overwrite`` is given.
"""

from __future__ import annotations

import argparse
import csv
import io
import shutil
from pathlib import Path

import cv2
import numpy as np

from isnet.data.image_set import ImageSet
from isnet.training.experiment import ExperimentData, evaluation_set, training_sets


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command-line options."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--train", type=int, default=2000)
    parser.add_argument("--val", type=int, default=300)
    parser.add_argument("--test", type=int, default=500)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test-condition", default="unbiased",
                        choices=["biased", "unbiased", "confounding"])
    parser.add_argument("--layouts", nargs="+", default=["class-folders", "mask-tree", "manifest"],
                        choices=["class-folders", "mask-tree", "manifest"])
    parser.add_argument("--grey", action="store_true", help="single-channel images")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    return parser.parse_args(argv)


def experiment_splits(args: argparse.Namespace) -> dict[str, ImageSet]:
    """The experiment's train, val and test image sets."""
    data = ExperimentData(size=args.size, train_limit=args.train, val_limit=args.val,
                          test_limit=args.test, seed=args.seed)
    train, val = training_sets(data)
    return {"train": train, "val": val, "test": evaluation_set(data, args.test_condition)}


def png(array: np.ndarray) -> bytes:
    """PNG bytes of a uint8 (H, W) grey or (H, W, 3) RGB array."""
    data = array if array.ndim == 2 else cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".png", data)
    if not ok:
        raise ValueError("PNG encoding failed")
    return encoded.tobytes()


def pictures(images: ImageSet, index: int, grey: bool) -> tuple[bytes, bytes]:
    """(image PNG, mask PNG) of image ``index``."""
    pixels = np.round(images.images[index].permute(1, 2, 0).clamp(0, 1).numpy() * 255)
    pixels = pixels.astype(np.uint8)
    if grey:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
    mask = (images.masks[index, 0].numpy() > 0.5).astype(np.uint8) * 255
    return png(pixels), png(mask)


def export(args: argparse.Namespace) -> dict[str, int]:
    """Write every layout; returns images written per layout."""
    if args.out.exists():
        if not args.overwrite:
            raise SystemExit(f"{args.out} exists; pass --overwrite or choose another --out")
        shutil.rmtree(args.out)
    splits = experiment_splits(args)
    rows: list[tuple[str, str, str, str]] = []
    written = dict.fromkeys(args.layouts, 0)
    for split, images in splits.items():
        folders = [name.replace("/", "_").replace(" ", "_") for name in images.class_names]
        for index in range(len(images)):
            image, mask = pictures(images, index, args.grey)
            folder = folders[int(images.labels[index])]
            stem = f"{split}_{index:05d}"
            targets = {
                "class-folders": (f"class-folders/{split}/{folder}/{stem}.png",
                                  f"class-folders/{split}/{folder}/{stem}.mask.png"),
                "mask-tree": (f"mask-tree/images/{split}/{folder}/{stem}.png",
                              f"mask-tree/masks/{split}/{folder}/{stem}.png"),
                "manifest": (f"manifest/files/{folder}/{stem}.png",
                             f"manifest/files/{folder}/{stem}.mask.png")}
            for layout in args.layouts:
                for relative, content in zip(targets[layout], (image, mask), strict=True):
                    path = args.out / relative
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(content)
                written[layout] += 1
            rows.append((targets["manifest"][0][len("manifest/"):],
                         targets["manifest"][1][len("manifest/"):], folder, split))
    if "manifest" in args.layouts:
        text = io.StringIO()
        table = csv.writer(text, lineterminator="\n")
        table.writerow(["image", "mask", "label", "split"])
        table.writerows(rows)
        (args.out / "manifest" / "manifest.csv").write_text(text.getvalue())
    return written


def main(argv: list[str] | None = None) -> int:
    """Export and say what was written."""
    args = parse_args(argv)
    for layout, count in export(args).items():
        print(f"{layout}: {count} images with masks under {args.out / layout}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
