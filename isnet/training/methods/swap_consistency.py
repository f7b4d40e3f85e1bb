"""Swap consistency: cross-entropy on the swapped image plus agreement with the original.

Each step, the batch's backgrounds are swapped as in :mod:`isnet.training.methods.background_swap`
and both the original images x and the swapped images x' go through the network (one forward
pass over the 2B images)::

    L = CE(f(x'), y) + λ · mean_b [ KL(p_b ‖ p'_b) + KL(p'_b ‖ p_b) ]

with p = softmax(f(x)), p' = softmax(f(x')) and λ = :data:`CONSISTENCY_WEIGHT`. The symmetric KL
is ``Σ_k (p_k − p'_k)(log p_k − log p'_k)``: 0 when both predictions agree, whatever they are,
and it pulls both towards each other (gradients reach both branches). The CE on x' alone
removes the label's link to the background; the KL term also asks that the *original*
background (with its mark) change nothing.

Published counterparts of the consistency term: paired-input consistency losses such as
AugMix's Jensen–Shannon term (Hendrycks et al., 2020). Seeded like the swap (run seed and batch
masks). Native map: the backbone's LRP heatmap.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from isnet.loss import LossTerms
from isnet.training.config import TrainConfig
from isnet.training.methods.background_swap import plain_backbone, swapped_images
from isnet.training.methods.registry import (
    LRP_NATIVE_NAME,
    Method,
    predicted_lrp_map,
    register_method,
)

CONSISTENCY_WEIGHT = 1.0
"""λ of the symmetric KL. Not tuned: at 1 the KL (0 for a network that ignores the background,
up to several nats for one that follows the mark) is of the size of the CE (ln 10 ≈ 2.3 at the
start), so neither term drowns the other."""


def symmetric_kl(logits: Tensor, other_logits: Tensor) -> Tensor:
    """KL(p ‖ q) + KL(q ‖ p) per sample, p = softmax(logits), q = softmax(other_logits).

    Shapes: logits (B, K), other_logits (B, K) → (B,).
    """
    log_p, log_q = F.log_softmax(logits, 1), F.log_softmax(other_logits, 1)
    return ((log_p.exp() - log_q.exp()) * (log_p - log_q)).sum(1)


def swap_consistency_loss(network: nn.Module, images: Tensor, masks: Tensor, labels: Tensor,
                          config: TrainConfig) -> tuple[LossTerms, Tensor, None]:
    """CE on swapped images + λ · symmetric KL; logits (B, K) of the swapped images.

    The KL term is reported as the loss's ``heatmap`` part (the second term of the objective).
    """
    swapped = swapped_images(images, masks, config)
    original_logits, swapped_logits = network(torch.cat([images, swapped])).chunk(2)
    classification = F.cross_entropy(swapped_logits, labels)
    consistency = symmetric_kl(original_logits, swapped_logits).mean()
    total = classification + CONSISTENCY_WEIGHT * consistency
    return LossTerms(total, classification, consistency), swapped_logits, None


register_method(Method(
    name="swap_consistency", title="Swap + consistency (masks)", create_model=plain_backbone,
    loss=swap_consistency_loss, native_map=predicted_lrp_map, native_name=LRP_NATIVE_NAME))
