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

import torch
import torch.nn.functional as F
from torch import Tensor

from isnet.lrp.config import ZB_BIAS_CONVENTIONS


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

    The output padding is derived from ``input_size``, so odd sizes and strides work.

    Shapes: ratio (B, M, C_out, h, w); weight (C_out, C_in, kh, kw); returns (B, M, C_in, H, W).
    """
    stride = torch.nn.modules.utils._pair(stride)
    padding = torch.nn.modules.utils._pair(padding)
    h, w = ratio.shape[-2:]
    kh, kw = weight.shape[-2:]
    extra = (input_size[0] - ((h - 1) * stride[0] - 2 * padding[0] + kh),
             input_size[1] - ((w - 1) * stride[1] - 2 * padding[1] + kw))
    folded = F.conv_transpose2d(_fold(ratio), weight, stride=stride, padding=padding,
                                output_padding=extra)  # (B·M, C_in, H, W)
    return _unfold(folded, ratio.shape[0])


def avg_pool_transpose(ratio: Tensor, input_size: tuple[int, int], kernel: int) -> Tensor:
    """Transpose of non-overlapping average pooling (kernel = stride): spread each value over its
    window with weight 1/kernel². Rows/columns the pooling dropped (odd sizes) get zero.

    Shapes: ratio (B, M, C, h, w) → (B, M, C, H, W).
    """
    spread = ratio.repeat_interleave(kernel, dim=-2).repeat_interleave(kernel, dim=-1)
    spread = spread / (kernel * kernel)  # (B, M, C, h·k, w·k)
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
              bias_convention: str = "authors") -> Tensor:
    """z^B rule for a convolution whose inputs lie in the box [low, high] (per input channel).

    Zero padding contributes nothing: the bound images are padded with zeros like the input.
    The bias only enters the denominator z (it absorbs relevance, it receives none), as
    ``bias_convention`` says:

    * ``"authors"``: ``b − l·b⁺ − h·b⁻``, the bias as a weight on a constant input 1 bounded by
      [l, h] (the ISNet authors' code; ``max(b, 0)`` for pixels in [0, 1]). With one bound per
      channel, the bias's box is the smallest box holding them all: [min l, max h].
    * ``"full"``: ``b``, the whole bias.
    * ``"none"``: no bias term (zennit's ZBox, where the bias cancels out of z).

    Shapes: inputs (B, C, H, W); weight (C_out, C, kh, kw); bias (C_out,) or None;
    relevance (B, M, C_out, h, w); low/high broadcastable to (1, C, 1, 1).
    Returns: relevance at the inputs, (B, M, C, H, W).
    """
    positive, negative = weight.clamp(min=0), weight.clamp(max=0)
    channels = inputs.shape[1]
    # The bound images are constant, so their convolutions are the same for every sample:
    # computed on one image and broadcast over the batch.
    low_image = torch.ones_like(inputs[:1]) * low  # (1, C, H, W)
    high_image = torch.ones_like(inputs[:1]) * high
    z = (F.conv2d(inputs, weight, zbox_bias(bias, low, high, bias_convention), stride, padding)
         - F.conv2d(low_image, positive, None, stride, padding)
         - F.conv2d(high_image, negative, None, stride, padding))  # (B, C_out, h, w)
    ratio = epsilon_ratio(relevance, z, epsilon)
    size = tuple(inputs.shape[-2:])
    # one transpose for the three weights: (B, M, 3·C, H, W), split into w, w⁺, w⁻ parts
    stacked = conv_transpose(ratio, torch.cat([weight, positive, negative], 1), size, stride,
                             padding)
    plain, lows, highs = stacked.split(channels, dim=2)
    return (inputs.unsqueeze(1) * plain - low_image.unsqueeze(1) * lows
            - high_image.unsqueeze(1) * highs)


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


class _EpsilonMessage(torch.autograd.Function):
    """``m = a · t · s / (x·s + b + ε·sign(x·s + b))``, saving only its inputs.

    Autograd on the unfused expression would keep three new activation-sized tensors per layer
    (the relevance, the stabilised denominator and the ratio); this keeps none of them and
    recomputes the denominator in backward. The backward is written in differentiable
    operations, so higher derivatives still work.
    """

    @staticmethod
    def forward(ctx, activation: Tensor, transposed: Tensor, inputs: Tensor, scale: Tensor,
                shift: Tensor, epsilon: float) -> Tensor:
        ctx.save_for_backward(activation, transposed, inputs, scale, shift)
        ctx.epsilon = epsilon
        scale_view = scale.view(1, -1, 1, 1)
        z = torch.addcmul(shift.view(1, -1, 1, 1), inputs, scale_view)  # (B, C, H, W)
        denominator = z.add_(_signed_epsilon(z, epsilon))  # z is a temporary: stabilise in place
        ratio = torch.div(activation, denominator).mul_(scale_view)  # (B, C, H, W)
        return transposed * ratio.unsqueeze(1)  # (B, M, C, H, W)

    @staticmethod
    def backward(ctx, grad: Tensor):
        activation, transposed, inputs, scale, shift = ctx.saved_tensors
        needs = ctx.needs_input_grad
        scale_view, shift_view = scale.view(1, -1, 1, 1), shift.view(1, -1, 1, 1)
        z = torch.addcmul(shift_view, inputs, scale_view)
        signed_epsilon = _signed_epsilon(z, ctx.epsilon)
        inverse = (z + signed_epsilon).reciprocal()  # 1 / denominator
        factor = inverse * scale_view  # (B, C, H, W)
        grad_transposed = grad * (activation * factor).unsqueeze(1) if needs[1] else None
        if grad.shape[1] == 1:
            weighted = grad[:, 0] * transposed[:, 0]  # (B, C, H, W)
        else:
            weighted = (grad * transposed).sum(1)  # summed over the M maps
        grad_activation = weighted * factor if needs[0] else None
        # d m / d denominator = −m / denominator, and d denominator = s·dx + x·ds + db
        over_square = weighted * activation * inverse * inverse
        grad_inputs = over_square * -(scale_view * scale_view) if needs[2] else None
        grad_scale = grad_shift = None
        if needs[3]:  # d m / d s = a·t / D − a·t·s·x / D² = a·t·(b + ε·sign) / D²
            grad_scale = ((over_square * signed_epsilon).sum((0, 2, 3))
                          + shift * over_square.sum((0, 2, 3)))
        if needs[4]:
            grad_shift = -(over_square * scale_view).sum((0, 2, 3))
        return grad_activation, grad_transposed, grad_inputs, grad_scale, grad_shift, None


def epsilon_message(activation: Tensor, transposed: Tensor, inputs: Tensor, scale: Tensor,
                    shift: Tensor, epsilon: float) -> Tensor:
    """One ε step into a layer followed by an affine map (a fused BatchNorm) and a ReLU.

    The relevance at the ReLU is ``R = a · t`` (activation times the transposed message from
    above); the layer's pre-activation is ``z = x·s + b`` (x: the BatchNorm's input, s/b: its
    fused scale and shift, or 1/0 for a bare conv). Returns the message sent down,
    ``s · R / (z + ε·sign(z))``.

    Shapes: activation, inputs (B, C, H, W); transposed (B, M, C, H, W); scale, shift (C,);
    returns (B, M, C, H, W).
    """
    return _EpsilonMessage.apply(activation, transposed, inputs, scale, shift, epsilon)


def relu_epsilon_message(activation: Tensor, transposed: Tensor, scale: Tensor,
                         epsilon: float) -> Tensor:
    """:func:`epsilon_message` for the case ``activation == ReLU(z)`` exactly, without z.

    Where ``z > 0`` the activation is z itself, so ``a / (z + ε) = a / (a + ε)``; where
    ``z ≤ 0`` the activation is 0 and so is the message. The layer's input and shift are then
    not needed, and the message costs four passes over the activation instead of seven. Only
    for explaining (no gradient: the derivatives with respect to z, the scale and the shift are
    not those of the ε-rule) and ``epsilon > 0`` (else 0 / 0 where a = 0).

    Shapes: activation (B, C, H, W); transposed (B, M, C, H, W); scale (C,);
    returns (B, M, C, H, W).
    """
    if epsilon <= 0:
        raise ValueError(f"relu_epsilon_message needs epsilon > 0, got {epsilon}")
    ratio = torch.add(activation, epsilon).reciprocal_().mul_(activation)  # a / (a + ε)
    ratio = ratio.mul_(scale.view(1, -1, 1, 1))  # (B, C, H, W)
    return transposed * ratio.unsqueeze(1)
