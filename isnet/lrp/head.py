"""LRP through the classifier head: the first step of every walk, shared by all families.

Every LRP-ready model exposes its last linear layer as ``model.classifier_layer`` and its trace
holds that layer's input as ``trace.pooled`` and the logits as ``trace.logits``. These functions
turn relevance placed on the logits into *messages* at ``trace.pooled`` (see
``docs/lrp-rules.md``); the family's walk takes it from there.
"""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import Tensor, nn

from isnet.lrp.config import LRPConfig
from isnet.lrp.conservation import BiasLedger
from isnet.lrp.rules import epsilon_ratio


def class_messages(model: nn.Module, trace: Any, output_relevance: Tensor,
                   config: LRPConfig, ledger: BiasLedger | None = None) -> Tensor:
    """ε step through the classifier: messages at the pooled features. A ``ledger`` records
    the score (the relevance placed on the logits) and what the classifier's bias and ε keep.

    Shapes: output_relevance (B, M, K) — relevance placed on the logits for each of M maps;
    returns (B, M, F).
    """
    linear = cast(nn.Linear, model.classifier_layer)
    bias = linear.bias.detach() if (config.detach_bias and linear.bias is not None) else linear.bias
    z = torch.nn.functional.linear(trace.pooled, linear.weight, bias)  # (B, K)
    if ledger is not None:
        ledger.score = ledger.start = output_relevance.detach().sum(-1)  # (B, M)
        ledger.absorb("classifier", output_relevance, z, linear.bias, config.epsilon)
    return epsilon_ratio(output_relevance, z, config.epsilon) @ linear.weight  # (B, M, F)


def selective_messages(model: nn.Module, trace: Any, classes: Tensor,
                       config: LRPConfig, ledger: BiasLedger | None = None) -> Tensor:
    """Messages at the pooled features for the softmax log-odds of ``classes`` (Selective ISNet).

    The log-odds ``η_c = log(p_c / (1 − p_c)) = −log Σ_{c'≠c} exp(−(z_c − z_c'))`` is explained
    through a layer of logit differences ``Z_cc' = z_c − z_c'`` (weights ``w_c − w_c'``), each
    receiving relevance ``Z_cc' · softmax_{c'}(−Z_cc')``; then one ε step through that layer.

    A ``ledger`` records the score ``η_c``, the relevance placed on the differences
    (``Σ_c' Z_cc' softmax_c'(−Z_cc')``, which differs from ``η_c``) and what the differences'
    biases and ε keep.

    Shapes: classes (B,); returns (B, 1, F).
    """
    linear = cast(nn.Linear, model.classifier_layer)
    num_classes = linear.out_features
    if num_classes < 2:
        raise ValueError("the selective variant needs at least 2 classes")
    others = other_classes(classes, num_classes)  # (B, K-1)
    weight_diff = linear.weight[classes].unsqueeze(1) - linear.weight[others]  # (B, K-1, F)
    bias: Tensor = linear.bias if linear.bias is not None else linear.weight.new_zeros(num_classes)
    bias = bias.detach() if config.detach_bias else bias
    bias_diff = bias[classes].unsqueeze(1) - bias[others]  # (B, K-1)
    z = torch.einsum("bf,bjf->bj", trace.pooled, weight_diff) + bias_diff  # (B, K-1)
    relevance = z * torch.softmax(-z, dim=1)  # (B, K-1)
    if ledger is not None:
        ledger.score = -torch.logsumexp(-z.detach(), dim=1, keepdim=True)  # η_c, (B, 1)
        ledger.start = relevance.detach().sum(1, keepdim=True)  # (B, 1)
        ledger.absorb("classifier (logit differences)", relevance.unsqueeze(1), z, bias_diff,
                      config.epsilon)
    ratio = epsilon_ratio(relevance.unsqueeze(1), z, config.epsilon)  # (B, 1, K-1)
    return torch.einsum("bmj,bjf->bmf", ratio, weight_diff)  # (B, 1, F)




def other_classes(classes: Tensor, num_classes: int) -> Tensor:
    """Per sample, the K−1 classes other than ``classes``, in increasing order.

    Built by tensor operations only (rank j maps to j, or j + 1 from the sample's own class on),
    so the walk reads no tensor value into Python and compiles without a graph break.

    Shapes: classes (B,) → (B, K−1).
    """
    ranks = torch.arange(num_classes - 1, device=classes.device)  # (K-1,)
    return ranks + (ranks >= classes.unsqueeze(1)).long()  # (B, K-1)
