"""The ISNet: a DenseNet whose forward also returns its LRP heatmaps, inside the autograd graph.

During training, ``ISNet.forward`` returns ``(logits, heatmaps)`` and a loss on the heatmaps
(:func:`isnet.heatmap_loss`) trains the classifier through the LRP block with a plain
``loss.backward()``. For deployment the LRP block is dropped: :meth:`ISNet.deploy` hands back the
bare DenseNet, so inference costs exactly what the classifier costs.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from isnet.lrp import LRPConfig, relevance_from_messages
from isnet.models import DenseNet
from isnet.targets import check_mode, pooled_messages


class ISNet(nn.Module):
    """DenseNet + LRP block.

    Args:
        backbone: the DenseNet to explain and train (shared, not copied).
        e: ε of the ε-rule.
        zb: z^B rule at the input layer.
        heat: compute heatmaps in ``forward``; when False, ``forward`` returns only logits.
        explain: ``"all"`` (K maps, original ISNet), ``"target"``, ``"predicted"``,
            ``"selective"`` or ``"stochastic"`` (one map each); see :mod:`isnet.targets`.
        bounds: (low, high) input range for z^B, floats or one value per channel.
        detach_bias: detach biases, BN shifts and statistics in the rules (paper default).
        seed: seed of this model's own generator for the stochastic variant.
    """

    def __init__(self, backbone: DenseNet, e: float = 0.01, zb: bool = True, heat: bool = True,
                 explain: str = "all",
                 bounds: tuple[float | Sequence[float], float | Sequence[float]] = (0.0, 1.0),
                 detach_bias: bool = True, seed: int = 0) -> None:
        super().__init__()
        if not isinstance(backbone, DenseNet):
            raise ValueError(f"ISNet needs an isnet DenseNet backbone, got {type(backbone).__name__}"
                             "; build one with isnet.densenet121(num_classes=...)")
        self.backbone = backbone
        self.heat = heat
        self.explain = check_mode(explain)
        self.config = LRPConfig(epsilon=e, zb=zb, low=bounds[0], high=bounds[1],
                                detach_bias=detach_bias)
        self.generator = torch.Generator().manual_seed(seed)

    def forward(self, x: Tensor, target: int | Tensor | None = None) -> Tensor | tuple[Tensor, Tensor]:
        """Logits, and heatmaps when ``heat`` is on.

        Shapes: x (B, C, H, W) → logits (B, K), heatmaps (B, M, C, H, W) with M = K for
        ``explain="all"``, else 1.
        """
        if not self.heat:
            return self.backbone(x)
        logits, trace = self.backbone.forward_trace(x)
        messages = pooled_messages(self.backbone, trace, self.explain, self.config, target,
                                   self.generator)
        return logits, relevance_from_messages(self.backbone, trace, messages, self.config)

    def deploy(self) -> DenseNet:
        """The bare backbone, for inference without the LRP block (zero overhead)."""
        return self.backbone


def explain(model: DenseNet, x: Tensor, target: int | Tensor | str | None = None,
            e: float = 0.01, zb: bool = True,
            bounds: tuple[float | Sequence[float], float | Sequence[float]] = (0.0, 1.0),
            detach_bias: bool = True) -> tuple[Tensor, Tensor]:
    """LRP heatmap of one output per sample (for display and analysis).

    Args:
        model: a DenseNet (its train/eval mode is respected; use ``eval()`` for display).
        x: images (B, C, H, W), in ``bounds`` when ``zb`` is on.
        target: None (top prediction), a class index, a (B,) tensor of classes, or an explain
            mode name (``"all"``, ``"selective"``, …).
        e, zb, bounds, detach_bias: LRP settings, as in :class:`ISNet`.

    Returns:
        logits (B, K) and heatmaps (B, M, C, H, W), M = 1 unless ``target="all"``.
    """
    config = LRPConfig(epsilon=e, zb=zb, low=bounds[0], high=bounds[1], detach_bias=detach_bias)
    logits, trace = model.forward_trace(x)
    if target is None:
        mode, classes = "predicted", None
    elif isinstance(target, str):
        mode, classes = target, None
    else:
        mode, classes = "target", target
    messages = pooled_messages(model, trace, mode, config, classes)
    return logits, relevance_from_messages(model, trace, messages, config)
