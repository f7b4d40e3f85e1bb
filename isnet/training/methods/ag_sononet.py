"""AG-Sononet baseline (:class:`isnet.models.sononet.AGSononet`): trained with plain
cross-entropy (its attention gates learn from the labels alone, as in Schlemper et al.), and
explained by its own attention maps.

Native map: each gate's attention map (sums to 1 over its grid) is upsampled bilinearly to the
image, renormalised to sum 1, and the two are averaged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from isnet.models import create_model
from isnet.models.sononet import AGSononet
from isnet.training.methods.registry import Method, register_method, register_native_explainer
from isnet.training.methods.vit import classification_loss


def attention_map(model: nn.Module, images: Tensor) -> Tensor:
    """Mean of the gates' attention maps at image size. Shapes: (B, C, H, W) → (B, 1, H, W)."""
    with torch.no_grad():
        _, attentions = model.forward_attention(images)
    maps = []
    for attention in attentions:
        upsampled = F.interpolate(attention, size=images.shape[-2:], mode="bilinear",
                                  align_corners=False)
        maps.append(upsampled / upsampled.sum((2, 3), keepdim=True).clamp_min(1e-12))
    return torch.stack(maps).mean(0)


register_method(Method(
    name="ag_sononet", title="AG-Sononet",
    create_model=lambda config, in_channels: create_model(
        config.model, num_classes=config.num_classes, in_channels=in_channels),
    loss=classification_loss, native_map=attention_map, native_name="attention gates",
    model_name=lambda backbone: "tiny_ag_sononet" if backbone.startswith("tiny")
    else "ag_sononet"))
register_native_explainer(AGSononet, attention_map)
