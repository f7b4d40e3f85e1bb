"""The ε message: one ε step into a layer followed by an affine map and a ReLU, fused.

Every ε step of the walks ends in the same elementwise expression (notation of
:mod:`isnet.lrp.rules`): with ``R = a · t`` the relevance at a ReLU output ``a`` (``t``: the
transposed message from above) and ``z = s·x + b`` the pre-activation (``x``: the input of a fused
BatchNorm or the layer's own output, ``s``/``b``: per-channel scale and shift), the message sent
down is

    m = t · a · s / D,      D = z + ε·sign(z),  sign(0) = +1.

It runs once per layer and per training step, forward and backward, on activation-sized tensors,
so it is written as one autograd Function whose forward and backward make few passes over memory
and allocate few tensors (each new large tensor costs page faults on the CPU):

* forward: ``u = 1/D`` is computed in one buffer (kept for backward instead of recomputing
  ``D``) and the message in its output buffer, by in-place operations;
* backward, with ``w = Σ_M grad·t`` (the incoming gradient weighted by ``t``) and
  ``k = w·a·u²``:
  ``∂/∂t = grad·a·s·u``, ``∂/∂a = w·s·u``, ``∂/∂x = −s²·k``,
  ``∂/∂s = Σ w·a·u − s·Σ k·x``, ``∂/∂b = −s·Σ k`` (sums over batch and space),
  each gradient computed only when autograd asks for it. With one map (M = 1, the one-map
  variants), ``v = grad·u`` serves both ``w·u = v·t`` and ``∂/∂t = v·a·s``: four new
  activation-sized tensors (three of them the returned gradients) and twelve passes.

Under ``create_graph=True`` the backward switches to out-of-place operations on a recomputed
``D`` that autograd can differentiate again (ordinary training never takes that path).
``scale=None`` (with ``shift=None``) is the identity affine map, ``z = x``,
for steps with no BatchNorm (residual additions, bare convolutions, pooling).
"""

from __future__ import annotations

import torch
from torch import Tensor

from isnet.models.layout import channels_last


def _channels(vector: Tensor, like: Tensor) -> Tensor:
    """A per-channel vector (C,) as a view broadcasting against ``like`` (B, C, …)."""
    return vector.view(1, -1, *([1] * (like.dim() - 2)))


def _inverse_denominator(inputs: Tensor, scale: Tensor | None, shift: Tensor | None,
                         epsilon: float, scratch: Tensor) -> Tensor:
    """``u = 1 / (z + ε·sign(z))`` with ``z = s·x + b`` and sign(±0) = +1, in a new buffer.

    ``scratch`` (same shape as ``inputs``) is overwritten. Adding +0.0 (in the shift, or to x)
    turns a −0.0 into +0.0, so ``copysign`` sees the sign the ε-rule wants.
    """
    if scale is None:
        z = torch.add(inputs, 0.0)  # (B, C, H, W)
    else:
        shift = shift + 0.0 if shift is not None else scale.new_zeros(scale.shape)
        z = torch.addcmul(_channels(shift, inputs), inputs, _channels(scale, inputs))
    torch.copysign(z.new_tensor(epsilon), z, out=scratch)  # ε·sign(z)
    return z.add_(scratch).reciprocal_()


def _message_buffer(activation: Tensor, maps: int) -> Tensor:
    """An uninitialised (B, M, C, …) message in the memory layout of ``activation`` (B, C, …):
    channels-last activations give channels-last maps (whatever layout the message from above
    came in), so that every later operation sees one layout."""
    shape = (activation.shape[0] * maps, *activation.shape[1:])
    layout = torch.channels_last if channels_last(activation) else torch.contiguous_format
    buffer = torch.empty(shape, dtype=activation.dtype, device=activation.device,
                         memory_format=layout)
    return buffer.unflatten(0, (activation.shape[0], maps))


