"""HAM's attention classifier (Ouyang et al., IEEE TMI 2020), on a registered backbone; family
``"ham"``.

HAM reads the last feature map ``e`` (B, F, h, w) of a CNN (a ResNet in the paper; here the
backbone's ``features`` up to its last ReLU, e.g. DenseNet121's ``features.relu5``) and adds:

* a foreground-attention module: 3×3 conv → BN, then the attention block (channel attention from
  a softmax-pooled descriptor through a bottleneck MLP and a sigmoid; position attention from a
  1×1 conv → 3×3 conv → BN → sigmoid; output ``γ·attended + input`` with γ learned from 0), then
  3×3 conv → BN;
* a head on the concatenation of ``e`` and the attended features: 3×3 conv → BN → ReLU →
  dropout (0.1), giving ``e_cat``;
* log-sum-exp pooling ``(log Σ_s exp(r·x_s) − log(hw)) / r`` with r = 6, and a linear layer
  without bias → logits;
* class activation maps ``CAM_k = ReLU(w_k · e_cat)`` with the (detached) classifier weights.

The paper's "anomaly" (positive/negative) head is left out: here every image has an object.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from isnet.models.protocols import as_classifier
from isnet.models.registry import (
    Family,
    create_model,
    families,
    family_of,
    family_spec,
    register_family,
)

LSE_SHARPNESS = 6.0  # r


def log_sum_exp_pool(x: Tensor, sharpness: float = LSE_SHARPNESS) -> Tensor:
    """LSE pooling over the grid. Shapes: (B, C, h, w) → (B, C)."""
    flat = x.flatten(2)
    return (torch.logsumexp(sharpness * flat, 2) - math.log(flat.shape[-1])) / sharpness


class ForegroundAttention(nn.Module):
    """HAM's attention block: channel attention, then position attention, residual with γ."""

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.pool_scores = nn.Conv2d(channels, 1, 1, bias=False)
        self.channel_mlp = nn.Sequential(nn.Linear(channels, hidden, bias=False), nn.ReLU(),
                                         nn.Linear(hidden, channels, bias=False))
        self.mix = nn.Conv2d(channels, channels, 1, bias=False)
        self.position = nn.Conv2d(channels, 1, 1, bias=False)
        self.position_gate = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1, bias=False),
                                           nn.BatchNorm2d(1))
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        """Shapes: (B, C, h, w) → (B, C, h, w)."""
        weights = self.pool_scores(x).flatten(2).softmax(-1)  # (B, 1, hw)
        descriptor = (x.flatten(2) * weights).sum(-1)  # (B, C)
        channel = torch.sigmoid(self.channel_mlp(descriptor))[:, :, None, None]
        position = self.position(self.mix(x) * channel)  # (B, 1, h, w)
        attended = position * torch.sigmoid(self.position_gate(position))
        return self.gamma * attended + x


class HAMNet(nn.Module):
    """A backbone's feature extractor with HAM's attention head (see the module docstring).

    Args:
        backbone_family: registered family of the backbone (must have ``features`` ending in a
            ReLU, optionally followed by a global pooling, which is dropped).
        backbone_arch: the backbone's constructor arguments (its classifier is not used).
        head_width: channels of the head convolution (512 in HAM).
    """

    def __init__(self, backbone_family: str, backbone_arch: Mapping[str, Any],
                 head_width: int = 512) -> None:
        super().__init__()
        arguments = {k: tuple(v) if isinstance(v, list) else v for k, v in backbone_arch.items()}
        network = family_spec(backbone_family).model_class(**arguments)
        backbone = as_classifier(network)
        children = list(network.get_submodule("features").named_children())
        if isinstance(children[-1][1], nn.AdaptiveAvgPool2d):
            children = children[:-1]
        self.features = nn.Sequential(OrderedDict(children))
        channels = backbone.classifier_layer.in_features
        inner = max(1, channels // 4)
        self.attention = nn.Sequential(
            nn.Conv2d(channels, inner, 3, padding=1, bias=False), nn.BatchNorm2d(inner),
            ForegroundAttention(inner),
            nn.Conv2d(inner, inner, 3, padding=1, bias=False), nn.BatchNorm2d(inner))
        self.head = nn.Sequential(
            nn.Conv2d(channels + inner, head_width, 3, padding=1, bias=False),
            nn.BatchNorm2d(head_width), nn.ReLU(), nn.Dropout2d(0.1))
        self.cam_classifier = nn.Linear(head_width, backbone.num_classes, bias=False)
        self.arch = dict(backbone_family=backbone_family, backbone_arch=dict(backbone.arch),
                         head_width=head_width)

    @classmethod
    def around(cls, backbone: str, num_classes: int, in_channels: int = 3,
               head_width: int | None = None) -> HAMNet:
        """HAM on a fresh registered backbone; the head is min(512, F) wide."""
        model = as_classifier(create_model(backbone, num_classes=num_classes,
                                           in_channels=in_channels))
        width = head_width or min(512, model.classifier_layer.in_features)
        return cls(family_of(backbone), model.arch, width)

    @property
    def num_classes(self) -> int:
        return self.cam_classifier.out_features

    def forward_cams(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Logits (B, K) and class activation maps (B, K, h, w) on the feature grid."""
        features = self.features(x)  # (B, F, h, w)
        combined = self.head(torch.cat([features, self.attention(features)], 1))
        logits = self.cam_classifier(log_sum_exp_pool(combined))
        weights = self.cam_classifier.weight.detach()[:, :, None, None]  # (K, D, 1, 1)
        return logits, F.relu(F.conv2d(combined, weights))

    def forward(self, x: Tensor) -> Tensor:
        """Logits (B, K) for images (B, C, H, W)."""
        return self.forward_cams(x)[0]


def _ham_arch(state: Mapping[str, Tensor]) -> dict[str, Any]:
    inner = {k: v for k, v in state.items() if k.startswith("features.")}
    inner["classifier.weight"] = state["cam_classifier.weight"]  # K for the backbone
    for family in families():
        if family.name != "ham" and all(k in inner for k in family.signature_keys):
            backbone = family.architecture_from_state_dict(inner)
            return dict(backbone_family=family.name, backbone_arch=backbone,
                        head_width=int(state["head.0.weight"].shape[0]))
    raise ValueError("the backbone weights of this HAM network match no registered family")


register_family(Family(
    name="ham", model_class=HAMNet, architecture_from_state_dict=_ham_arch,
    signature_keys=("attention.2.gamma", "head.0.weight", "cam_classifier.weight")))
