"""Evaluation: accuracy and mean background-relevance share, per test condition.

:func:`evaluate_checkpoint` rebuilds a checkpoint's test images from its saved data description
(:class:`isnet.training.experiment.ExperimentData`); the command ``python -m isnet.evaluate``
prints the results.

The background share of an image is ``Σ|R|`` outside the foreground mask over ``Σ|R|`` for the
LRP heatmap of the model's *predicted* class (z^B input rule, ε = 0.01 by default): 0 means all
relevance lies on the object, 1 all on the background. A model that uses a background shortcut
has a high share. Networks without an LRP walk (the U-Nets and the ViT of
:mod:`isnet.training.methods`) are measured on their native map instead (the predicted mask,
attention rollout), and any network can be measured on a given ``explainer``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from isnet.data.image_set import as_dataset
from isnet.data.streaming import batch_parts, stream_loader
from isnet.io.checkpoints import load_checkpoint
from isnet.loss import background_share
from isnet.lrp.config import LRPConfig
from isnet.lrp.registry import is_lrp_ready
from isnet.training.experiment import checkpoint_data, evaluation_set
from isnet.training.methods import native_explainer_for
from isnet.wrapper import explain


def measure(model: nn.Module, data: Any, batch_size: int = 64, epsilon: float = 0.01,
            zb: bool = True, limit_batches: int | None = None,
            explainer: Callable[[nn.Module, Tensor], tuple[Tensor, Tensor]] | None = None,
            bounds: tuple[Any, Any] = (0.0, 1.0), workers: int = 0) -> dict[str, float]:
    """Accuracy and mean background share of ``model`` (in ``eval()`` mode) on ``data``.

    Args:
        model: the network (left in ``eval()`` mode afterwards).
        data: an ``ImageSet`` or a Dataset of (image (C, H, W), mask (1, H, W), label ()).
        batch_size: images per forward pass.
        epsilon: ε of the LRP ε-rule.
        zb: z^B rule at the input layer.
        limit_batches: stop after this many batches (None = all).
        explainer: ``(model, images) -> (logits (B, K), maps (B, M, C, H, W))`` used instead of
            LRP (e.g. ``isnet.training.methods.as_explainer(method.native_map)``); None = LRP,
            or the registered native map for a network without an LRP walk.
        bounds: the z^B input range (normalised pixels need theirs, e.g.
            :attr:`isnet.training.config.TrainConfig.bounds`).
        workers: decoding processes for a :class:`isnet.data.streaming.StreamingDataset`
            (images it cannot read are left out of the count).

    Returns:
        ``{"accuracy": float, "background_share": float, "count": int}``.

    Raises:
        ValueError: if ``data`` is empty or of an unknown kind.
    """
    dataset = as_dataset(data)
    if len(dataset) == 0:
        raise ValueError("measure: the data set is empty")
    if explainer is None and not is_lrp_ready(model):
        explainer = native_explainer_for(model)
        if explainer is None:
            raise ValueError(f"measure: {type(model).__name__} has neither an LRP walk nor a "
                             "native explainer; pass explainer=")
    model.eval()
    correct, share, count = 0, 0.0, 0
    with torch.no_grad():
        for index, batch in enumerate(stream_loader(dataset, batch_size, workers)):
            if limit_batches is not None and index >= limit_batches:
                break
            images, masks, labels, _ = batch_parts(batch)
            if len(labels) == 0:
                continue
            reference = next(model.parameters())  # batches follow the model's device and dtype
            images, masks, labels = (images.to(reference.device, reference.dtype),
                                     masks.to(reference.device, reference.dtype),
                                     labels.to(reference.device))
            if explainer is None:
                logits, heatmaps = explain(model, images, epsilon=epsilon, zb=zb, bounds=bounds)
            else:
                logits, heatmaps = explainer(model, images)  # (B, M, C|1, H, W)
            correct += int((logits.argmax(1) == labels).sum())
            share += float(background_share(heatmaps, masks).sum())
            count += len(labels)
    if count == 0:
        raise ValueError("measure: no image of the data set could be read")
    return {"accuracy": correct / count, "background_share": share / count, "count": count}


def evaluate_checkpoint(path: str | Path, splits: Sequence[str] = ("biased", "unbiased",
                                                                    "confounding"),
                        limit: int | None = None, batch_size: int = 64,
                        zb: bool | None = None, data_seed: int | None = None,
                        data_root: str | Path | None = None,
                        progress: Callable[[int, int], None] | None = None) -> dict[str, dict]:
    """Measure one checkpoint on each test condition rebuilt from its data description.

    Args:
        path: a checkpoint written by :func:`isnet.save_checkpoint` with a ``data`` field.
        splits: conditions to test (``"biased"``, ``"unbiased"``, ``"confounding"``).
        limit: test images per split (default: the description's ``test_limit``).
        batch_size: images per forward pass.
        zb: the input layer's rule for the background share (None: the one the model was
            trained with, ``config.zb``; z^B when the checkpoint does not say).
        data_seed: rebuild the test images with this seed instead of the description's (to
            compare runs trained on different draws of the data on the same test images).
        data_root: folder of the Fashion-MNIST files (default: the checkpoint's recorded folder
            if it holds them, else the loader's default; see
            :func:`isnet.training.experiment.checkpoint_data`).
        progress: called as ``progress(images measured, images in all splits)`` after each
            batch (the splits are then measured batch by batch; the results are the same).

    Returns:
        ``{split: {"accuracy", "background_share", "count", "zb"}}``.

    Raises:
        ValueError: if the checkpoint has no data description to rebuild its test images.
    """
    model, metadata = load_checkpoint(path)
    data = checkpoint_data(metadata, path, data_seed, data_root)
    trained = LRPConfig.as_trained(metadata.get("config"))
    epsilon, zb = trained.epsilon, trained.zb if zb is None else zb
    sets = {split: evaluation_set(data, split, limit) for split in splits}
    total, done, results = sum(len(images) for images in sets.values()), 0, {}
    for split, images in sets.items():
        step = batch_size if progress is not None else len(images)
        parts = []  # one measure per step; counts weight the means
        for start in range(0, len(images), step):
            chunk = images.subset(list(range(start, min(start + step, len(images)))))
            parts.append(measure(model, chunk, batch_size, epsilon, zb))
            done += int(parts[-1]["count"])
            if progress is not None:
                progress(done, total)
        count = sum(int(part["count"]) for part in parts)
        correct = round(sum(part["accuracy"] * part["count"] for part in parts))
        share = sum(part["background_share"] * part["count"] for part in parts)
        results[split] = {"accuracy": correct / count, "background_share": share / count,
                          "count": count, "zb": zb}
    return results
