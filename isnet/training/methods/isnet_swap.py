"""ISNet on swapped backgrounds: the stochastic ISNet's heatmap loss on background-swapped images.

Each step, the batch's backgrounds are swapped as in :mod:`isnet.training.methods.background_swap`
(object bit for bit, background from a random other image of the batch), then the stochastic
ISNet objective is applied to the swapped images::

    L = (1 − P)·CE(f(swap(x)), y) + P·L_heatmap(R(swap(x)), M)

with R the LRP heatmap of one class drawn at random per image (the *stochastic* variant, as the
bundled ISNet) and M the unchanged foreground mask. With ``--isnet-recipe bundled`` (the arena's
demo budget) it trains with the bundled ISNet's settings (:mod:`isnet.training.recipes`: AdamW
at 1e-3, ε input rule, hybrid foreground band [1, 250]).

Why combine them: the heatmap loss keeps local marks out but cannot see whole-background tints or
textures (``docs/training-isnet.md``, finding 5); the swap removes the label's link to the
background from the data itself. The class draw uses a generator seeded from the run's seed and
the batch's masks (another salt than the swap's), so no state is carried between steps.

Native map: the backbone's LRP heatmap (the network saved is the plain backbone).
"""

from __future__ import annotations

from torch import Tensor, nn

from isnet.data.bias.background_swap import batch_generator
from isnet.loss import LossTerms, isnet_loss
from isnet.training.config import TrainConfig
from isnet.training.methods.background_swap import plain_backbone, swapped_images
from isnet.training.methods.registry import (
    LRP_NATIVE_NAME,
    Method,
    predicted_lrp_map,
    register_method,
)
from isnet.wrapper import ISNet

STOCHASTIC_SALT = 2
"""Separates the stochastic class draw from the swap's draw on the same batch."""


def isnet_swap_loss(network: nn.Module, images: Tensor, masks: Tensor, labels: Tensor,
                    config: TrainConfig) -> tuple[LossTerms, Tensor, Tensor]:
    """The ISNet objective on swapped images: logits (B, K), heatmaps (B, 1, C, H, W)."""
    seed = int(batch_generator(config.seed, masks, STOCHASTIC_SALT).initial_seed())
    wrapper = ISNet(network, epsilon=config.epsilon, zb=config.zb, explain="stochastic",
                    bounds=config.bounds, seed=seed)
    logits, heatmaps = wrapper(swapped_images(images, masks, config))
    terms = isnet_loss(logits, labels, heatmaps, masks, heat_weight=config.heat_weight,
                       **config.heatmap_loss_kwargs())
    return terms, logits, heatmaps


register_method(Method(
    name="isnet_swap", title="Stochastic ISNet + background swap", create_model=plain_backbone,
    loss=isnet_swap_loss, native_map=predicted_lrp_map, native_name=LRP_NATIVE_NAME))
