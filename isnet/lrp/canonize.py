"""BatchNorm as an affine map, computed from the current parameters on every call.

LRP treats each BatchNorm as part of the linear map before it ("BN fusion"): a convolution (or
pooling) followed by a BatchNorm is one linear map with weight ``w·γ/σ`` and bias
``β − γμ/σ``. In DenseNet every BatchNorm reads a concatenation, so it is fused into each
producer of a channel slice separately ("once per consumer"): the consumer's per-channel
``scale = γ/σ`` multiplies the relevance ratio sent to that producer, and the consumer's output
``z = scale·x + shift`` is the denominator of its ε-rule.

Nothing is rewritten in place: :func:`batchnorm_affine` is a pure function of the module's
current parameters and of the statistics its forward pass used (running statistics in eval mode,
the batch mean and biased variance of its input in train mode), so gradients reach both the
convolutions and the BatchNorm scales while the weights change during training.

``detach_bias`` (on by default, as in the ISNet paper) detaches the shift ``β − γμ/σ`` and the
batch statistics: the heatmap then trains weights, BN scales γ and activations, not shifts. (The
published ISNet block detaches only β, μ and σ² there, so γ also gets gradient through the
shift; ``detach_scale_in_shift=False`` does that, for ``LRPConfig.reference_quirks``.)
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def uses_batch_statistics(norm: nn.BatchNorm2d) -> bool:
    """Whether the BatchNorm's forward normalises with the statistics of the current batch."""
    return norm.training or norm.running_mean is None


def batch_statistics(inputs: Tensor, detach: bool = True,
                     unbiased: bool = False) -> tuple[Tensor, Tensor]:
    """Per-channel batch mean and biased variance, as BatchNorm computes them in train mode.

    Statistics are per channel, so those of a concatenation are the concatenation of those of its
    parts: a dense block computes them once on its widest concatenation and hands each reader
    the prefix it reads. ``unbiased`` gives the unbiased variance instead, as the published
    ISNet LRP block fuses it (``LRPConfig.reference_quirks``); the BatchNorm forward itself
    normalises with the biased one. Shapes: inputs (B, C, H, W) → mean (C,), var (C,).

    Detached biased statistics come from the fused kernel behind BatchNorm
    (``torch.batch_norm_update_stats`` with no running statistics to update): one pass, about
    2.7× faster than ``torch.var_mean`` over (B, H, W) on the CPU, and without a derivative,
    which detaching asks for anyway.
    """
    if detach and not unbiased and inputs.dim() == 4:
        return torch.batch_norm_update_stats(inputs.detach(), None, None, 0.0)
    var, mean = torch.var_mean(inputs, dim=(0, 2, 3), unbiased=unbiased)
    return (mean.detach(), var.detach()) if detach else (mean, var)


def batchnorm_affine(norm: nn.BatchNorm2d, inputs: Tensor, detach_bias: bool = True,
                     statistics: tuple[Tensor, Tensor] | None = None, *,
                     unbiased: bool = False,
                     detach_scale_in_shift: bool = True) -> tuple[Tensor, Tensor]:
    """Per-channel ``(scale, shift)`` with ``norm(inputs) == inputs * scale + shift``.

    Args:
        norm: the BatchNorm module (its ``training`` flag selects batch or running statistics,
            as in its own forward).
        inputs: the tensor the BatchNorm read in the forward pass, (B, C, H, W).
        detach_bias: detach the shift and the batch statistics (see module docstring).
        statistics: precomputed batch (mean, var) of ``inputs`` (or a superset of its channels,
            first channels first), used in train mode instead of recomputing them.
        unbiased: in train mode, compute the variance unbiased (the published ISNet block's
            choice; then the equality above holds only up to that factor).
        detach_scale_in_shift: with ``detach_bias``, detach the whole shift. False detaches only
            β, μ and σ², so γ keeps its gradient through ``−γμ/σ`` (the published ISNet block).

    Returns:
        scale (C,) and shift (C,).
    """
    channels = inputs.shape[1]
    if uses_batch_statistics(norm):
        mean, var = statistics or batch_statistics(inputs, detach_bias, unbiased)
        mean, var = mean[:channels], var[:channels]
    else:
        mean, var = norm.running_mean, norm.running_var
    weight = norm.weight if norm.affine else inputs.new_ones(channels)
    bias = norm.bias if norm.affine else inputs.new_zeros(channels)
    scale = weight * (var + norm.eps).rsqrt()
    if detach_bias and not detach_scale_in_shift:
        return scale, bias.detach() - mean.detach() * (weight * (var.detach() + norm.eps).rsqrt())
    shift = bias - mean * scale
    return scale, (shift.detach() if detach_bias else shift)


def batchnorm_output(inputs: Tensor, scale: Tensor, shift: Tensor) -> Tensor:
    """``inputs * scale + shift`` per channel: the BatchNorm output as the ε-rule's z.

    Shapes: inputs (B, C, H, W); scale, shift (C,) → (B, C, H, W).
    """
    return inputs * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1)
