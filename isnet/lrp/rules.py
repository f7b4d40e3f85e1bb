"""LRP rules for one layer, as pure differentiable functions of live tensors.

Notation (Montavon et al., "Layer-wise relevance propagation: an overview", 2019): a layer maps
inputs ``a_j`` to pre-activations ``z_k = Σ_j a_j w_jk + b_k``; ``R_k`` is the relevance at the
output (at the output of the ReLU that follows, which passes relevance unchanged).

* ε-rule: ``R_j = a_j Σ_k w_jk R_k / (z_k + ε·sign(z_k))``, with sign(0) = +1.
* z^B-rule (input layer, pixels bounded in [l, h]):
  ``R_j = Σ_k (a_j w_jk − l_j w⁺_jk − h_j w⁻_jk) R_k / (z^B_k + ε·sign(z^B_k))`` where
  ``z^B_k = Σ_j (a_j w_jk − l_j w⁺_jk − h_j w⁻_jk) + β_k`` and the bias term ``β_k`` follows
  one of three conventions: ``b_k − l·b⁺_k − h·b⁻_k`` ("authors": the bias is a weight on a
  constant input 1 bounded like the pixels), ``b_k`` ("full") or 0 ("none", zennit's ZBox).

Every rule is written as "ratio, then transpose": ``s_k = R_k / stabilised z_k`` and
``c_j = Σ_k w_jk s_k`` (the vector–Jacobian product of the linear map, i.e. a transposed
convolution), then ``R_j = a_j c_j``. Weights, activations and relevances stay in the autograd
graph, so a loss on the resulting heatmap trains the network; only the sign in the stabiliser is
piecewise constant.

Relevance tensors carry an extra axis M (one map per explained output) right after the batch:
relevance (B, M, C, H, W) against activations (B, C, H, W). Activations are broadcast over M,
never copied.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from isnet.lrp.config import ZB_BIAS_CONVENTIONS
from isnet.lrp.message import epsilon_message, relu_epsilon_message
from isnet.models.layout import channels_last

if TYPE_CHECKING:
    from isnet.lrp.conservation import BiasLedger

__all__ = ["avg_pool_transpose", "conv_transpose", "epsilon_message", "epsilon_ratio",
           "last_window_mask", "max_pool_transpose", "relu_epsilon_message", "stabilize",
           "zbox_bias", "zbox_rule"]


def stabilize(z: Tensor, epsilon: float) -> Tensor:
    """``z + ε·sign(z)`` with sign(0) taken as +1 (the ε stabiliser of the ε-rule)."""
    return z + _signed_epsilon(z, epsilon)


def _signed_epsilon(z: Tensor, epsilon: float) -> Tensor:
    """``ε·sign(z)`` with sign(±0) = +1, constant for autograd. (Adding +0.0 turns −0.0 into
    +0.0, so ``copysign`` sees the sign the ε-rule wants.)"""
    with torch.no_grad():
        return torch.copysign(z.new_tensor(epsilon), z + 0.0)


def _fold(relevance: Tensor) -> Tensor:
    """(B, M, C, H, W) → (B·M, C, H, W) for the 4-D convolution functions."""
    return relevance.flatten(0, 1)


def _unfold(folded: Tensor, batch: int) -> Tensor:
    """(B·M, C, H, W) → (B, M, C, H, W)."""
    return folded.unflatten(0, (batch, -1))


def conv_transpose(ratio: Tensor, weight: Tensor, input_size: tuple[int, int],
                   stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0) -> Tensor:
    """``c_j = Σ_k w_jk s_k`` for a convolution: the transpose of ``conv2d(·, weight)``.

    The output padding is derived from ``input_size``, so odd sizes and strides work. A 1×1
    convolution without padding is a matrix product over channels, whose transpose is the
    convolution with the transposed weight ``wᵀ`` (C_in, C_out, 1, 1); that runs as a plain
    convolution, 1.5–3× faster on the CPU than the transposed-convolution kernel.

    Shapes: ratio (B, M, C_out, h, w); weight (C_out, C_in, kh, kw); returns (B, M, C_in, H, W).
    """
    stride = torch.nn.modules.utils._pair(stride)
    padding = torch.nn.modules.utils._pair(padding)
    h, w = ratio.shape[-2:]
    kh, kw = weight.shape[-2:]
    if (kh, kw) == (1, 1) and padding == (0, 0):
        return _unfold(_pointwise_transpose(_fold(ratio), weight, input_size, stride),
                       ratio.shape[0])
    extra = (input_size[0] - ((h - 1) * stride[0] - 2 * padding[0] + kh),
             input_size[1] - ((w - 1) * stride[1] - 2 * padding[1] + kw))
    folded = F.conv_transpose2d(_fold(ratio), weight, stride=stride, padding=padding,
                                output_padding=extra)  # (B·M, C_in, H, W)
    return _unfold(folded, ratio.shape[0])


def _pointwise_transpose(ratio: Tensor, weight: Tensor, input_size: tuple[int, int],
                         stride: tuple[int, int]) -> Tensor:
    """Transpose of a 1×1 convolution without padding: ``c = wᵀ s`` at the strided positions,
    zero elsewhere. Shapes: ratio (N, C_out, h, w) → (N, C_in, H, W), in ratio's memory layout.

    Few positions against a large weight (deep layers) run fastest as a matrix product with
    the transposed view of the weight (no copy of it, forward or backward); many positions as a
    convolution with ``wᵀ`` (measured on the CPU, one thread). In the channels-last layout the
    matrix product runs over the channel axis, which is then the innermost one.
    """
    rows, (c_out, c_in) = ratio.shape[0] * ratio.shape[2] * ratio.shape[3], weight.shape[:2]
    last = channels_last(ratio)
    if last:  # (N, h, w, C_out) @ (C_out, C_in), as fast as or faster than a convolution
        transposed = torch.matmul(ratio.permute(0, 2, 3, 1), weight.view(c_out, c_in)).permute(
            0, 3, 1, 2)  # (N, C_in, h, w), channels-last
    elif rows * 128 < c_out * c_in:
        flat = ratio.reshape(ratio.shape[0], c_out, -1)  # (N, C_out, h·w)
        transposed = torch.matmul(weight.view(c_out, c_in).t(), flat).view(
            ratio.shape[0], c_in, *ratio.shape[2:])  # (N, C_in, h, w)
    else:
        transposed = F.conv2d(ratio, weight.transpose(0, 1))  # (N, C_in, h, w)
    if stride == (1, 1) and tuple(input_size) == tuple(transposed.shape[-2:]):
        return transposed
    layout = torch.channels_last if last else torch.contiguous_format
    out = torch.empty(*transposed.shape[:2], *input_size, dtype=transposed.dtype,
                      device=transposed.device, memory_format=layout).zero_()
    h, w = transposed.shape[-2:]
    out[..., : (h - 1) * stride[0] + 1: stride[0], : (w - 1) * stride[1] + 1: stride[1]] = \
        transposed
    return out


def avg_pool_transpose(ratio: Tensor, input_size: tuple[int, int], kernel: int) -> Tensor:
    """Transpose of non-overlapping average pooling (kernel = stride): spread each value over its
    window with weight 1/kernel². Rows/columns the pooling dropped (odd sizes) get zero.

    Shapes: ratio (B, M, C, h, w) → (B, M, C, H, W), in ratio's memory layout (nearest-neighbour
    upsampling keeps channels-last; repeating along the axes would not).
    """
    spread = F.interpolate(_fold(ratio), scale_factor=kernel, mode="nearest")  # (B·M, C, hk, wk)
    spread = _unfold(spread / (kernel * kernel), ratio.shape[0])  # (B, M, C, h·k, w·k)
    pad_h, pad_w = input_size[0] - spread.shape[-2], input_size[1] - spread.shape[-1]
    return F.pad(spread, (0, pad_w, 0, pad_h)) if pad_h or pad_w else spread


def max_pool_transpose(ratio: Tensor, indices: Tensor, input_size: tuple[int, int], *,
                       overwrite: bool = False) -> Tensor:
    """Winner-take-all transpose of max pooling: each pooled value goes back to its argmax.

    Where overlapping windows share a winner, their contributions are **summed** (scatter-add),
    which is what the transpose of the max-pool selection is. With ``overwrite`` (the published
    ISNet LRP block, which unpools with ``max_unpool2d``), one value per winner is kept instead:
    that of the last window in raster order, as ``max_unpool2d`` leaves it on the CPU; and the
    gradient is ``max_unpool2d``'s, a gather that reaches every window, overwritten or not (so
    it is not the derivative of the overwrite, but what the published block trains with). Both
    are deterministic (the overwrite is a mask, then the same scatter-add).

    Shapes: ratio (B, M, C, h, w); indices (B, C, h, w) flat indices into H·W;
    returns (B, M, C, H, W).
    """
    batch, maps, channels = ratio.shape[:3]
    if overwrite:
        keep = last_window_mask(indices, input_size).unsqueeze(1).to(ratio.dtype)
        ratio = ratio + (ratio * keep - ratio).detach()  # values: overwrite; gradient: gather
    flat_index = indices.flatten(-2).unsqueeze(1).expand(batch, maps, channels, -1)  # (B,M,C,h·w)
    out = ratio.new_zeros(batch, maps, channels, input_size[0] * input_size[1])
    out = out.scatter_add(-1, flat_index, ratio.flatten(-2))  # (B, M, C, H·W)
    return out.unflatten(-1, input_size)


def last_window_mask(indices: Tensor, input_size: tuple[int, int]) -> Tensor:
    """True for the pooled positions whose value survives unpooling by overwriting: for each
    winner, the last window (in raster order) that chose it.

    Shapes: indices (B, C, h, w) flat indices into H·W; returns a bool mask (B, C, h, w).
    """
    flat = indices.flatten(-2)  # (B, C, h·w)
    order = torch.arange(flat.shape[-1], device=flat.device).expand_as(flat)
    last = flat.new_full((*flat.shape[:-1], input_size[0] * input_size[1]), -1)
    last = last.scatter_reduce(-1, flat, order, reduce="amax")  # (B, C, H·W)
    return (last.gather(-1, flat) == order).view_as(indices)


def epsilon_ratio(relevance: Tensor, z: Tensor, epsilon: float) -> Tensor:
    """``s_k = R_k / (z_k + ε·sign(z_k))``. Shapes: relevance (B, M, …); z (B, …)."""
    return relevance / stabilize(z, epsilon).unsqueeze(1)


def zbox_rule(inputs: Tensor, weight: Tensor, bias: Tensor | None, relevance: Tensor,
              low: Tensor, high: Tensor, stride: int | tuple[int, int],
              padding: int | tuple[int, int], epsilon: float, *,
              bias_convention: str = "authors", weighted_inputs: Tensor | None = None,
              ledger: BiasLedger | None = None) -> Tensor:
    """z^B rule for a convolution whose inputs lie in the box [low, high] (per input channel).

    Zero padding contributes nothing: the bound images are padded with zeros like the input.
    The bias only enters the denominator z (it absorbs relevance, it receives none), as
    ``bias_convention`` says:

    * ``"authors"``: ``b − l·b⁺ − h·b⁻``, the bias as a weight on a constant input 1 bounded by
      [l, h] (the ISNet authors' code; ``max(b, 0)`` for pixels in [0, 1]). With one bound per
      channel, the bias's box is the smallest box holding them all: [min l, max h].
    * ``"full"``: ``b``, the whole bias.
    * ``"none"``: no bias term (zennit's ZBox, where the bias cancels out of z).

    The bounds are constant per channel, so their two terms are one convolution with the
    *bound weight* ``v = l·w⁺ + h·w⁻`` (scaled along the input channels): ``Σ_j (l_j w⁺_jk +
    h_j w⁻_jk)`` is ``v`` applied to an image of ones, the same for every sample (computed once,
    for one image), and the relevance is ``R_j = a_j·(wᵀ s)_j − (vᵀ s)_j`` with ``s = R/stab(z)``.
    Both transposes run as one transposed convolution with ``w`` and ``v`` stacked along the
    input channels (one pass over ``s`` instead of two; ~2× faster for the 7×7 stride-2 stem).

    Args:
        weighted_inputs: ``Σ_j a_j w_jk``, the convolution of ``inputs`` without bias, when the
            caller already has it (the forward pass computed it); computed here otherwise.
        ledger: records what the bias term and ε keep (:mod:`isnet.lrp.conservation`).

    Shapes: inputs (B, C, H, W); weight (C_out, C, kh, kw); bias (C_out,) or None;
    relevance (B, M, C_out, h, w); low/high broadcastable to (1, C, 1, 1); weighted_inputs
    (B, C_out, h, w) or None. Returns: relevance at the inputs, (B, M, C, H, W).
    """
    bound_weight = weight.clamp(min=0) * low + weight.clamp(max=0) * high  # (C_out, C, kh, kw)
    if weighted_inputs is None:
        weighted_inputs = F.conv2d(inputs, weight, None, stride, padding)  # (B, C_out, h, w)
    ones = inputs.new_ones(1, *inputs.shape[1:])  # (1, C, H, W)
    z = weighted_inputs - F.conv2d(ones, bound_weight, None, stride, padding)  # (B, C_out, h, w)
    bias_term = zbox_bias(bias, low, high, bias_convention)
    if bias_term is not None:
        z = z + bias_term.view(1, -1, 1, 1)
    if ledger is not None:
        ledger.absorb("input layer (z^B)", relevance, z, bias_term, epsilon)
    ratio = epsilon_ratio(relevance, z, epsilon)
    size = tuple(inputs.shape[-2:])
    both = conv_transpose(ratio, torch.cat([weight, bound_weight], dim=1), size, stride,
                          padding)  # (B, M, 2C, H, W): wᵀ s, then vᵀ s
    with_weight, with_bounds = both.split(inputs.shape[1], dim=2)
    return inputs.unsqueeze(1) * with_weight - with_bounds  # (B, M, C, H, W)


def zbox_bias(bias: Tensor | None, low: Tensor | float, high: Tensor | float,
              convention: str) -> Tensor | None:
    """The bias term of z^B under ``convention`` (see :func:`zbox_rule`); None for no term.

    Shapes: bias (C_out,) or None; low/high scalars or per input channel; returns (C_out,).
    """
    if convention not in ZB_BIAS_CONVENTIONS:
        raise ValueError(f"unknown z^B bias convention {convention!r}; "
                         f"expected one of {ZB_BIAS_CONVENTIONS}")
    if bias is None or convention == "none":
        return None
    if convention == "full":
        return bias
    low_bias = torch.as_tensor(low, dtype=bias.dtype, device=bias.device).min()
    high_bias = torch.as_tensor(high, dtype=bias.dtype, device=bias.device).max()
    return bias - low_bias * bias.clamp(min=0) - high_bias * bias.clamp(max=0)
