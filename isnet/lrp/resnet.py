"""LRP through the ResNet: which rule applies where, and the reverse walk.

Rule table (see ``docs/lrp-rules.md``):

==========================  ================================================================
layer                       rule
==========================  ================================================================
fc (classifier)             ε (shared head, :mod:`isnet.lrp.head`)
global average pooling      ε (z = pooled features)
ReLU                        relevance passes unchanged
residual addition           split between main branch and skip path in proportion to their
                            contributions, ε-stabilised (:mod:`isnet.lrp.residual`)
conv + BatchNorm            ε, BatchNorm fused into the conv before it (running statistics in
                            eval, batch statistics in train; :mod:`isnet.lrp.fused`)
downsample conv + BN        ε, fused likewise
stem max pooling            winner-take-all, overlapping windows summed
conv1 + bn1                 z^B with pixel bounds [low, high]; ε if zb=False
==========================  ================================================================

Messages (see :mod:`isnet.lrp.rules`): a message ``c`` at a tensor ``a`` carries relevance
``a · c``. A block's input receives the sum of the messages of its main branch and its skip path.
"""

from __future__ import annotations

from torch import Tensor

from isnet.lrp.config import LRPConfig
from isnet.lrp.conservation import BiasLedger
from isnet.lrp.fused import conv_affine, input_layer_relevance
from isnet.lrp.registry import register_walk
from isnet.lrp.residual import residual_ratio
from isnet.lrp.rules import conv_transpose, epsilon_message, epsilon_ratio, max_pool_transpose
from isnet.models.resnet import Block, BlockTrace, ResNet, Trace


@register_walk(ResNet)
def relevance_from_messages(model: ResNet, trace: Trace, messages: Tensor,
                            config: LRPConfig, ledger: BiasLedger | None = None) -> Tensor:
    """The reverse walk from the pooled features to the input.

    Args:
        model: the ResNet that produced ``trace``.
        trace: activations from ``model.forward_trace``.
        messages: (B, M, F) messages at the pooled features (from :mod:`isnet.lrp.targets`).
        config: LRP settings.
        ledger: records what each step's bias and ε keep (:mod:`isnet.lrp.conservation`).

    Returns:
        heatmaps (B, M, C, H, W): relevance per input pixel and channel.
    """
    # global average pooling (ε): z = pooled features
    if ledger is not None:
        ledger.absorb("global average pooling", trace.pooled.unsqueeze(1) * messages,
                      trace.pooled, None, config.epsilon)
    ratio = epsilon_ratio(trace.pooled.unsqueeze(1) * messages, trace.pooled,
                          config.epsilon)  # (B, M, F)
    last = trace.blocks[-1].output if trace.blocks else trace.stem_pooled
    h, w = last.shape[-2:]
    message = ratio[..., None, None].expand(-1, -1, -1, h, w) / (h * w)  # (B, M, F, h, w)
    blocks = [block for stage in model.stages() for block in stage]
    for number, (block, block_trace) in reversed(list(enumerate(zip(blocks, trace.blocks,
                                                                     strict=True)))):
        message = block_message(block, block_trace, message, config, ledger, f"block {number + 1}")
    # stem max pooling: winners receive the sum of the messages of every window they won
    transposed = max_pool_transpose(message, trace.stem_indices,
                                    tuple(trace.stem_relu.shape[-2:]))  # (B, M, W0, H/2, W/2)
    scale, shift = conv_affine(model.conv1, model.bn1, trace.stem_conv, config.detach_bias)
    return input_layer_relevance(trace.inputs, model.conv1, scale, shift, trace.stem_conv,
                                 trace.stem_relu, transposed, config, ledger)


def block_message(block: Block, t: BlockTrace, message: Tensor, config: LRPConfig,
                  ledger: BiasLedger | None = None, name: str = "block") -> Tensor:
    """Through one residual block: the message at its output → the message at its input
    (``ledger``: records what the block's biases and ε keep, steps named after ``name``).

    Shapes: message (B, M, C_out, h, w) → (B, M, C_in, H, W).
    """
    e, detach = config.epsilon, config.detach_bias
    shared = residual_ratio(t.output, message, t.summed, e)  # q = R / stab(main + skip)
    pairs = block.pairs()
    conv, norm = pairs[-1]
    scale, shift = conv_affine(conv, norm, t.convs[-1], detach)
    if ledger is not None:
        ledger.epsilon_step(f"{name} addition", t.output, message, t.summed, None, None, e)
        ledger.epsilon_step(f"{name} conv{len(pairs)}", t.main, shared, t.convs[-1], scale,
                            shift, e, conv)
    ratio = epsilon_message(t.main, shared, t.convs[-1], scale, shift, e)  # R_main = main · q
    for index in reversed(range(len(pairs) - 1)):
        above = pairs[index + 1][0]
        transposed = conv_transpose(ratio, above.weight, tuple(t.relus[index].shape[-2:]),
                                    above.stride, above.padding)
        conv, norm = pairs[index]
        scale, shift = conv_affine(conv, norm, t.convs[index], detach)
        if ledger is not None:
            ledger.epsilon_step(f"{name} conv{index + 1}", t.relus[index], transposed,
                                t.convs[index], scale, shift, e, conv)
        ratio = epsilon_message(t.relus[index], transposed, t.convs[index], scale, shift, e)
    size = tuple(t.inputs.shape[-2:])
    first = pairs[0][0]
    main = conv_transpose(ratio, first.weight, size, first.stride, first.padding)
    if block.downsample is None:  # identity skip: R_skip = inputs · q
        return main + shared
    conv, norm = block.downsample[0], block.downsample[1]
    scale, shift = conv_affine(conv, norm, t.downsampled, detach)
    if ledger is not None:
        ledger.epsilon_step(f"{name} downsample", t.skip, shared, t.downsampled, scale, shift,
                            e, conv)
    ratio = epsilon_message(t.skip, shared, t.downsampled, scale, shift, e)  # R_skip = skip · q
    return main + conv_transpose(ratio, conv.weight, size, conv.stride, conv.padding)
