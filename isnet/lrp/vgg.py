"""LRP through the VGG: which rule applies where, and the reverse walk.

Rule table (see ``docs/lrp-rules.md``):

==========================  ================================================================
layer                       rule
==========================  ================================================================
classifier.6 (last linear)  ε (shared head, :mod:`isnet.lrp.head`)
classifier.3, classifier.0  ε (z = the linear layer's output, its bias detached if asked)
dropout                     identity in eval; in train the relevance of the dropped
                            activations (the trace keeps the forward pass's mask)
adaptive average pooling    ε (z = pooled features; overlapping windows when the feature
                            map is smaller than the pooled size)
conv (+ BatchNorm)          ε, BatchNorm and conv bias fused (:mod:`isnet.lrp.fused`)
max pooling                 winner-take-all (overlapping windows summed)
features.0 (+ BN)           z^B with pixel bounds [low, high]; ε if zb=False
ReLU                        relevance passes unchanged
==========================  ================================================================
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from isnet.lrp.config import LRPConfig
from isnet.lrp.conservation import BiasLedger
from isnet.lrp.fused import conv_affine, input_layer_relevance
from isnet.lrp.registry import register_walk
from isnet.lrp.rules import conv_transpose, epsilon_message, max_pool_transpose
from isnet.models.vgg import VGG, ConvTrace, PoolTrace, Trace


@register_walk(VGG)
def relevance_from_messages(model: VGG, trace: Trace, messages: Tensor,
                            config: LRPConfig, ledger: BiasLedger | None = None) -> Tensor:
    """The reverse walk from the input of the last linear layer to the input pixels.

    Args:
        model: the VGG that produced ``trace``.
        trace: activations from ``model.forward_trace``.
        messages: (B, M, hidden) messages at ``trace.pooled`` (from :mod:`isnet.lrp.targets`).
        config: LRP settings.
        ledger: records what each step's bias and ε keep (:mod:`isnet.lrp.conservation`).

    Returns:
        heatmaps (B, M, C, H, W): relevance per input pixel and channel.
    """
    e, detach = config.epsilon, config.detach_bias
    message = _classifier_message(model, trace, messages, config, ledger)  # (B, M, C_f·p·p)
    pooled = trace.avgpooled  # (B, C_f, p, p)
    message = message.unflatten(-1, pooled.shape[1:])  # (B, M, C_f, p, p)
    if ledger is not None:
        ledger.epsilon_step("average pooling", pooled, message, pooled, None, None, e)
    ratio = epsilon_message(pooled, message, pooled, None, None, e)  # ε at the pooling: z = pooled
    message = adaptive_avg_pool_transpose(ratio, tuple(trace.features.shape[-2:]))
    first = trace.stages[0]
    for stage in reversed(trace.stages[1:]):
        if isinstance(stage, PoolTrace):
            message = max_pool_transpose(message, stage.indices, stage.input_size)
            continue
        conv, norm = _conv_and_norm(model, stage)
        scale, shift = conv_affine(conv, norm, stage.conv, detach)
        if ledger is not None:
            ledger.epsilon_step(f"features.{stage.index}", stage.relu, message, stage.conv,
                                scale, shift, e, conv)
        ratio = epsilon_message(stage.relu, message, stage.conv, scale, shift, e)
        message = conv_transpose(ratio, conv.weight, tuple(stage.inputs.shape[-2:]), conv.stride,
                                 conv.padding)
    if not isinstance(first, ConvTrace):
        raise ValueError("a VGG must start with a convolution")
    conv, norm = _conv_and_norm(model, first)
    scale, shift = conv_affine(conv, norm, first.conv, detach)
    return input_layer_relevance(trace.inputs, conv, scale, shift, first.conv, first.relu,
                                 message, config, ledger)


def _conv_and_norm(model: VGG, stage: ConvTrace):
    conv, after = model.features[stage.index], model.features[stage.index + 1]
    return conv, (after if isinstance(after, torch.nn.BatchNorm2d) else None)


def _classifier_message(model: VGG, trace: Trace, messages: Tensor, config: LRPConfig,
                        ledger: BiasLedger | None = None) -> Tensor:
    """ε through the hidden linear layers, top down: (B, M, hidden) at ``trace.pooled`` →
    (B, M, C_f·p·p) at the flattened pooled features. The relevance at a ReLU is that of its
    dropout's output (the dropped activation times the message)."""
    linears = list(model.classifier)[0:-1:3]
    message = messages
    for linear, z, dropped in zip(reversed(linears), reversed(trace.hidden_z),
                                  reversed(trace.hidden_dropped), strict=True):
        scale, shift = conv_affine(linear, None, z, config.detach_bias)
        if ledger is not None:
            ledger.epsilon_step("classifier hidden layer", dropped, message, z, scale, shift,
                                config.epsilon, linear)
        ratio = epsilon_message(dropped[..., None, None], message[..., None, None],
                                z[..., None, None], scale, shift, config.epsilon)
        message = ratio[..., 0, 0] @ linear.weight  # (B, M, in)
    return message


def _pool_matrix(size_in: int, size_out: int, like: Tensor) -> Tensor:
    """(size_out, size_in) weights of 1-D adaptive average pooling (rows sum to 1)."""
    eye = torch.eye(size_in, dtype=like.dtype, device=like.device).unsqueeze(0)
    return F.adaptive_avg_pool1d(eye, size_out)[0].T


def adaptive_avg_pool_transpose(ratio: Tensor, input_size: tuple[int, int]) -> Tensor:
    """Transpose of 2-D adaptive average pooling: ``c_ij = Σ_kl P_ki P'_lj s_kl``.

    Adaptive pooling is separable (a window per output row times a window per output column,
    weight 1/area), so its transpose is two small matrix products. Overlapping windows (input
    smaller than the output, or sizes that do not divide) add up.

    Shapes: ratio (B, M, C, p, q) → (B, M, C, H, W).
    """
    p, q = ratio.shape[-2:]
    if (p, q) == tuple(input_size):
        return ratio
    rows = _pool_matrix(input_size[0], p, ratio)  # (p, H)
    cols = _pool_matrix(input_size[1], q, ratio)  # (q, W)
    return torch.einsum("bmckl,ki,lj->bmcij", ratio, rows, cols)
