"""Vision Transformer baseline: classification only (plain cross-entropy), explained by
attention rollout.

Attention rollout (Abnar and Zuidema, 2020): each block's attention is averaged over heads,
the residual path is added as an identity and rows are renormalised, ``Â_l = (A_l + I) / 2``; the
rollout is the product ``Â_L ⋯ Â_1`` and the map is the class token's row over the patch tokens,
upsampled (bilinear) to the image. The ViT is built for ``config.input_size`` (its position
embeddings fix the image size).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from isnet.loss import LossTerms
from isnet.models import create_model
from isnet.models.vit import VisionTransformer
from isnet.training.config import TrainConfig
from isnet.training.methods.registry import Method, register_method, register_native_explainer


def attention_rollout(weights: list[Tensor]) -> Tensor:
    """Rolled-out attention of every token to every token (rows sum to 1).

    Shapes: depth × (B, heads, T, T) → (B, T, T).
    """
    rollout = None
    for attention in weights:
        mean = attention.mean(1)  # (B, T, T)
        step = 0.5 * (mean + torch.eye(mean.shape[-1], dtype=mean.dtype, device=mean.device))
        rollout = step if rollout is None else step @ rollout
    return rollout


def rollout_map(model: nn.Module, images: Tensor) -> Tensor:
    """Attention rollout of the class token over the patches.

    Shapes: images (B, C, H, W) → (B, 1, H, W).
    """
    with torch.no_grad():
        _, weights = model.forward_attention(images)
    cls_row = attention_rollout(weights)[:, 0, 1:]  # (B, N)
    grid = model.grid
    patches = cls_row.reshape(len(images), 1, grid, grid)
    return F.interpolate(patches, size=images.shape[-2:], mode="bilinear", align_corners=False)


def classification_loss(network: nn.Module, images: Tensor, masks: Tensor, labels: Tensor,
                        config: TrainConfig) -> tuple[LossTerms, Tensor, None]:
    """Plain cross-entropy (no heatmap term)."""
    logits = network(images)
    classification = F.cross_entropy(logits, labels)
    return LossTerms(classification, classification, torch.zeros_like(classification)), logits, None


register_method(Method(
    name="vit", title="Vision Transformer",
    create_model=lambda config, in_channels: create_model(
        config.model, num_classes=config.num_classes, in_channels=in_channels,
        image_size=config.input_size),
    loss=classification_loss, native_map=rollout_map, native_name="attention rollout",
    model_name=lambda backbone: "tiny_vit" if backbone.startswith("tiny") else "vit_small"))
register_native_explainer(VisionTransformer, rollout_map)
