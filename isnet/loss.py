"""The ISNet heatmap loss and the background relevance share (see ``docs/lrp-rules.md``).

Given heatmaps R (B, K, C, H, W) and a foreground mask M (1 = object), with A = |R|:

* background term (weight w₁, ``background_weight``): A is normalised by its mean inside the
  foreground, μ = Σ A·M / Σ M; the background values of A/μ are pooled by **global weighted
  rank pooling** with decay d, ``g = Σ_i dⁱ v_(i) / Σ_i dⁱ`` over the values sorted in descending
  order (d = 0 is the max, d → 1 the mean), and squashed by ``log(1 + g/E)``; mean over maps and
  channels.
* foreground term (weight w₂, ``foreground_weight``): the un-normalised foreground total
  F = Σ A·M is held inside the band [C1, C2] (``foreground_range``):
  ``((min(F, C1) − C1)² + (max(F, C2) − C2)²) / C1²`` (the "l2" form), or the Faster-ISNet
  "hybrid" form whose upper part becomes linear, ``F − (C1 + C2) + 1``, beyond C1 + C2; mean over
  maps. This stops the trivial solution of shrinking all relevance.
* ``mask_margin`` (0 by default, the paper's loss): the mask is first grown by that many pixels
  (a square neighbourhood), so relevance just outside the object's edge is not penalised. The
  z^B rule credits the dark pixels around a silhouette, which carry the object's shape; on the
  bundled experiment a margin of 2 px raised the ISNet from 71.0 to 74.2 % on unbiased data
  (``docs/training-isnet.md``, run 5).
* per sample w₁·L_bg + w₂·L_fg, then the batch mean.

The combined ISNet objective is ``(1 − P)·CE + P·L`` (:func:`isnet.heatmap_loss`,
P = ``heat_weight``).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

_TINY = 1e-10


def prepare_masks(masks: Tensor, heatmaps: Tensor) -> Tensor:
    """Validate masks and bring them to the heatmaps' size: (B, 1 or C, h, w) → (B, 1, 1|C, H, W).

    Masks of another spatial size are resized (average pooling when shrinking, nearest when
    growing) and binarised (anything > 0 is foreground).

    Raises:
        ValueError: wrong rank, batch mismatch, channel mismatch or non-binary values.
    """
    if masks.dim() != 4:
        raise ValueError(f"masks must have shape (B, 1 or C, H, W), got {tuple(masks.shape)}")
    batch, _, channels, height, width = heatmaps.shape
    if masks.shape[0] != batch:
        raise ValueError(f"masks hold {masks.shape[0]} samples but heatmaps hold {batch}")
    if masks.shape[1] not in (1, channels):
        raise ValueError(f"masks need 1 or {channels} channels, got {masks.shape[1]}")
    masks = masks.to(heatmaps.dtype)
    if not torch.all((masks == 0) | (masks == 1)):
        raise ValueError("masks must be binary (0 = background, 1 = foreground); threshold them "
                         "first, e.g. (mask > 0.5).float()")
    if masks.shape[-2:] != (height, width):
        if masks.shape[-2] >= height and masks.shape[-1] >= width:
            masks = F.adaptive_avg_pool2d(masks, (height, width))
        else:
            masks = F.interpolate(masks, size=(height, width), mode="nearest")
        masks = (masks > 0).to(heatmaps.dtype)
    return masks.unsqueeze(1)  # (B, 1, 1|C, H, W), broadcast over the K maps


def grow_masks(masks: Tensor, margin: int) -> Tensor:
    """Binary masks grown by ``margin`` pixels: a pixel becomes foreground when any pixel of the
    (2·margin + 1)² square around it is (a dilation; the image border adds nothing).

    Shapes: masks (..., H, W) → the same.
    """
    if isinstance(margin, bool) or not isinstance(margin, int) or margin < 0:
        raise ValueError(f"mask_margin must be a whole number of pixels >= 0, got {margin!r}")
    if margin == 0:
        return masks
    side = 2 * margin + 1
    flat = masks.reshape(-1, 1, *masks.shape[-2:])  # (N, 1, H, W)
    return F.max_pool2d(flat, side, stride=1, padding=margin).reshape(masks.shape)


def global_weighted_rank_pooling(values: Tensor, decay: float) -> Tensor:
    """GWRP over the last axis: ``Σ_i dⁱ v_(i) / Σ_i dⁱ`` with v sorted in descending order.

    Only the top terms whose weight dⁱ exceeds 1e-12 are sorted (the rest cannot change the
    result in float64); the normaliser is the exact geometric sum over all n terms.

    Shapes: values (..., n) → (...).
    """
    n = values.shape[-1]
    if not 0 <= decay <= 1:
        raise ValueError(f"decay must lie in [0, 1], got {decay}")
    if decay == 0:
        return values.max(dim=-1).values
    keep = n if decay == 1 else min(n, int(math.log(1e-12) / math.log(decay)) + 1)
    top = values.topk(keep, dim=-1).values  # (..., keep), descending
    weights = decay ** torch.arange(keep, dtype=values.dtype, device=values.device)
    total = float(n) if decay == 1 else (1 - decay ** n) / (1 - decay)
    return (top * weights).sum(-1) / total


def heatmap_loss(heatmaps: Tensor, masks: Tensor, background_weight: float = 1.0,
                 foreground_weight: float = 3.0,
                 foreground_range: tuple[float, float] = (1.0, 25.0), saturation: float = 1.0,
                 decay: float = 0.9, foreground_form: str = "l2",
                 mask_margin: int = 0) -> Tensor:
    """ISNet heatmap loss (see module docstring).

    Args:
        heatmaps: LRP heatmaps (B, K, C, H, W).
        masks: foreground masks (B, 1 or C, H', W') in {0, 1}, 1 = foreground.
        background_weight: w₁ (``A`` in the authors' code).
        foreground_weight: w₂ (``B``).
        foreground_range: (C1, C2), the band for the total foreground relevance.
        saturation: E in ``log(1 + g/E)``.
        decay: d of the GWRP (0 = max; the authors' 0.9 by default).
        foreground_form: ``"l2"`` (original) or ``"hybrid"`` (Faster ISNet).
        mask_margin: grow the foreground by this many pixels (of the heatmap) before the loss;
            0 = the mask as given.

    Returns:
        the scalar loss (mean over the batch).

    Raises:
        ValueError: bad masks (see :func:`prepare_masks`), an empty foreground, or bad settings.
    """
    low, high = foreground_range
    if not 0 < low <= high:
        raise ValueError(f"foreground_range must satisfy 0 < C1 <= C2, got {foreground_range}")
    if saturation <= 0:
        raise ValueError(f"saturation E must be > 0, got {saturation}")
    if foreground_form not in ("l2", "hybrid"):
        raise ValueError(f"foreground_form must be 'l2' or 'hybrid', got {foreground_form!r}")
    if heatmaps.dtype in (torch.float16, torch.bfloat16):
        heatmaps = heatmaps.float()  # the loss is computed in float32, as in the paper's code
    masks = grow_masks(prepare_masks(masks, heatmaps), mask_margin)  # (B, 1, 1|C, H, W)
    masks = masks.expand(-1, -1, heatmaps.shape[2], -1, -1)  # (B, 1, C, H, W)
    empty = masks.flatten(1).sum(1) == 0
    if torch.any(empty):
        raise ValueError(f"samples {empty.nonzero().flatten().tolist()} have an empty foreground "
                         "mask; the heatmap loss needs at least one foreground pixel")
    relevance = heatmaps.abs()
    finite_max = torch.where(torch.isfinite(relevance), relevance, 0).max().detach()
    relevance = torch.nan_to_num(relevance, nan=0.0, posinf=float(finite_max))
    inside = relevance * masks  # (B, K, C, H, W)
    foreground_mean = inside.sum((2, 3, 4)) / (masks.sum((2, 3, 4)) + _TINY)  # (B, K)
    normalised = relevance / (foreground_mean[..., None, None, None] + _TINY)
    background = (normalised * (1 - masks)).flatten(-2)  # (B, K, C, H·W)
    pooled = global_weighted_rank_pooling(background, decay)  # (B, K, C)
    background_term = torch.log1p(pooled / saturation).mean((1, 2))  # (B,)
    total = inside.sum((2, 3, 4))  # (B, K), F in the docstring
    below = (torch.clamp(total, max=low) - low) ** 2 / low ** 2
    if foreground_form == "l2":
        above = (torch.clamp(total, min=high) - high) ** 2 / low ** 2
    else:
        quadratic = (torch.clamp(total, min=high) - high) ** 2 / low ** 2
        above = torch.where(total <= low + high, quadratic, total - (low + high) + 1)
    foreground_term = (below + above).mean(1)  # (B,)
    return (background_weight * background_term + foreground_weight * foreground_term).mean()


class LossTerms(NamedTuple):
    """The ISNet objective and its parts (scalars)."""

    total: Tensor
    classification: Tensor
    heatmap: Tensor


def isnet_loss(logits: Tensor, labels: Tensor, heatmaps: Tensor, masks: Tensor,
               heat_weight: float = 0.7, **heatmap_loss_kwargs) -> LossTerms:
    """``(1 − P)·CE + P·L_heatmap`` with P = ``heat_weight`` (0.7 in the paper).

    Shapes: logits (B, K); labels (B,) class indices; heatmaps (B, M, C, H, W); masks
    (B, 1 or C, H, W). Extra keyword arguments go to :func:`heatmap_loss`.
    """
    if not 0 <= heat_weight <= 1:
        raise ValueError(f"heat_weight P must lie in [0, 1], got {heat_weight}")
    classification = F.cross_entropy(logits, labels.reshape(-1).long())
    heatmap = heatmap_loss(heatmaps, masks, **heatmap_loss_kwargs)
    total = (1 - heat_weight) * classification + heat_weight * heatmap
    return LossTerms(total, classification, heatmap)


def background_share(heatmaps: Tensor, masks: Tensor) -> Tensor:
    """Share of absolute relevance outside the foreground: ``Σ|R|·(1−M) / Σ|R|`` per sample.

    0 means all relevance lies on the object; 1 means all of it lies in the background. A heatmap
    with no relevance at all gets 0.

    Shapes: heatmaps (B, K, C, H, W); masks (B, 1 or C, H', W') → (B,).
    """
    masks = prepare_masks(masks, heatmaps)
    relevance = heatmaps.abs()
    outside = (relevance * (1 - masks)).flatten(1).sum(1)
    return outside / relevance.flatten(1).sum(1).clamp_min(torch.finfo(relevance.dtype).tiny)
