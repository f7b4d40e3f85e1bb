"""Evaluation: accuracy and mean background-relevance share, per test condition.

``python -m isnet.evaluate CKPT [CKPT ...] --split biased unbiased confounding [--json]``
rebuilds each checkpoint's test images from its saved data description
(:class:`isnet.experiment.ExperimentData`) and prints one row per (checkpoint, split).

The background share of an image is ``Σ|R|`` outside the foreground mask over ``Σ|R|`` for the
LRP heatmap of the model's *predicted* class (z^B input rule, ε = 0.01 by default): 0 means all
relevance lies on the object, 1 all on the background. A model that uses a background shortcut
has a high share.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from isnet.heatmap_loss import background_share
from isnet.isnet_model import explain
from isnet.models import DenseNet


def measure(model: DenseNet, data: Any, batch_size: int = 64, epsilon: float = 0.01,
            zb: bool = True, limit_batches: int | None = None) -> dict[str, float]:
    """Accuracy and mean background share of ``model`` (in ``eval()`` mode) on ``data``.

    Args:
        model: the DenseNet (left in ``eval()`` mode afterwards).
        data: an ``ImageSet`` or a Dataset of (image (C, H, W), mask (1, H, W), label ()).
        batch_size: images per forward pass.
        epsilon: ε of the LRP ε-rule.
        zb: z^B rule at the input layer.
        limit_batches: stop after this many batches (None = all).

    Returns:
        ``{"accuracy": float, "background_share": float, "count": int}``.

    Raises:
        ValueError: if ``data`` is empty or of an unknown kind.
    """
    dataset = as_dataset(data)
    if len(dataset) == 0:
        raise ValueError("measure: the data set is empty")
    model.eval()
    correct, share, count = 0, 0.0, 0
    with torch.no_grad():
        for index, (images, masks, labels) in enumerate(DataLoader(dataset, batch_size)):
            if limit_batches is not None and index >= limit_batches:
                break
            dtype = next(model.parameters()).dtype
            logits, heatmaps = explain(model, images.to(dtype), e=epsilon, zb=zb)  # (B, 1, C, H, W)
            correct += int((logits.argmax(1) == labels).sum())
            share += float(background_share(heatmaps, masks.to(dtype)).sum())
            count += len(labels)
    return {"accuracy": correct / count, "background_share": share / count, "count": count}


def evaluate_checkpoint(path: str | Path, splits: Sequence[str] = ("biased", "unbiased",
                                                                    "confounding"),
                        limit: int | None = None, batch_size: int = 64) -> dict[str, dict]:
    """Measure one checkpoint on each test condition rebuilt from its data description.

    Args:
        path: a checkpoint written by :func:`isnet.save_checkpoint` with a ``data`` field.
        splits: conditions to test (``"biased"``, ``"unbiased"``, ``"confounding"``).
        limit: test images per split (default: the description's ``test_limit``).
        batch_size: images per forward pass.

    Returns:
        ``{split: {"accuracy", "background_share", "count"}}``.

    Raises:
        ValueError: if the checkpoint has no data description to rebuild its test images.
    """
    from isnet.checkpoints import load_checkpoint
    from isnet.experiment import ExperimentData, evaluation_set

    model, metadata = load_checkpoint(path)
    if not metadata.get("data"):
        raise ValueError(f"{path}: the checkpoint has no 'data' description; evaluate it with "
                         "isnet.evaluate.measure(model, image_set) on your own images")
    data = ExperimentData.from_dict(metadata["data"])
    epsilon = float(metadata.get("config", {}).get("epsilon", 0.01))
    return {split: measure(model, evaluation_set(data, split, limit), batch_size, epsilon)
            for split in splits}


def format_table(results: dict[str, dict[str, dict]]) -> str:
    """Markdown table: one row per (checkpoint, split)."""
    lines = ["| checkpoint | split | accuracy (%) | background share | images |",
             "|---|---|---:|---:|---:|"]
    for name, per_split in results.items():
        for split, values in per_split.items():
            lines.append(f"| {name} | {split} | {100 * values['accuracy']:.1f} | "
                         f"{values['background_share']:.3f} | {values['count']} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m isnet.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", type=Path, help="checkpoint files")
    parser.add_argument("--split", nargs="+", default=["biased", "unbiased", "confounding"],
                        choices=["biased", "unbiased", "confounding"], help="test conditions")
    parser.add_argument("--limit", type=int, default=None, help="test images per split")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    results = {path.stem: evaluate_checkpoint(path, args.split, args.limit, args.batch_size)
               for path in args.checkpoints}
    sys.stdout.write((json.dumps(results, indent=2) if args.json else format_table(results))
                     + "\n")
    return 0


def as_dataset(data: Any) -> Dataset:
    """A Dataset of (image, mask, label) from an ``ImageSet``-like object or a Dataset.

    Raises:
        ValueError: for anything else.
    """
    if isinstance(data, Dataset):
        return data
    if all(hasattr(data, name) for name in ("images", "masks", "labels")):
        return TensorDataset(data.images, data.masks, data.labels)
    raise ValueError(f"expected an ImageSet or a Dataset of (image, mask, label), got "
                     f"{type(data).__name__}")


if __name__ == "__main__":
    raise SystemExit(main())
