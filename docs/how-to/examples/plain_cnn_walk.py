"""The LRP walk of :class:`plain_cnn.PlainCNN`: which rule where, top down.

In the project this file would be ``isnet/lrp/plain_cnn.py`` (imported by
``isnet/lrp/__init__.py``). See ``docs/how-to/add-a-model-family.md``.

==========================  ================================================================
layer                       rule
==========================  ================================================================
head (last linear)          ε, shared by every family (:mod:`isnet.lrp.head`): the messages
                            arrive at ``trace.pooled``
global average pooling      ε with z = the pooled value, then spread evenly (its transpose)
body conv                   ε (its bias detached when ``detach_bias``)
stem conv                   z^B with the pixel bounds, or ε when ``zb=False``
ReLU                        relevance passes unchanged
==========================  ================================================================
"""

from __future__ import annotations

from plain_cnn import PlainCNN, PlainTrace
from torch import Tensor

from isnet.lrp.config import LRPConfig
from isnet.lrp.conservation import BiasLedger
from isnet.lrp.fused import conv_affine, input_layer_relevance
from isnet.lrp.registry import register_walk
from isnet.lrp.rules import conv_transpose, epsilon_message


@register_walk(PlainCNN)
def relevance_from_messages(model: PlainCNN, trace: PlainTrace, messages: Tensor,
                            config: LRPConfig, ledger: BiasLedger | None = None) -> Tensor:
    """Carry the messages (B, M, 2·W0) at ``trace.pooled`` down to heatmaps (B, M, C, H, W).

    A message ``t`` at an activation ``a`` stands for the relevance ``R = a · t``; each ε step
    divides R by the stabilised pre-activation and multiplies by the layer's transpose.
    """
    e, pooled = config.epsilon, trace.pooled
    if ledger is not None:
        ledger.epsilon_step("global average pooling", pooled, messages, pooled, None, None, e)
    ratio = epsilon_message(pooled, messages, pooled, None, None, e)  # (B, M, 2·W0)
    height, width = trace.body_relu.shape[-2:]
    message = (ratio / (height * width))[..., None, None].expand(
        *ratio.shape, height, width)  # the pooling's transpose: (B, M, 2·W0, h, w)
    scale, shift = conv_affine(model.body, None, trace.body_conv, config.detach_bias)
    if ledger is not None:
        ledger.epsilon_step("body", trace.body_relu, message, trace.body_conv, scale, shift, e,
                            model.body)
    ratio = epsilon_message(trace.body_relu, message, trace.body_conv, scale, shift, e)
    message = conv_transpose(ratio, model.body.weight, tuple(trace.stem_relu.shape[-2:]),
                             model.body.stride, model.body.padding)  # (B, M, W0, H, W)
    scale, shift = conv_affine(model.stem, None, trace.stem_conv, config.detach_bias)
    return input_layer_relevance(trace.inputs, model.stem, scale, shift, trace.stem_conv,
                                 trace.stem_relu, message, config, ledger)
