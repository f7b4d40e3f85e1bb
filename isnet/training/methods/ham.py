"""HAM with mask supervision (Ouyang et al., IEEE TMI 2020), adapted to single-label images.

Network: :class:`isnet.models.ham.HAMNet` on ``config.model``'s features. Loss, as in HAM's
code and the ISNet authors' comparison script, less the terms that need HAM's
"abnormal/normal" head (positive-negative, bound and union losses):

* classification: cross-entropy (HAM: multi-label BCE);
* mask supervision (weight 0.5, HAM's ``loss_ex_cls``): the true class's CAM is upsampled
  (bilinear, corners aligned) to the image, min–max normalised per image and sharpened,
  ``Ĉ = sigmoid(100 (CAM − 0.4))``; the term is ``Σ (Ĉ − M)² / Σ (Ĉ + M)`` over the batch.

Native map: the refined CAM Ĉ of the predicted class.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from isnet.loss import LossTerms
from isnet.models.ham import HAMNet
from isnet.training.config import TrainConfig
from isnet.training.methods.registry import Method, register_method, register_native_explainer

CAM_SHARPNESS = 100.0  # HAM's cam_w
CAM_THRESHOLD = 0.4  # HAM's cam_sigma
SUPERVISION_WEIGHT = 0.5  # HAM's loss_ex_cls


def refine_cams(cams: Tensor, size: tuple[int, int]) -> Tensor:
    """Upsample, min–max normalise per map and sharpen. Shapes: (B, K, h, w) → (B, K, H, W)."""
    cams = F.interpolate(cams, size=size, mode="bilinear", align_corners=True)
    flat = cams.flatten(2)
    low, high = flat.amin(2, keepdim=True), flat.amax(2, keepdim=True)
    span = torch.where(high > low, high - low, torch.full_like(high, 1e-5))
    normalised = ((flat - low) / span).view_as(cams)
    return torch.sigmoid(CAM_SHARPNESS * (normalised - CAM_THRESHOLD))


def mask_supervision(refined: Tensor, masks: Tensor) -> Tensor:
    """HAM's normalised squared error ``Σ (Ĉ − M)² / Σ (Ĉ + M)``. Shapes: (B, H, W) each → ()."""
    return (refined - masks).pow(2).sum() / (refined.sum() + masks.sum()).clamp_min(1e-5)


def ham_loss(network: nn.Module, images: Tensor, masks: Tensor, labels: Tensor,
             config: TrainConfig) -> tuple[LossTerms, Tensor, Tensor]:
    """``CE + 0.5 · mask supervision``; maps are the true classes' refined CAMs."""
    logits, cams = network.forward_cams(images)
    chosen = cams.gather(1, labels[:, None, None, None].expand(-1, 1, *cams.shape[-2:]))
    refined = refine_cams(chosen, tuple(images.shape[-2:]))  # (B, 1, H, W)
    classification = F.cross_entropy(logits, labels)
    supervision = SUPERVISION_WEIGHT * mask_supervision(refined[:, 0],
                                                        masks[:, 0].to(refined.dtype))
    return (LossTerms(classification + supervision, classification, supervision), logits,
            refined.detach().unsqueeze(1))


def refined_cam_map(model: nn.Module, images: Tensor) -> Tensor:
    """Refined CAM of the predicted class. Shapes: (B, C, H, W) → (B, 1, H, W)."""
    with torch.no_grad():
        logits, cams = model.forward_cams(images)
        chosen = cams.gather(1, logits.argmax(1)[:, None, None, None].expand(
            -1, 1, *cams.shape[-2:]))
        return refine_cams(chosen, tuple(images.shape[-2:]))


register_method(Method(
    name="ham", title="HAM (mask-supervised CAM)",
    create_model=lambda config, in_channels: HAMNet.around(config.model, config.num_classes,
                                                           in_channels),
    loss=ham_loss, native_map=refined_cam_map, native_name="refined CAM"))
register_native_explainer(HAMNet, refined_cam_map)