class _EpsilonMessage(torch.autograd.Function):
    """``m = t · a · s / (s·x + b + ε·sign(s·x + b))``; see the module docstring."""

    @staticmethod
    def forward(ctx, activation: Tensor, transposed: Tensor, inputs: Tensor,
                scale: Tensor | None, shift: Tensor | None, epsilon: float) -> Tensor:
        out = _message_buffer(activation, transposed.shape[1])  # (B, M, C, H, W)
        single = out[:, 0] if out.shape[1] == 1 else torch.empty_like(inputs)
        inverse = _inverse_denominator(inputs, scale, shift, epsilon, single)  # u (B, C, H, W)
        ratio = torch.mul(activation, inverse, out=single)  # a·u
        if scale is not None:
            ratio.mul_(_channels(scale, inputs))  # a·s·u
        if out.shape[1] == 1:
            ratio.mul_(transposed[:, 0])  # out[:, 0] = t·a·s·u
        else:
            torch.mul(transposed, ratio.unsqueeze(1), out=out)  # (B, M, C, H, W)
        ctx.save_for_backward(activation, transposed, inputs, scale, shift, inverse)
        ctx.epsilon = epsilon
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        activation, transposed, inputs, scale, shift, inverse = ctx.saved_tensors
        need_a, need_t, need_x, need_s, need_b = ctx.needs_input_grad[:5]
        if torch.is_grad_enabled():  # create_graph: a backward autograd can differentiate
            return (*_differentiable_gradients(grad, activation, transposed, inputs, scale,
                                               shift, ctx.epsilon, ctx.needs_input_grad), None)
        s = _channels(scale, inputs) if scale is not None else None
        if grad.shape[1] == 1:
            single = grad[:, 0]
            if channels_last(inverse) and single.is_contiguous():
                single = single.contiguous(memory_format=torch.channels_last)  # as the saved
            return (*_single_map_gradients(single, activation, transposed[:, 0], inputs, s,
                                           inverse, ctx.needs_input_grad), None)
        weighted = (grad * transposed).sum(1)  # w, summed over the M maps
        grad_scale = grad_shift = grad_inputs = None
        if need_x or need_s or need_b:
            total = weighted * activation  # w·a
            total.mul_(inverse)  # p = w·a·u
            if need_s:
                grad_scale = total.sum([d for d in range(total.dim()) if d != 1])  # Σ p
            k = total.mul_(inverse)  # k = w·a·u² (p's buffer)
            dims = [d for d in range(k.dim()) if d != 1]  # batch and space
            if need_b:
                grad_shift = -(scale * k.sum(dims)) if scale is not None else -k.sum(dims)
            if need_s:
                grad_scale = grad_scale - scale * (k * inputs).sum(dims)
            if need_x:
                grad_inputs = k.mul_(-(s * s)) if s is not None else k.neg_()
        grad_activation = None
        if need_a:
            grad_activation = weighted.mul_(inverse)  # w·u (w's buffer, read for the last time)
            if s is not None:
                grad_activation.mul_(s)
        grad_transposed = None
        if need_t:
            ratio = activation * inverse  # a·u
            if s is not None:
                ratio.mul_(s)
            grad_transposed = grad * ratio.unsqueeze(1)
        return grad_activation, grad_transposed, grad_inputs, grad_scale, grad_shift, None


def _single_map_gradients(grad: Tensor, activation: Tensor, transposed: Tensor,
                          inputs: Tensor, s: Tensor | None, inverse: Tensor,
                          needs: tuple[bool, ...]) -> tuple:
    """The gradients for one map (M = 1; grad and transposed given as (B, C, …)), in four
    activation-sized buffers: ``v = grad·u`` serves ``w·u = v·t`` and ``∂/∂t = v·a·s``."""
    need_a, need_t, need_x, need_s, need_b = needs[:5]
    scale = s.flatten() if s is not None else None
    dims = [d for d in range(inputs.dim()) if d != 1]  # batch and space
    v = grad * inverse  # grad·u
    weighted = v * transposed if (need_a or need_x or need_s or need_b) else None  # w·u
    grad_scale = grad_shift = grad_inputs = None
    if need_x or need_s or need_b:
        k = weighted * activation  # p = w·a·u
        if need_s:
            grad_scale = k.sum(dims)  # Σ p
        k.mul_(inverse)  # k = w·a·u²
        sum_k = k.sum(dims) if need_b else None
        if need_b:
            grad_shift = -(scale * sum_k) if scale is not None else -sum_k
        if need_x:
            grad_inputs = k * -(s * s) if s is not None else -k
        if need_s:
            grad_scale = grad_scale - scale * k.mul_(inputs).sum(dims)  # Σ k·x (k's last use)
    grad_activation = None
    if need_a:
        grad_activation = weighted.mul_(s) if s is not None else weighted  # w·s·u
    grad_transposed = None
    if need_t:
        grad_transposed = v.mul_(activation)  # grad·a·u (v's buffer, read for the last time)
        if s is not None:
            grad_transposed.mul_(s)
        grad_transposed = grad_transposed.unsqueeze(1)
    return grad_activation, grad_transposed, grad_inputs, grad_scale, grad_shift


