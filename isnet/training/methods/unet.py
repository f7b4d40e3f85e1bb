"""The U-Net baselines: segment-then-classify, and a multi-task U-Net.

* ``"unet_segment"`` (:class:`isnet.models.unet.SegmentThenClassify`): a U-Net learns the
  foreground masks; the classifier (``config.model``, e.g. DenseNet121) reads the image with the
  U-Net's predicted background set to 0. Both are trained together in one loop (same epochs as
  every other method): ``CE + w_s · BCE(U-Net logits, mask)``, w_s = ``segmentation_weight``.
  The classifier's input mask is the U-Net's own prediction from the first step on, so at test
  time only the image is needed. (The ISNet authors train the U-Net first, then the classifier.)
* ``"unet_multitask"`` (:class:`isnet.models.unet.MultiTaskUNet`): one encoder, a segmentation
  decoder and a classification head, trained jointly with the same two terms.

Native map of both: the predicted foreground probability σ(s), so its background share is the
share of predicted foreground mass that lies outside the true mask.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from isnet.loss import LossTerms
from isnet.models import create_model
from isnet.models.unet import MultiTaskUNet, SegmentThenClassify
from isnet.training.config import TrainConfig
from isnet.training.methods.registry import Method, register_method, register_native_explainer


def segmentation_loss(network: nn.Module, images: Tensor, masks: Tensor, labels: Tensor,
                      config: TrainConfig) -> tuple[LossTerms, Tensor, Tensor]:
    """``CE + w_s·BCE``; the heatmap term is the weighted segmentation loss.

    Shapes: images (B, C, H, W); masks (B, 1, H, W) → maps σ(s) as (B, 1, 1, H, W).
    """
    logits, segmentation = network.forward_parts(images)
    classification = F.cross_entropy(logits, labels)
    weighted = config.segmentation_weight * F.binary_cross_entropy_with_logits(
        segmentation, masks.to(segmentation.dtype))
    return (LossTerms(classification + weighted, classification, weighted), logits,
            torch.sigmoid(segmentation.detach()).unsqueeze(1))


def predicted_mask(model: nn.Module, images: Tensor) -> Tensor:
    """The foreground probability the U-Net predicts. Shapes: (B, C, H, W) → (B, 1, H, W)."""
    with torch.no_grad():
        return torch.sigmoid(model.forward_parts(images)[1])


register_method(Method(
    name="unet_segment", title="U-Net, then classifier",
    create_model=lambda config, in_channels: SegmentThenClassify.around(
        config.model, config.num_classes, in_channels),
    loss=segmentation_loss, native_map=predicted_mask, native_name="predicted mask"))
register_method(Method(
    name="unet_multitask", title="Multi-task U-Net",
    create_model=lambda config, in_channels: create_model(
        config.model, num_classes=config.num_classes, in_channels=in_channels),
    loss=segmentation_loss, native_map=predicted_mask, native_name="predicted mask",
    model_name=lambda backbone: "tiny_multitask_unet" if backbone.startswith("tiny")
    else "multitask_unet"))
register_native_explainer(SegmentThenClassify, predicted_mask)
register_native_explainer(MultiTaskUNet, predicted_mask)
