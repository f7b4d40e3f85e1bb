"""The smallest training method: cross-entropy on the image and on the object alone.

    L = ½ · CE(f(x), y) + ½ · CE(f(x ⊙ M), y)

with M the foreground mask: the second term shows the classifier each image with its
background blacked out, so the object alone must be enough to name the class (a shortcut in the
background is then worth only half the loss). Native map: |gradient × input| of the predicted
class, summed over colour channels.

In the project this file would be ``isnet/training/methods/object_only.py``, imported by
``isnet/training/methods/__init__.py``, with ``"object_only"`` added to
``isnet.training.config.TRAINING_METHODS``. See ``docs/how-to/add-a-training-method.md``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from isnet.loss import LossTerms
from isnet.models import create_model
from isnet.training.config import TrainConfig
from isnet.training.methods.registry import Method, predicted_classes, register_method


def object_only_loss(network: nn.Module, images: Tensor, masks: Tensor, labels: Tensor,
                     config: TrainConfig) -> tuple[LossTerms, Tensor, None]:
    """½·CE on the images + ½·CE on the objects alone; no maps (the loss constrains none).

    Shapes: images (B, C, H, W); masks (B, 1, H, W) in {0, 1}; labels (B,) → logits (B, K).
    """
    logits = network(images)
    whole = F.cross_entropy(logits, labels)
    alone = F.cross_entropy(network(images * masks.to(images.dtype)), labels)
    total = 0.5 * whole + 0.5 * alone
    return LossTerms(total, whole, alone), logits, None


def gradient_times_input_map(model: nn.Module, images: Tensor) -> Tensor:
    """|∂ logit_ŷ / ∂x · x| summed over channels, ŷ the predicted class.

    Shapes: images (B, C, H, W) → (B, 1, H, W).
    """
    classes = predicted_classes(model, images)
    with torch.enable_grad():
        inputs = images.detach().requires_grad_(True)
        chosen = model(inputs).gather(1, classes[:, None]).sum()
        (gradient,) = torch.autograd.grad(chosen, inputs)
    return (gradient * inputs).detach().abs().sum(1, keepdim=True)


register_method(Method(
    name="object_only", title="Object-only CE",
    create_model=lambda config, in_channels: create_model(
        config.model, num_classes=config.num_classes, in_channels=in_channels),
    loss=object_only_loss, native_map=gradient_times_input_map,
    native_name="gradient × input"))