def _differentiable_gradients(grad: Tensor, activation: Tensor, transposed: Tensor,
                              inputs: Tensor, scale: Tensor | None, shift: Tensor | None,
                              epsilon: float, needs: tuple[bool, ...]) -> tuple:
    """The same gradients by out-of-place operations on a recomputed ``D``, so that autograd can
    differentiate them again (``create_graph=True``); not used by ordinary training."""
    s = _channels(scale, inputs) if scale is not None else inputs.new_ones(())
    b = _channels(shift, inputs) if shift is not None else inputs.new_zeros(())
    z = inputs * s + b
    with torch.no_grad():
        signed_epsilon = torch.copysign(z.new_tensor(epsilon), z + 0.0)
    inverse = (z + signed_epsilon).reciprocal()  # u
    weighted = (grad * transposed).sum(1)  # w
    k = weighted * activation * inverse * inverse  # w·a·u²
    dims = [d for d in range(inputs.dim()) if d != 1]
    grads = [weighted * inverse * s if needs[0] else None,
             grad * (activation * inverse * s).unsqueeze(1) if needs[1] else None,
             -(s * s) * k if needs[2] else None,
             ((weighted * activation * inverse).sum(dims) - scale * (k * inputs).sum(dims))
             if needs[3] else None,
             -(scale if scale is not None else 1.0) * k.sum(dims) if needs[4] else None]
    return tuple(grads)


def epsilon_message(activation: Tensor, transposed: Tensor, inputs: Tensor,
                    scale: Tensor | None, shift: Tensor | None, epsilon: float) -> Tensor:
    """One ε step into a layer followed by an affine map (a fused BatchNorm) and a ReLU.

    The relevance at the ReLU is ``R = a · t`` (activation times the transposed message from
    above); the layer's pre-activation is ``z = x·s + b`` (x: the BatchNorm's input, s/b: its
    fused scale and shift; None and None for the identity, ``z = x``). Returns the message sent
    down, ``s · R / (z + ε·sign(z))``.

    Shapes: activation, inputs (B, C, H, W) or (B, C); transposed (B, M, C, …); scale, shift (C,)
    or None; returns (B, M, C, …).
    """
    if (scale is None) != (shift is None) and shift is not None:
        raise ValueError("a shift needs a scale (give scale=None and shift=None for z = x)")
    if inputs is activation:  # (ε at a pooling, z = a) one tensor twice: autograd.Function
        inputs = inputs.view_as(inputs)  # takes it, torch.compile refuses it (graph break)
    return _EpsilonMessage.apply(activation, transposed, inputs, scale, shift, epsilon)


def relu_epsilon_message(activation: Tensor, transposed: Tensor, scale: Tensor | None,
                         epsilon: float) -> Tensor:
    """:func:`epsilon_message` for the case ``activation == ReLU(z)`` exactly, without z.

    Where ``z > 0`` the activation is z itself, so ``a / (z + ε) = a / (a + ε)``; where
    ``z ≤ 0`` the activation is 0 and so is the message. The layer's input and shift are then
    not needed, and the message costs four passes over the activation instead of seven. Only
    for explaining (no gradient: the derivatives with respect to z, the scale and the shift are
    not those of the ε-rule) and ``epsilon > 0`` (else 0 / 0 where a = 0).

    Shapes: activation (B, C, H, W); transposed (B, M, C, H, W); scale (C,) or None (the
    identity); returns (B, M, C, H, W).
    """
    if epsilon <= 0:
        raise ValueError(f"relu_epsilon_message needs epsilon > 0, got {epsilon}")
    ratio = torch.add(activation, epsilon).reciprocal_().mul_(activation)  # a / (a + ε)
    if scale is not None:
        ratio = ratio.mul_(scale.view(1, -1, 1, 1))  # (B, C, H, W)
    return transposed * ratio.unsqueeze(1)
