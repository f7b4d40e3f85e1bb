"""ISNet Grad×Input: the ISNet heatmap loss applied to gradient × input instead of LRP.

The ISNet authors' ablation: for every class k, the heatmap ``R_k = x ⊙ ∂y_k/∂x`` (taken with
``create_graph=True``, so the loss trains the weights by a double backward) replaces the LRP
heatmap; the objective is the ISNet one, ``(1 − P)·CE + P·L_heatmap`` (:func:`isnet.isnet_loss`,
same P, GWRP decay and foreground band as the LRP ISNets). As in the original ISNet, one map per
class (K maps, K gradient passes per step).

Scale, as in the authors' code: the maps are gradients of the *batch mean* of each logit, i.e.
``(1/B)·x ⊙ ∂y_k/∂x`` per sample. The ISNet foreground band [C1, C2] was made for LRP maps, whose
total is about the logit; ``Σ|x ⊙ ∇y|`` is far larger (measured on DenseNet121 at 32 px:
heatmap losses of ~10⁴ and chance accuracy with per-sample maps), and the 1/B factor brings it
back into the band at the authors' batch sizes. The price is that the loss depends on B.

Native map: gradient × input of the predicted class (captum ``InputXGradient``), absolute values
summed over colour channels.
"""

from __future__ import annotations

import torch
from captum.attr import InputXGradient
from torch import Tensor, nn

from isnet.loss import LossTerms, isnet_loss
from isnet.models import create_model
from isnet.training.config import TrainConfig
from isnet.training.methods.registry import Method, predicted_classes, register_method


def gradient_times_input(model: nn.Module, images: Tensor,
                         create_graph: bool = True) -> tuple[Tensor, Tensor]:
    """Logits and one gradient×input map per class, of the batch-mean logit (1/B per sample).

    Shapes: images (B, C, H, W) → logits (B, K), maps (B, K, C, H, W).
    """
    inputs = images.detach().requires_grad_(True)
    logits = model(inputs)
    maps = []
    for k in range(logits.shape[1]):
        (gradient,) = torch.autograd.grad(logits[:, k].mean(), inputs, retain_graph=True,
                                          create_graph=create_graph)
        maps.append(gradient * inputs)  # (B, C, H, W)
    return logits, torch.stack(maps, 1)  # (B, K, C, H, W)


def gradient_input_loss(network: nn.Module, images: Tensor, masks: Tensor, labels: Tensor,
                        config: TrainConfig) -> tuple[LossTerms, Tensor, Tensor]:
    """The ISNet objective on gradient×input maps (B, K, C, H, W)."""
    logits, maps = gradient_times_input(network, images)
    terms = isnet_loss(logits, labels, maps, masks, heat_weight=config.heat_weight,
                       **config.heatmap_loss_kwargs())
    return terms, logits, maps.detach()


def gradient_input_map(model: nn.Module, images: Tensor) -> Tensor:
    """|x ⊙ ∂y_ŷ/∂x| summed over channels, for the predicted class: (B, 1, H, W)."""
    classes = predicted_classes(model, images)
    with torch.enable_grad():
        inputs = images.detach().requires_grad_(True)
        attribution = InputXGradient(model).attribute(inputs, target=classes)
    return attribution.abs().sum(1, keepdim=True)


register_method(Method(
    name="gradient_input", title="ISNet Grad×Input",
    create_model=lambda config, in_channels: create_model(
        config.model, num_classes=config.num_classes, in_channels=in_channels),
    loss=gradient_input_loss, native_map=gradient_input_map, native_name="gradient × input"))
