"""Audit a dataset of any size from disk, keeping only small per-image results.

:func:`audit_stream` explains each image's predicted class (LRP of the predicted logit, the
same explainer as :func:`isnet.analysis.audit.audit_images`) batch by batch from a DataLoader,
and keeps per image only what a dataset-level audit needs:

* prediction, its softmax probability, the true class and the background share
  ``Σ|R| outside the mask / Σ|R|`` (NaN without a mask file);
* the relevance map downsized by area to ``map_size × map_size`` and scaled to a peak of 1
  (:func:`isnet.analysis.strategies.normalised_maps`, what SpRAy clusters), as float16:
  512 bytes per image at 16 px, so 50,000 images cost 25 MB;
* the full picture and map of only the ``keep_top`` most background-reliant images so far (a
  heap), for the report.

Memory therefore grows by a few hundred bytes per image, never by the images themselves.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from isnet.analysis.audit import Explainer, lrp_explainer
from isnet.analysis.strategies import normalised_maps
from isnet.data.streaming import SkipLog, StreamingDataset, batch_parts, stream_loader
from isnet.loss import background_share
from isnet.models.layout import in_layout, preferred_layout


@dataclass(order=True)
class TopImage:
    """One of the most background-reliant images (ordered by share, then index).

    Attributes:
        share: its background share.
        index: its entry in the dataset.
        label, prediction: its true and predicted class.
        picture: (S, S, 3) uint8, the image as the model saw it (before normalisation).
        relevance: (S, S) float32, the predicted class's relevance summed over channels.
        mask: (S, S) bool, 1 = object.
    """

    share: float
    index: int
    label: int = field(compare=False)
    prediction: int = field(compare=False)
    picture: np.ndarray = field(compare=False)
    relevance: np.ndarray = field(compare=False)
    mask: np.ndarray = field(compare=False)


@dataclass
class StreamAudit:
    """What :func:`audit_stream` keeps (N = images audited; arrays in dataset order).

    Attributes:
        indices: (N,) int64 dataset entries (skipped files are absent).
        labels, predictions: (N,) int64.
        confidence, background_share: (N,) float32 (share NaN without a mask file).
        maps: (N, m, m) float16 normalised, downsized relevance maps (SpRAy's input).
        top: the ``keep_top`` most background-reliant images, most reliant first.
        skipped: files that could not be read (name → why).
        complete: False when stopped early.
    """

    indices: np.ndarray
    labels: np.ndarray
    predictions: np.ndarray
    confidence: np.ndarray
    background_share: np.ndarray
    maps: np.ndarray
    top: list[TopImage]
    skipped: dict[str, str]
    complete: bool = True

    def __len__(self) -> int:
        return len(self.indices)


def audit_stream(model: nn.Module, dataset: StreamingDataset, batch_size: int = 32,
                 workers: int = 0, explainer: Explainer | None = None, map_size: int = 16,
                 keep_top: int = 12, mean: tuple[float, ...] | None = None,
                 std: tuple[float, ...] | None = None,
                 on_progress: Callable[[int, int], None] | None = None,
                 should_stop: Callable[[], bool] | None = None) -> StreamAudit:
    """Explain every image of ``dataset`` (see the module docstring).

    Args:
        model: the classifier, used in ``eval()`` mode on its own device and dtype.
        dataset: streamed images (evaluation transform).
        batch_size: images per forward pass.
        workers: decoding processes.
        explainer: how to explain (default: LRP of the predicted class, z^B in [0, 1]; pass
            ``lrp_explainer(LRPConfig(..., low=…, high=…))`` for normalised inputs).
        map_size: side of the kept maps.
        keep_top: full maps kept for the most background-reliant images.
        mean, std: the normalisation to undo for the kept pictures (None: raw pixels).
        on_progress: ``on_progress(done, total)`` after each batch.
        should_stop: checked between batches; True ends early (``complete=False``).
    """
    explainer = explainer or lrp_explainer()
    reference = next(model.parameters())
    model.eval()
    layout = preferred_layout(model, reference.device)
    model = in_layout(model, layout)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("idx", "lab", "pred", "conf", "share",
                                                          "maps")}
    heap: list[TopImage] = []
    log, done, complete = SkipLog(), 0, True
    loader = stream_loader(dataset, batch_size, workers,
                           pin_memory=reference.device.type == "cuda")
    for batch in loader:
        if should_stop is not None and should_stop():
            complete = False
            break
        images, masks, labels, skipped = batch_parts(batch)
        log.add(skipped)
        done += len(labels) + len(skipped)
        if len(labels):
            has_mask = batch.has_mask.numpy()
            batch_indices = batch.indices.numpy()
            pred, conf, share, relevance = _explain(model, explainer, images, masks, reference,
                                                    layout)
            share[~has_mask] = np.nan
            for key, value in (("idx", batch_indices), ("lab", labels.numpy()), ("pred", pred),
                               ("conf", conf), ("share", share)):
                parts[key].append(np.array(value))  # a copy: never keep a worker's shared memory
            parts["maps"].append(normalised_maps(relevance, map_size).half().numpy().copy())
            _keep_top(heap, keep_top, (share, batch_indices, labels.numpy(), pred),
                      images, relevance, masks, mean, std)
        if on_progress is not None:
            on_progress(done, len(dataset))
    return _result(parts, heap, log, complete, map_size)


def _explain(model: nn.Module, explainer: Explainer, images: Tensor, masks: Tensor,
             reference: Tensor, layout: torch.memory_format
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, Tensor]:
    """Prediction, confidence, background share (B,) and relevance (B, S, S) of one batch."""
    batch = images.to(reference.device, reference.dtype, non_blocking=True,
                      memory_format=layout)
    with torch.inference_mode():
        logits, heatmaps = explainer(model, batch)  # (B, K), (B, 1, C, S, S)
    confidence, predicted = torch.softmax(logits.float(), 1).max(1)
    mask = masks.to(heatmaps.device, heatmaps.dtype)
    share = background_share(heatmaps, mask).reshape(len(images)).float().cpu().numpy()
    relevance = heatmaps[:, 0].sum(1).float().cpu()  # (B, S, S)
    return predicted.cpu().numpy(), confidence.cpu().numpy(), share, relevance


def _keep_top(heap: list[TopImage], keep: int,
              facts: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
              images: Tensor, relevance: Tensor, masks: Tensor,
              mean: tuple[float, ...] | None, std: tuple[float, ...] | None) -> None:
    """Push this batch's images onto the min-heap of the ``keep`` largest shares; ``facts``:
    (share, dataset index, label, prediction), each (B,)."""
    share, indices, labels, predictions = facts
    for row in np.flatnonzero(~np.isnan(share)):
        key = (float(share[row]), int(indices[row]))
        if len(heap) >= keep and key <= (heap[0].share, heap[0].index):
            continue
        picture = images[row].float()
        if mean is not None and std is not None:
            picture = picture * torch.tensor(std)[:, None, None] + torch.tensor(mean)[:, None, None]
        entry = TopImage(key[0], key[1], int(labels[row]), int(predictions[row]),
                         (picture.clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5)
                         .astype(np.uint8), relevance[row].numpy(),
                         masks[row, 0].numpy() > 0.5)
        if len(heap) < keep:
            heapq.heappush(heap, entry)
        else:
            heapq.heapreplace(heap, entry)


def _result(parts: dict[str, list[np.ndarray]], heap: list[TopImage], log: SkipLog,
            complete: bool, map_size: int) -> StreamAudit:
    def joined(key: str, dtype: type, shape: tuple[int, ...] = ()) -> np.ndarray:
        return (np.concatenate(parts[key]).astype(dtype) if parts[key]
                else np.zeros((0, *shape), dtype))

    return StreamAudit(joined("idx", np.int64), joined("lab", np.int64),
                       joined("pred", np.int64), joined("conf", np.float32),
                       joined("share", np.float32),
                       joined("maps", np.float16, (map_size, map_size)),
                       sorted(heap, reverse=True), dict(log.skipped), complete)
