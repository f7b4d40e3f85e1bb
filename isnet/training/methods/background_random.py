"""Random backgrounds: train a plain classifier on images whose background is random content.

Each step, every training image keeps its object (foreground mask 1, bit for bit) and its
background is replaced by one of four kinds of content drawn at random per image: uniform noise,
a random tint, a smooth random texture, or another image's background
(:func:`isnet.data.bias.background_random.randomise_backgrounds`). The loss is plain
cross-entropy with the original labels::

    L = CE(f(randomise(x)), y)

No background content depends on the label, so no background feature predicts it. Xiao et al.,
"Noise or Signal" (2020), test on foregrounds over a black background (*Only-FG*) and over other
images' backgrounds (*Mixed-Same*, *Mixed-Rand*); this method trains on such images, plus noise,
tints and textures.

Seeded like :mod:`isnet.training.methods.background_swap` (run seed and batch masks). Native map:
the backbone's LRP heatmap.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from isnet.data.bias.background_random import randomise_backgrounds
from isnet.data.bias.background_swap import batch_generator
from isnet.loss import LossTerms
from isnet.training.config import TrainConfig
from isnet.training.methods.background_swap import plain_backbone
from isnet.training.methods.registry import (
    LRP_NATIVE_NAME,
    Method,
    predicted_lrp_map,
    register_method,
)


def background_random_loss(network: nn.Module, images: Tensor, masks: Tensor, labels: Tensor,
                           config: TrainConfig) -> tuple[LossTerms, Tensor, None]:
    """CE on the images with random backgrounds; logits (B, K), no maps."""
    randomised = randomise_backgrounds(images, masks, batch_generator(config.seed, masks, 1))
    logits = network(randomised.images)
    classification = F.cross_entropy(logits, labels)
    return LossTerms(classification, classification, classification.new_zeros(())), logits, None


register_method(Method(
    name="background_random", title="Random backgrounds (masks)", create_model=plain_backbone,
    loss=background_random_loss, native_map=predicted_lrp_map, native_name=LRP_NATIVE_NAME))
