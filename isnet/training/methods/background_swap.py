"""Background swap: train a plain classifier on images whose background comes from another image.

Each step, every training image keeps its object (foreground mask 1, bit for bit) and takes the
background of a random other image of the batch
(:func:`isnet.data.bias.background_swap.swap_backgrounds`; holes where the donor's object would
show are filled with the donor's mean background colour). The loss is plain cross-entropy on the
swapped images with the original labels::

    L = CE(f(swap(x)), y)

A background mark then names the donor's class, not the label's, so it stops predicting the
label; unlike an LRP heatmap loss, this also covers whole-background changes (tints, textures),
which LRP passes on to the object (``docs/training-isnet.md``, finding 5). It needs the same
foreground masks the ISNet needs.

Published counterpart: the *Mixed-Rand* backgrounds of Xiao et al., "Noise or Signal: The Role
of Image Backgrounds in Object Recognition" (2020): a foreground on the background of an image
of a random class.

The donors are drawn by a generator seeded from the run's seed and the batch's masks
(:func:`isnet.data.bias.background_swap.batch_generator`), so a run is reproducible and no state
is carried between steps. Native map: the backbone's LRP heatmap (it has no map of its own).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from isnet.data.bias.background_swap import batch_generator, swap_backgrounds
from isnet.loss import LossTerms
from isnet.models import create_model
from isnet.training.config import TrainConfig
from isnet.training.methods.registry import (
    LRP_NATIVE_NAME,
    Method,
    predicted_lrp_map,
    register_method,
)


def swapped_images(images: Tensor, masks: Tensor, config: TrainConfig) -> Tensor:
    """The batch with swapped backgrounds, drawn by the run's seed and the batch's masks.

    Shapes: images (B, C, H, W); masks (B, 1, H, W) → (B, C, H, W).
    """
    return swap_backgrounds(images, masks, batch_generator(config.seed, masks)).images


def background_swap_loss(network: nn.Module, images: Tensor, masks: Tensor, labels: Tensor,
                         config: TrainConfig) -> tuple[LossTerms, Tensor, None]:
    """CE on the swapped images; logits (B, K) of the swapped images, no maps."""
    logits = network(swapped_images(images, masks, config))
    classification = F.cross_entropy(logits, labels)
    return LossTerms(classification, classification, classification.new_zeros(())), logits, None


def plain_backbone(config: TrainConfig, in_channels: int) -> nn.Module:
    """The backbone ``config.model`` with ``config.num_classes`` logits."""
    return create_model(config.model, num_classes=config.num_classes, in_channels=in_channels)


register_method(Method(
    name="background_swap", title="Background swap (masks)", create_model=plain_backbone,
    loss=background_swap_loss, native_map=predicted_lrp_map, native_name=LRP_NATIVE_NAME))
