"""Audit a whole set of images: every image's prediction, heatmap and background reliance.

:func:`audit_images` explains each image's predicted class (LRP by default) in batches and keeps,
per image, the prediction and its probability, the relevance map summed over colour channels and,
where a foreground mask is known, the background share ``Σ|R| outside the mask / Σ|R|``
(:func:`isnet.background_share`). :func:`rank_by_background` orders the images from the most to
the least background-reliant: the first ones are the likeliest shortcut cases.

Progress leaves through a plain callback and the audit stops between batches when asked, so a
UI can show a bar and a Stop button. With ``workers`` > 1 the batches run on that many threads
(:func:`isnet.analysis.workers.ordered_map`; one batch per CPU core beats several torch threads
on one batch), with the same results.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from isnet.analysis.workers import ordered_map
from isnet.loss import background_share
from isnet.lrp.config import LRPConfig
from isnet.models.layout import in_layout, preferred_layout
from isnet.wrapper import explain

Explainer = Callable[[nn.Module, Tensor], tuple[Tensor, Tensor]]
"""``(model, images (B, C, H, W)) -> (logits (B, K), heatmaps (B, 1, C', H, W))``."""


@dataclass
class AuditResult:
    """Per-image results of :func:`audit_images` (all CPU tensors, N = images audited).

    Attributes:
        predictions: (N,) int64, the predicted class.
        confidence: (N,) float32, the softmax probability of the prediction.
        relevance: (N, H, W) float32, the predicted class's relevance summed over channels.
        background_share: (N,) float32; NaN where no mask was given.
        labels: (N,) int64 true classes, or None.
        complete: False when the audit was stopped early (N is then the images done so far).
    """

    predictions: Tensor
    confidence: Tensor
    relevance: Tensor
    background_share: Tensor
    labels: Tensor | None = None
    complete: bool = True

    def __len__(self) -> int:
        return len(self.predictions)

    @property
    def correct(self) -> Tensor | None:
        """(N,) bool: prediction equals the label (None without labels)."""
        if self.labels is None:
            return None
        return self.predictions == self.labels[: len(self)]


def lrp_explainer(lrp: LRPConfig | None = None) -> Explainer:
    """The default explainer: LRP of the predicted class with the given settings."""
    def run(model: nn.Module, images: Tensor) -> tuple[Tensor, Tensor]:
        explained = explain(model, images, None, lrp=lrp)
        return explained[0], explained[1]

    return run


def audit_images(model: nn.Module, images: Tensor, masks: Tensor | None = None,
                 labels: Tensor | None = None, batch_size: int = 64,
                 explainer: Explainer | None = None,
                 on_progress: Callable[[int, int], None] | None = None,
                 should_stop: Callable[[], bool] | None = None,
                 workers: int = 1,
                 memory_format: torch.memory_format | None = None) -> AuditResult:
    """Explain every image's prediction and measure its background reliance.

    Args:
        model: the classifier, used in ``eval()`` mode (on its own device and dtype).
        images: (N, C, H, W) in the model's input range.
        masks: (N, 1, H, W) in {0, 1} (1 = foreground), or None (shares are NaN).
        labels: (N,) true classes, or None.
        batch_size: images per forward pass.
        explainer: how to explain (default :func:`lrp_explainer` with the default settings).
        on_progress: called after each batch as ``on_progress(done, total)``.
        should_stop: checked between batches; True ends the audit early (``complete=False``),
            keeping the batches reported to ``on_progress`` so far.
        workers: batches explained at once, each on its own thread (see
            :func:`isnet.analysis.workers.default_workers`); the results do not depend on it.
        memory_format: the layout to explain in (None: the model family's preference, see
            :mod:`isnet.models.layout`); the model is copied when its weights are in
            another layout. The results agree to rounding across layouts.

    Returns:
        An :class:`AuditResult`.

    Raises:
        ValueError: empty input or shapes that do not match.
    """
    if images.dim() != 4 or len(images) == 0:
        raise ValueError(f"images must be a non-empty (N, C, H, W) tensor, got "
                         f"{tuple(images.shape)}")
    if masks is not None and tuple(masks.shape) != (len(images), 1, *images.shape[-2:]):
        raise ValueError(f"masks must have shape {(len(images), 1, *images.shape[-2:])}, got "
                         f"{tuple(masks.shape)}")
    if labels is not None and tuple(labels.shape) != (len(images),):
        raise ValueError(f"labels must have shape ({len(images)},), got {tuple(labels.shape)}")
    explainer = explainer or lrp_explainer()
    reference = next(model.parameters())
    model.eval()
    layout = memory_format or preferred_layout(model, reference.device)
    model = in_layout(model, layout)

    def one_batch(start: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        batch = images[start:start + batch_size].to(reference.device, reference.dtype,
                                                     memory_format=layout)
        with torch.inference_mode():  # no graph: the cheaper explaining path of the LRP walk
            logits, heatmaps = explainer(model, batch)  # (B, K), (B, 1, C, H, W)
        probabilities = torch.softmax(logits.float(), dim=1)
        confidence, predicted = probabilities.max(dim=1)
        relevance = heatmaps[:, 0].sum(1).float().cpu()  # (B, H, W)
        if masks is None:
            share = torch.full((len(batch),), float("nan"))
        else:
            mask = masks[start:start + batch_size].to(heatmaps.device, heatmaps.dtype)
            share = background_share(heatmaps, mask).reshape(len(batch)).float().cpu()
        return predicted.cpu(), confidence.cpu(), relevance, share

    parts: dict[str, list[Tensor]] = {"pred": [], "conf": [], "rel": [], "share": []}
    starts = range(0, len(images), batch_size)
    answers = ordered_map(one_batch, starts, workers, should_stop)  # shorter after a Stop
    for start, results in zip(starts, answers, strict=False):
        for key, value in zip(("pred", "conf", "rel", "share"), results, strict=True):
            parts[key].append(value)
        if on_progress is not None:
            on_progress(min(start + batch_size, len(images)), len(images))
    complete = len(parts["pred"]) == len(starts)
    if not parts["pred"]:
        empty = torch.zeros(0)
        return AuditResult(empty.long(), empty, torch.zeros(0, *images.shape[-2:]), empty,
                           labels, complete=False)
    return AuditResult(torch.cat(parts["pred"]), torch.cat(parts["conf"]),
                       torch.cat(parts["rel"]), torch.cat(parts["share"]),
                       None if labels is None else labels.cpu().long(), complete)


def rank_by_background(result: AuditResult) -> Tensor:
    """Image indices from the most to the least background-reliant (NaN shares last).

    Ties keep the original order (stable sort), so the ranking is deterministic.
    """
    share = result.background_share.clone()
    share[torch.isnan(share)] = -1.0
    return torch.sort(share, descending=True, stable=True).indices
