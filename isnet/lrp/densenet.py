"""LRP through the ISNet DenseNet: which rule applies where, and the reverse walk.

Rule table (the paper's LRP-ε ISNet, with the two bookkeeping errors of the published LRP block
corrected; see ``docs/lrp-rules.md``):

==========================  ================================================================
layer                       rule
==========================  ================================================================
classifier                  ε (z = logits with the bias detached)
global average pooling      ε (z = pooled features)
dense layer conv2           ε, fused with **every** BatchNorm that reads its channels
                            (norm1 of each later layer in the block, and the block's end
                            reader: the next transition's norm or norm5), one ε per consumer,
                            relevance of all consumers summed
dense layer conv1           ε, fused with norm2
transition conv             ε (no BatchNorm after it; the paper's extra ReLU follows)
transition average pooling  ε, fused with every BatchNorm of the next block that reads it
stem max pooling            winner-take-all, overlapping windows **summed**, fused with the
                            BatchNorms of the first block that read it
conv0 + norm0               z^B with pixel bounds [low, high] (default [0, 1]) and the bias
                            convention ``zb_bias`` (default: the authors'); ε if zb=False
ReLU                        relevance passes unchanged
==========================  ================================================================

Every step is "ratio, then transpose" (see :mod:`isnet.lrp.rules`). A *message* below is the
coefficient ``c_j = Σ_k w_jk R_k / z_k`` arriving at a tensor, so that its relevance is
``R_j = a_j · c_j``. A BatchNorm consumer sends ``scale · R / z`` to the producers of its input
channels; a producer adds up the messages of all its consumers before its own transpose.

``LRPConfig(reference_quirks=True)`` reproduces the two bookkeeping errors of the published LRP
block instead (see :func:`dense_consumers` and :func:`isnet.lrp.rules.max_pool_transpose`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from isnet.lrp.canonize import batch_statistics, batchnorm_affine, uses_batch_statistics
from isnet.lrp.config import LRPConfig, channel_view
from isnet.lrp.conservation import BiasLedger
from isnet.lrp.registry import register_walk
from isnet.lrp.rules import (
    avg_pool_transpose,
    conv_transpose,
    epsilon_message,
    epsilon_ratio,
    max_pool_transpose,
    relu_epsilon_message,
    zbox_rule,
)
from isnet.models.densenet import (
    DenseBlock,
    DenseNet,
    LayerTrace,
    Trace,
    Transition,
    TransitionTrace,
)


@register_walk(DenseNet, reference_quirks=True)
def relevance_from_messages(model: DenseNet, trace: Trace, messages: Tensor,
                            config: LRPConfig, ledger: BiasLedger | None = None) -> Tensor:
    """The reverse walk from the pooled features to the input.

    Args:
        model: the DenseNet that produced ``trace``.
        trace: activations from ``model.forward_trace``.
        messages: (B, M, F) messages at the pooled features (from :func:`class_messages` or
            :func:`selective_messages`).
        config: LRP settings.
        ledger: records what each step's BatchNorm shift and ε keep
            (:mod:`isnet.lrp.conservation`; not the quirks of ``reference_quirks``).

    Returns:
        heatmaps (B, M, C, H, W): relevance per input pixel and channel.
    """
    message = stem_message(model, trace, messages, config, ledger)
    return stem_relevance(model, trace, message, config, ledger)


def stem_message(model: DenseNet, trace: Trace, messages: Tensor, config: LRPConfig,
                 ledger: BiasLedger | None = None) -> Tensor:
    """The walk from the pooled features down through every block and transition: the summed
    message of the first block's BatchNorms at the stem's max-pooling output.

    Shapes: messages (B, M, F) → (B, M, F0, H/4, W/4).
    """
    e, detach, f = config.epsilon, config.detach_bias, model.features
    # global average pooling (ε): z = pooled features, input = relu5 output
    relevance_pooled = trace.pooled.unsqueeze(1) * messages  # (B, M, F)
    if ledger is not None:
        ledger.absorb("global average pooling", relevance_pooled, trace.pooled, None, e)
    ratio = epsilon_ratio(relevance_pooled, trace.pooled, e)  # (B, M, F)
    h, w = trace.final_relu.shape[-2:]
    transposed = ratio[..., None, None].expand(-1, -1, -1, h, w) / (h * w)  # (B, M, F, h, w)
    activation = trace.final_relu
    blocks = [m for n, m in f.named_children() if n.startswith("denseblock")]
    transitions = [m for n, m in f.named_children() if n.startswith("transition")]
    end_readers = [(t.norm, trace.transitions[i].concat) for i, t in enumerate(transitions)]
    end_readers.append((f.norm5, trace.final_concat))
    message = transposed  # the walk below reads it only after its first iteration sets it
    for index in reversed(range(len(blocks))):
        norm, concat = end_readers[index]
        statistics = (batch_statistics(concat, detach, config.reference_quirks)
                      if uses_batch_statistics(norm) else None)
        if index < len(blocks) - 1:  # relevance coming down through the next transition
            activation = trace.transitions[index].relu
            transposed = _transition_transposed(transitions[index], trace.transitions[index],
                                                message, config, ledger)
        message = _consumer_message(norm, concat, activation, transposed, config, statistics,
                                    ledger, f"block {index + 1} end reader")
        message = _block_backward(blocks[index], trace.blocks[index], message, config, statistics,
                                  ledger, f"block {index + 1}")
    return message


def stem_relevance(model: DenseNet, trace: Trace, message: Tensor, config: LRPConfig,
                   ledger: BiasLedger | None = None) -> Tensor:
    """From the message at the stem's max-pooling output to the input pixels: max pooling
    (winners get the sum of the messages of every window they won; with ``reference_quirks``
    the last window's only), then conv0 + norm0 by z^B (or ε when ``zb`` is off).

    Shapes: message (B, M, F0, H/4, W/4) → heatmaps (B, M, C, H, W).
    """
    e, f = config.epsilon, model.features
    size = tuple(trace.stem_relu.shape[-2:])
    transposed = max_pool_transpose(message, trace.stem_indices, size,
                                    overwrite=config.reference_quirks)  # (B, M, F0, H/2, W/2)
    scale, shift = _affine(f.norm0, trace.stem_conv, config)
    conv = f.conv0
    if config.zb:
        relevance = trace.stem_relu.unsqueeze(1) * transposed  # R at norm0's output
        weight = conv.weight * scale.view(-1, 1, 1, 1)  # conv0 ∘ norm0 fused
        low, high = channel_view(config.low, trace.inputs), channel_view(config.high, trace.inputs)
        return zbox_rule(trace.inputs, weight, shift, relevance, low, high,
                         conv.stride, conv.padding, e, bias_convention=config.zb_bias,
                         weighted_inputs=trace.stem_conv * scale.view(1, -1, 1, 1),  # conv0 ∘ norm0
                         ledger=ledger)
    ratio = _message(trace.stem_relu, transposed, trace.stem_conv, scale, shift, config, ledger,
                     "input layer (ε)")
    size = tuple(trace.inputs.shape[-2:])
    return trace.inputs.unsqueeze(1) * conv_transpose(ratio, conv.weight, size, conv.stride,
                                                      conv.padding)


def dense_consumers(layer: int, num_layers: int,
                    reference_quirks: bool = False) -> list[tuple[int, int]]:
    """Which later layers of a dense block send relevance to ``layer``'s output channels.

    Returns ``(reader, source)`` pairs, layers numbered from 1 as in ``denselayerN``: the
    BatchNorm (``norm1``) of layer ``reader`` is fused into ``layer``'s conv2, and the relevance
    at layer ``source``'s first ReLU is what it sends back. Corrected, that is every later layer
    with its own relevance (``reader == source``). With ``reference_quirks`` it is the published
    block's lookup: a later layer counts only if the **last digit** of its number exceeds
    ``layer``, and the kept readers take, in order from the last one, the relevances of the last
    layers of the block (so in blocks of 10 or more layers, relevance is dropped and paired with
    other layers' BatchNorms). The block's end reader (next transition or norm5) is not listed:
    it is always kept and paired correctly.
    """
    readers = range(num_layers, layer, -1)
    if reference_quirks:
        readers = [reader for reader in readers if reader % 10 > layer]
    return [(reader, num_layers - rank) for rank, reader in enumerate(readers)]


def _affine(norm: torch.nn.BatchNorm2d, inputs: Tensor, config: LRPConfig,
            statistics: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
    """The BatchNorm as (scale, shift) for the rules; with ``reference_quirks``, as the published
    block fuses it (unbiased train-mode variance, γ's gradient kept in the shift)."""
    return batchnorm_affine(norm, inputs, config.detach_bias, statistics,
                            unbiased=config.reference_quirks,
                            detach_scale_in_shift=not config.reference_quirks)


def _consumer_message(norm: torch.nn.BatchNorm2d, inputs: Tensor, activation: Tensor,
                      transposed: Tensor, config: LRPConfig,
                      statistics: tuple[Tensor, Tensor] | None = None,
                      ledger: BiasLedger | None = None, step: str = "") -> Tensor:
    """Message a BatchNorm consumer sends to the producers of its input: ``scale · R / z``,
    with ``R = activation · transposed`` the relevance at its ReLU and ``z`` its output.

    Shapes: inputs, activation (B, C, H, W); transposed (B, M, C, H, W) → (B, M, C, H, W).
    """
    scale, shift = _affine(norm, inputs, config, statistics)
    return _message(activation, transposed, inputs, scale, shift, config, ledger, step)


def _message(activation: Tensor, transposed: Tensor, inputs: Tensor, scale: Tensor | None,
             shift: Tensor | None, config: LRPConfig, ledger: BiasLedger | None = None,
             step: str = "") -> Tensor:
    """The ε message into a BatchNorm (or bare conv) and its ReLU.

    ``activation`` is that ReLU's output; ``scale = shift = None`` stands for a bare conv
    (``z = inputs``). Every activation of this walk is exactly ``ReLU(inputs·scale + shift)``, so
    when no gradient is wanted (explaining, auditing) the cheaper
    :func:`isnet.lrp.rules.relu_epsilon_message` gives the same values (to rounding); training,
    ε = 0 and the reference quirks (whose fused variance differs from the forward's) take
    :func:`isnet.lrp.rules.epsilon_message`. A ``ledger`` records the step as ``step``.
    Shapes: as :func:`_consumer_message`.
    """
    if ledger is not None:
        ledger.epsilon_step(step, activation, transposed, inputs, scale, shift, config.epsilon)
    if torch.is_grad_enabled() or config.epsilon <= 0 or config.reference_quirks:
        return epsilon_message(activation, transposed, inputs, scale, shift, config.epsilon)
    return relu_epsilon_message(activation, transposed, scale, config.epsilon)


def _block_backward(block: DenseBlock, layers: list[LayerTrace], end_message: Tensor,
                    config: LRPConfig, statistics: tuple[Tensor, Tensor] | None,
                    ledger: BiasLedger | None = None, name: str = "block") -> Tensor:
    """Relevance through a dense block (``ledger``: records its steps, named after ``name``).

    ``end_message`` (B, M, C_total, h, w) comes from the block's end reader (next transition's
    norm, or norm5); ``statistics`` are the batch statistics of the full concatenation (train
    mode) — every reader in the block reads a prefix of it. Returns the summed message at the
    block input (B, M, C_in, h, w). With ``config.reference_quirks`` each layer's output gets
    the messages of the readers :func:`dense_consumers` lists instead of those of all readers.
    """
    modules = list(block.values())
    slots = [layers[0].concat.shape[1]] + [t.new_features.shape[1] for t in layers]
    inbox = _Inbox(len(slots))  # summed messages per producer (block input, layers)
    readers: dict[int, tuple[Tensor, Tensor, Tensor, Tensor]] = {}  # kept for the quirky lookup

    batch = end_message.shape[0]

    def post(message: Tensor) -> None:  # kept 4-D, (B·M, C, h, w), so that autograd's backward
        folded = message.flatten(0, 1)  # of the split keeps a channels-last layout
        for slot, part in enumerate(folded.split(slots[: _count_slots(message, slots)], dim=1)):
            inbox.add(slot, part)

    post(end_message)
    for index in reversed(range(len(modules))):
        layer, t = modules[index], layers[index]
        if config.reference_quirks:
            message = inbox.first[index + 1].unflatten(0, (batch, -1)) + _quirky_messages(
                index + 1, len(modules), t, slots, readers, config)
        else:
            message = inbox.total[index + 1].unflatten(0, (batch, -1))  # (B, M, growth, h, w)
        size = tuple(t.relu2.shape[-2:])
        transposed = conv_transpose(message, layer.conv2.weight, size, layer.conv2.stride,
                                    layer.conv2.padding)  # (B, M, bn_size·growth, h, w)
        scale, shift = _affine(layer.norm2, t.bottleneck, config)
        ratio = _message(t.relu2, transposed, t.bottleneck, scale, shift, config, ledger,
                         f"{name} layer {index + 1} norm2")
        transposed = conv_transpose(ratio, layer.conv1.weight, size)  # (B, M, C_in, h, w)
        scale, shift = _affine(layer.norm1, t.concat, config, statistics)
        if config.reference_quirks:
            readers[index + 1] = (t.relu1, transposed, scale, shift)
        post(_message(t.relu1, transposed, t.concat, scale, shift, config, ledger,
                      f"{name} layer {index + 1} norm1"))
    return inbox.total[0].unflatten(0, (batch, -1))


class _Inbox:
    """The messages a dense block's producers receive, summed as they arrive.

    Summing on arrival, in place when no gradient is wanted, keeps one tensor per producer
    instead of stacking all of them (the block's last layers read up to 24 messages each).
    ``first`` keeps each producer's first message (the block's end reader), which the quirky
    lookup of the published block reads on its own.
    """

    def __init__(self, producers: int) -> None:
        self.first: list[Tensor | None] = [None] * producers
        self.total: list[Tensor | None] = [None] * producers
        self._owned = [False] * producers  # total is our own buffer (safe to add into)

    def add(self, producer: int, message: Tensor) -> None:
        total = self.total[producer]
        if total is None:
            self.first[producer] = self.total[producer] = message
        elif self._owned[producer] and not torch.is_grad_enabled():
            total.add_(message)
        else:
            self.total[producer], self._owned[producer] = total + message, True


def _quirky_messages(number: int, num_layers: int, t: LayerTrace, slots: list[int],
                     readers: dict[int, tuple[Tensor, Tensor, Tensor, Tensor]],
                     config: LRPConfig) -> Tensor | float:
    """Messages the published block's lookup sends to layer ``number``'s output channels from
    the later layers: reader's BatchNorm and z, source's relevance (see :func:`dense_consumers`).

    Shapes: returns (B, M, growth, h, w), or 0.0 when no later layer is kept.
    """
    start = sum(slots[:number])
    stop = start + slots[number]
    total: Tensor | float = 0.0
    for reader, source in dense_consumers(number, num_layers, reference_quirks=True):
        _, _, scale, shift = readers[reader]
        activation, transposed, _, _ = readers[source]
        total = total + epsilon_message(activation[:, start:stop], transposed[:, :, start:stop],
                                        t.new_features, scale[start:stop], shift[start:stop],
                                        config.epsilon)
    return total


def _count_slots(message: Tensor, slots: list[int]) -> int:
    """How many producer slots a consumer's message covers (its input is a prefix of the concat)."""
    total, count = 0, 0
    while total < message.shape[2]:
        total += slots[count]
        count += 1
    return count


def _transition_transposed(transition: Transition, t: TransitionTrace, message: Tensor,
                           config: LRPConfig, ledger: BiasLedger | None = None) -> Tensor:
    """Through a transition, from the message at its pooled output to the transposed message at
    its first ReLU (relevance there = ``t.relu · result``). The pooling is fused with the next
    block's BatchNorms (already in ``message``); the conv has no bias and is followed by the
    paper's extra ReLU, so its own z is its output. Shapes: (B, M, C_out, h, w) → (B, M, C, 2h, 2w).
    """
    size = tuple(t.relu2.shape[-2:])
    transposed = avg_pool_transpose(message, size, transition.pool.kernel_size)
    ratio = _message(t.relu2, transposed, t.conv, None, None, config, ledger,
                     "transition conv")  # z = conv
    return conv_transpose(ratio, transition.conv.weight, size)
