"""LRP through a residual addition ``z = main + skip`` (ResNet blocks).

The addition is a linear layer with two inputs and unit weights, so the ε-rule splits the
relevance ``R`` arriving at ``z`` in proportion to each summand's contribution:

    R_main = main · R / (z + ε·sign(z)),    R_skip = skip · R / (z + ε·sign(z)).

This is the rule zennit applies to the ``Sum`` module its ResNet canonizer inserts (its ``Norm``
rule: ε-rule without parameters); see ``docs/lrp-rules.md``. With ε → 0 the two parts add up to
``R`` exactly, and the walk equals gradient×input.

In message form (see :mod:`isnet.lrp.rules`): the shared coefficient ``q = R / (z + ε·sign(z))``
goes down both paths; the relevance of each summand is that summand times ``q``.
"""

from __future__ import annotations

from torch import Tensor

from isnet.lrp.rules import epsilon_message


def residual_ratio(output: Tensor, message: Tensor, summed: Tensor, epsilon: float) -> Tensor:
    """``q = R / (z + ε·sign(z))`` at a residual sum followed by a ReLU.

    Args:
        output: the ReLU's output ``relu(z)``; relevance there is ``output · message``.
        message: the message arriving at ``output``.
        summed: ``z = main + skip``, the ReLU's input.
        epsilon: ε.

    Returns:
        ``q``; the relevance of the main branch is ``main · q``, of the skip path ``skip · q``.

    Shapes: output, summed (B, C, H, W); message (B, M, C, H, W) → (B, M, C, H, W).
    """
    return epsilon_message(output, message, summed, None, None, epsilon)  # z = summed
