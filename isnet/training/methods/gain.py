"""GAIN with external supervision, "Tell me where to look" (Li et al., CVPR 2018).

Three terms, as in the paper and the ISNet authors' comparison code:

* classification: cross-entropy of the logits on the image I;
* attention mining (weight α = 1): Grad-CAM A of the true class at the last ReLU
  (``features.relu5`` of the DenseNet), upsampled bilinearly to the image, gives a soft mask
  ``T(A) = sigmoid(ω (A − σ))`` with ω = 10 and σ = 0.5; the image with the attended region
  removed, ``I* = I − T(A) ⊙ I``, should no longer show the class: the term is the batch mean of
  ``softmax(f(I*))_c`` for the true class c;
* external supervision (weight w = 10): ``MSE(A, M)`` between the Grad-CAM and the foreground mask.

Total: ``CE + α·L_am + w·L_e``. The Grad-CAM is computed with ``create_graph=True``, so both
attention terms train the weights through the channel weights of Grad-CAM as well (the authors'
code takes those weights from a backward hook, i.e. as constants). Grad-CAM is not normalised
(neither is the authors'), so σ = 0.5 is an absolute threshold.

Native map: Grad-CAM of the predicted class at the same layer (captum ``LayerGradCam``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

import torch
import torch.nn.functional as F
from captum.attr import LayerAttribution, LayerGradCam
from torch import Tensor, nn

from isnet.loss import LossTerms
from isnet.models import create_model
from isnet.training.config import TrainConfig
from isnet.training.methods.registry import Method, predicted_classes, register_method

MASK_SHARPNESS = 10.0  # ω
MASK_THRESHOLD = 0.5  # σ
MINING_WEIGHT = 1.0  # α
SUPERVISION_WEIGHT = 10.0  # w


class GainTerms(NamedTuple):
    """GAIN's loss terms (scalars) and the maps they were computed from.

    Shapes: cam, soft_mask (B, 1, H, W); logits (B, K).
    """

    total: Tensor
    classification: Tensor
    mining: Tensor
    supervision: Tensor
    cam: Tensor
    soft_mask: Tensor
    logits: Tensor


def last_relu(model: nn.Module) -> nn.Module:
    """The layer Grad-CAM reads: ``features.relu5`` of a DenseNet, else the last ReLU module."""
    features = getattr(model, "features", None)
    if features is not None and hasattr(features, "relu5"):
        return features.relu5
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    if not relus:
        raise ValueError(f"GAIN needs a ReLU to attend at; {type(model).__name__} has none")
    return relus[-1]


@contextmanager
def _recording(layer: nn.Module) -> Iterator[list[Tensor]]:
    """Record ``layer``'s outputs (graph kept) in a list owned by the caller; hook removed after."""
    outputs: list[Tensor] = []
    handle = layer.register_forward_hook(lambda module, args, output: outputs.append(output))
    try:
        yield outputs
    finally:
        handle.remove()


def grad_cam(model: nn.Module, images: Tensor, classes: Tensor,
             create_graph: bool = True) -> tuple[Tensor, Tensor]:
    """Differentiable Grad-CAM of ``classes`` at :func:`last_relu`, upsampled to the images.

    ``A = ReLU(Σ_f α_f a_f)`` with ``α_f`` the spatial mean of ∂y_c/∂a_f (Selvaraju et al.).

    Shapes: images (B, C, H, W); classes (B,) → logits (B, K), cam (B, 1, H, W).
    """
    with _recording(last_relu(model)) as outputs:
        logits = model(images)
    activation = outputs[-1]  # (B, F, h, w)
    score = logits.gather(1, classes[:, None]).sum()
    (gradient,) = torch.autograd.grad(score, activation, create_graph=create_graph)
    weights = gradient.mean(dim=(2, 3), keepdim=True)  # (B, F, 1, 1)
    cam = F.relu((weights * activation).sum(1, keepdim=True))  # (B, 1, h, w)
    return logits, F.interpolate(cam, size=images.shape[-2:], mode="bilinear",
                                 align_corners=False)


def soft_mask(cam: Tensor, sharpness: float = MASK_SHARPNESS,
              threshold: float = MASK_THRESHOLD) -> Tensor:
    """``T(A) = sigmoid(ω (A − σ))``, elementwise."""
    return torch.sigmoid(sharpness * (cam - threshold))


def gain_terms(model: nn.Module, images: Tensor, masks: Tensor, labels: Tensor,
               mining_weight: float = MINING_WEIGHT,
               supervision_weight: float = SUPERVISION_WEIGHT) -> GainTerms:
    """Every GAIN term for one batch (see the module docstring).

    Shapes: images (B, C, H, W); masks (B, 1, H, W) in {0, 1}; labels (B,).
    """
    logits, cam = grad_cam(model, images, labels)
    classification = F.cross_entropy(logits, labels)
    attention = soft_mask(cam)
    erased = images - attention * images  # I* (B, C, H, W)
    mining = F.softmax(model(erased), dim=1).gather(1, labels[:, None]).mean()
    supervision = F.mse_loss(cam, masks.to(cam.dtype).expand_as(cam))
    total = classification + mining_weight * mining + supervision_weight * supervision
    return GainTerms(total, classification, mining, supervision, cam, attention, logits)


def gain_loss(network: nn.Module, images: Tensor, masks: Tensor, labels: Tensor,
              config: TrainConfig) -> tuple[LossTerms, Tensor, Tensor]:
    """GAIN's objective; the heatmap term is ``α·L_am + w·L_e``; maps are the CAMs."""
    terms = gain_terms(network, images, masks, labels)
    attention = terms.total - terms.classification
    return (LossTerms(terms.total, terms.classification, attention), terms.logits,
            terms.cam.detach().unsqueeze(1))


def grad_cam_map(model: nn.Module, images: Tensor) -> Tensor:
    """Grad-CAM of the predicted class (captum), bilinearly upsampled: (B, 1, H, W)."""
    classes = predicted_classes(model, images)
    with torch.enable_grad():
        cam = LayerGradCam(model, last_relu(model)).attribute(images, target=classes,
                                                              relu_attributions=True)
    return LayerAttribution.interpolate(cam, tuple(images.shape[-2:]), "bilinear")


register_method(Method(
    name="gain", title="GAIN (ext. supervision)",
    create_model=lambda config, in_channels: create_model(
        config.model, num_classes=config.num_classes, in_channels=in_channels),
    loss=gain_loss, native_map=grad_cam_map, native_name="Grad-CAM"))
