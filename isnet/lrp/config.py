"""LRPConfig: the settings of the LRP block, travelling together in one frozen object."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

ZB_BIAS_CONVENTIONS: tuple[str, ...] = ("authors", "full", "none")
"""How the z^B rule treats the input layer's bias: as an input bounded like the pixels (the
ISNet authors'), whole, or not at all (zennit's ZBox)."""


@dataclass(frozen=True)
class LRPConfig:
    """Settings of the LRP block.

    Attributes:
        epsilon: ε of the ε-rule (``e`` in the paper's code), same in every layer.
        zb: use the z^B rule at the input layer (else ε).
        low: lowest input value per channel (l of z^B); a float or one value per channel.
        high: highest input value per channel (h of z^B).
        detach_bias: detach biases, BatchNorm shifts and batch statistics inside the rules
            (the paper's choice; its code keeps γ's gradient in the BN shift, which
            ``reference_quirks`` reproduces); weights, BN scales and activations always stay
            differentiable.
        zb_bias: how the z^B rule treats the bias b of the input layer (the fused conv0 +
            norm0), see :data:`ZB_BIAS_CONVENTIONS`: ``"authors"`` (default; the ISNet
            authors' code: the bias is a weight on a constant input bounded like the pixels, so
            ``b − l·b⁺ − h·b⁻`` enters z), ``"full"`` (the whole ``b`` enters z) or ``"none"``
            (the bias cancels out of z, as in zennit's ZBox). Only the relevance at the input
            layer depends on it.
        reference_quirks: compute the heatmaps as the LRP block the ISNet authors published
            (the heatmaps and gradients their checkpoints were trained with), including its two
            bookkeeping errors: the dense-layer consumer lookup that compares only the last
            digit of the layer number, and max unpooling that keeps one value where overlapping
            windows share a winner (with ``max_unpool2d``'s gradient). Also as published: the
            train-mode BatchNorm fusion uses the unbiased batch variance, and γ keeps its
            gradient in the fused shift. Off by default (the corrected rules). See
            ``docs/lrp-rules.md``.
    """

    epsilon: float = 0.01
    zb: bool = True
    low: float | Sequence[float] = 0.0
    high: float | Sequence[float] = 1.0
    detach_bias: bool = True
    zb_bias: Literal["authors", "full", "none"] = "authors"
    reference_quirks: bool = False

    def __post_init__(self) -> None:
        if self.zb_bias not in ZB_BIAS_CONVENTIONS:
            raise ValueError(f"zb_bias must be one of {ZB_BIAS_CONVENTIONS}, got {self.zb_bias!r}")
        if not self.epsilon >= 0:
            raise ValueError(f"epsilon must be >= 0, got {self.epsilon}")
        low = torch.as_tensor(self.low, dtype=torch.float64)
        high = torch.as_tensor(self.high, dtype=torch.float64)
        if torch.any(low >= high):
            raise ValueError(f"z^B bounds need low < high, got low={self.low}, high={self.high}")

    @classmethod
    def as_trained(cls, training: dict | None, **overrides) -> LRPConfig:
        """The settings a model's training heatmaps used, from its checkpoint's ``config``
        (``metadata["config"]``): its ε and input rule (z^B or ε). A checkpoint that does not
        say gets the paper's (ε = 0.01, z^B). ``overrides`` set any other field (bounds, …)."""
        training = training or {}
        settings = {"epsilon": float(training.get("epsilon", 0.01)),
                    "zb": bool(training.get("zb", True))}
        return cls(**{**settings, **overrides})


def channel_view(value: float | Sequence[float], like: Tensor) -> Tensor:
    """A float or one value per channel, as a (1, C, 1, 1) tensor like ``like``."""
    return torch.as_tensor(value, dtype=like.dtype, device=like.device).reshape(1, -1, 1, 1)


