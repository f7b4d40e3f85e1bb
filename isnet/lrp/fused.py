"""A convolution with its bias and the BatchNorm after it, as one linear map for LRP.

ResNet and VGG put each BatchNorm right after a convolution (``conv → BN → ReLU``), so the
BatchNorm is fused into that convolution: ``z = scale·conv(x) + shift`` per output channel, the
z of the ε-rule (and of z^B at the input layer). VGG's convolutions also carry a bias ``b``;
then ``z = scale·(conv_nobias(x) + b) + shift``.

As in :mod:`isnet.lrp.canonize`, everything is a pure function of the current parameters and of
the statistics the forward pass used. The tensors the rules read are the trace's own conv outputs
(``conv(x)``, bias included); ``detach_bias`` (see :class:`isnet.lrp.config.LRPConfig`) detaches
the conv bias inside the rule by adding ``scale·(b.detach() − b)`` to the shift: the value is
unchanged and the bias' gradient through the rule cancels, while activations keep theirs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor, nn

from isnet.lrp.canonize import batch_statistics, batchnorm_affine, uses_batch_statistics
from isnet.lrp.config import LRPConfig, channel_view
from isnet.lrp.rules import conv_transpose, epsilon_message, zbox_rule

if TYPE_CHECKING:
    from isnet.lrp.conservation import BiasLedger


def conv_affine(conv: nn.Conv2d | nn.Linear, norm: nn.BatchNorm2d | None, conv_out: Tensor,
                detach_bias: bool = True) -> tuple[Tensor, Tensor]:
    """Per-channel ``(scale, shift)`` with ``z = conv_out·scale + shift`` the fused layer's output.

    Args:
        conv: the convolution (or linear layer) whose output is ``conv_out``.
        norm: the BatchNorm reading ``conv_out``, or None.
        conv_out: the layer's output in the forward pass (bias included), (B, C, H, W) or (B, C).
        detach_bias: detach the conv bias, the BatchNorm shift and batch statistics.

    Returns:
        scale (C,) and shift (C,).
    """
    channels = conv_out.shape[1]
    if norm is not None:
        statistics = None
        if detach_bias and uses_batch_statistics(norm) and conv_out.dim() == 4:
            statistics = batch_statistics(conv_out)
        scale, shift = batchnorm_affine(norm, conv_out, detach_bias, statistics)
    else:
        scale, shift = conv_out.new_ones(channels), conv_out.new_zeros(channels)
    bias = conv.bias
    if detach_bias and bias is not None:
        shift = shift + scale * (bias.detach() - bias)  # value 0, cancels the bias' gradient
    return scale, shift


def input_layer_relevance(inputs: Tensor, conv: nn.Conv2d, scale: Tensor, shift: Tensor,
                          conv_out: Tensor, activation: Tensor, transposed: Tensor,
                          config: LRPConfig, ledger: BiasLedger | None = None) -> Tensor:
    """Relevance at the input pixels through the first conv (+ fused BatchNorm) and its ReLU.

    z^B with the bounds ``config.low``/``config.high`` when ``config.zb``, else ε. The fused
    layer is ``conv_nobias(x)·scale + (b·scale + shift)`` (see :func:`conv_affine`).

    Shapes: inputs (B, C, H, W); conv_out, activation (B, C_out, h, w) = the conv's output and
    the ReLU after it; transposed (B, M, C_out, h, w), relevance at the ReLU being
    ``activation · transposed``. Returns (B, M, C, H, W). A ``ledger`` records what the
    layer's bias and ε keep (:mod:`isnet.lrp.conservation`).
    """
    size = tuple(inputs.shape[-2:])
    if config.zb:
        relevance = activation.unsqueeze(1) * transposed  # (B, M, C_out, h, w)
        weight = conv.weight * scale.view(-1, 1, 1, 1)
        bias = shift if conv.bias is None else conv.bias * scale + shift
        # Σ_j x_j w_jk of the fused conv, from the forward pass's output: (conv(x) − b)·scale
        unbiased = conv_out if conv.bias is None else conv_out - conv.bias.view(1, -1, 1, 1)
        low, high = channel_view(config.low, inputs), channel_view(config.high, inputs)
        return zbox_rule(inputs, weight, bias, relevance, low, high, conv.stride, conv.padding,
                         config.epsilon, bias_convention=config.zb_bias,
                         weighted_inputs=unbiased * scale.view(1, -1, 1, 1), ledger=ledger)
    if ledger is not None:
        ledger.epsilon_step("input layer (ε)", activation, transposed, conv_out, scale, shift,
                            config.epsilon, conv)
    ratio = epsilon_message(activation, transposed, conv_out, scale, shift, config.epsilon)
    return inputs.unsqueeze(1) * conv_transpose(ratio, conv.weight, size, conv.stride,
                                                conv.padding)
