"""LRPConfig: the settings of the LRP block, travelling together in one frozen object."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class LRPConfig:
    """Settings of the LRP block.

    Attributes:
        epsilon: ε of the ε-rule (``e`` in the paper's code), same in every layer.
        zb: use the z^B rule at the input layer (else ε).
        low: lowest input value per channel (l of z^B); a float or one value per channel.
        high: highest input value per channel (h of z^B).
        detach_bias: detach biases, BatchNorm shifts and batch statistics inside the rules
            (the paper's choice); weights, BN scales and activations always stay differentiable.
    """

    epsilon: float = 0.01
    zb: bool = True
    low: float | Sequence[float] = 0.0
    high: float | Sequence[float] = 1.0
    detach_bias: bool = True

    def __post_init__(self) -> None:
        if not self.epsilon >= 0:
            raise ValueError(f"epsilon must be >= 0, got {self.epsilon}")
        low = torch.as_tensor(self.low, dtype=torch.float64)
        high = torch.as_tensor(self.high, dtype=torch.float64)
        if torch.any(low >= high):
            raise ValueError(f"z^B bounds need low < high, got low={self.low}, high={self.high}")



def channel_view(value: float | Sequence[float], like: Tensor) -> Tensor:
    """A float or one value per channel, as a (1, C, 1, 1) tensor like ``like``."""
    return torch.as_tensor(value, dtype=like.dtype, device=like.device).reshape(1, -1, 1, 1)


