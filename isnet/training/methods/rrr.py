"""RRR, "Right for the Right Reasons" (Ross, Hughes and Doshi-Velez, 2017).

The classifier is penalised for input gradients in the background::

    L = CE + λ · mean_b Σ_{c,h,w} ((1 − M) ⊙ ∂/∂x (Σ_k log p_k(x_b)))²

with M the foreground mask (the paper's annotation matrix A marks the *irrelevant* pixels,
A = 1 − M) and λ = ``TrainConfig.rrr_weight``. The gradient is taken with ``create_graph=True``
so that the penalty trains the weights (a double backward).

Each sample's gradient is its own: the ISNet authors' comparison code differentiates the *batch
mean* of Σ_k log p_k, which scales every gradient by 1/B and the penalty by 1/B²; here the
penalty does not depend on the batch size (so λ differs from their P by that factor).

Native map: the input gradient of the predicted class's log-probability (captum ``Saliency``,
absolute values summed over colour channels).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from captum.attr import Saliency
from torch import Tensor, nn

from isnet.loss import LossTerms
from isnet.models import create_model
from isnet.training.config import TrainConfig
from isnet.training.methods.registry import Method, predicted_classes, register_method


def log_probability_gradient(model: nn.Module, images: Tensor,
                             create_graph: bool = True) -> tuple[Tensor, Tensor]:
    """Logits and ∂(Σ_k log softmax_k)/∂x for each image (per sample, not batch-averaged).

    Shapes: images (B, C, H, W) → logits (B, K), gradient (B, C, H, W).
    """
    inputs = images.detach().requires_grad_(True)
    logits = model(inputs)
    summed = F.log_softmax(logits, dim=1).sum()  # Σ_b Σ_k: sample b's gradient is its own
    (gradient,) = torch.autograd.grad(summed, inputs, create_graph=create_graph)
    return logits, gradient


def rrr_penalty(gradient: Tensor, masks: Tensor) -> Tensor:
    """Per-sample squared background gradient: Σ_{c,h,w} ((1 − M) ⊙ ∇)².

    Shapes: gradient (B, C, H, W); masks (B, 1, H, W) in {0, 1} → (B,).
    """
    return (gradient * (1 - masks.to(gradient.dtype))).pow(2).flatten(1).sum(1)


def rrr_loss(network: nn.Module, images: Tensor, masks: Tensor, labels: Tensor,
             config: TrainConfig) -> tuple[LossTerms, Tensor, Tensor]:
    """CE + λ·RRR penalty (batch means); maps are the input gradients (B, 1, C, H, W)."""
    logits, gradient = log_probability_gradient(network, images)
    classification = F.cross_entropy(logits, labels)
    penalty = rrr_penalty(gradient, masks).mean()
    total = classification + config.rrr_weight * penalty
    return LossTerms(total, classification, penalty), logits, gradient.detach().unsqueeze(1)


def input_gradient_map(model: nn.Module, images: Tensor) -> Tensor:
    """|∂ log p_ŷ / ∂x| summed over channels, for the predicted class ŷ.

    Shapes: images (B, C, H, W) → (B, 1, H, W).
    """
    classes = predicted_classes(model, images)

    def log_probabilities(x: Tensor) -> Tensor:
        return F.log_softmax(model(x), dim=1)

    with torch.enable_grad():
        inputs = images.detach().requires_grad_(True)
        saliency = Saliency(log_probabilities).attribute(inputs, target=classes, abs=True)
    return saliency.sum(1, keepdim=True)


register_method(Method(
    name="rrr", title="RRR",
    create_model=lambda config, in_channels: create_model(
        config.model, num_classes=config.num_classes, in_channels=in_channels),
    loss=rrr_loss, native_map=input_gradient_map, native_name="input gradient"))
